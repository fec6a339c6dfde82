"""Who may call which route: the authz table on its own, and the API handler enforcing it.

No AWS (not even moto): a refused request is answered before any service is built, and an
allowed one is shown by reaching the request validator (an invalid body then answers 400, not 403).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from typing import Any

import pytest

from functions import api as api_handler
from tests.aws_runtime.conftest import ADMIN_CLAIMS, VIN, rest_event
from vehicle_assessment.aws_runtime import authz
from vehicle_assessment.aws_runtime.authz import Group, Scope


def person(*groups: str) -> dict[str, str]:
    return {**ADMIN_CLAIMS, "username": "someone", "cognito:groups": ",".join(groups)}


def machine(*scopes: str) -> dict[str, str]:
    # A client-credentials access token: sub is the client id, no username, no groups.
    return {
        "sub": "integrationclient",
        "client_id": "integrationclient",
        "token_use": "access",
        "scope": " ".join(scopes),
    }


YARD, APPRAISER, ADMIN = person("yard"), person("appraiser"), person("admin")
CREATE, READ, HISTORY, REGENERATE = (
    "POST /assessments",
    "GET /assessments/{assessment_id}",
    "GET /vehicles/{vin}/assessments",
    "POST /assessments/{assessment_id}/descriptions",
)


# --- the table ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claims", "route", "status"),
    [
        (YARD, CREATE, 200),
        (YARD, READ, 200),
        (YARD, REGENERATE, 403),
        (YARD, HISTORY, 403),
        (APPRAISER, CREATE, 403),
        (APPRAISER, READ, 200),
        (APPRAISER, HISTORY, 200),
        (APPRAISER, REGENERATE, 200),
        (ADMIN, CREATE, 200),
        (ADMIN, REGENERATE, 200),
        (person(), READ, 403),  # signed in, in no group
        (person("auditor"), READ, 403),  # a group the table does not know
        (machine(Scope.WRITE), CREATE, 200),
        (machine(Scope.WRITE), READ, 403),
        (machine(Scope.READ), READ, 200),
        (machine(Scope.READ), HISTORY, 200),
        (machine(Scope.READ), CREATE, 403),
        (machine(Scope.READ, Scope.WRITE), REGENERATE, 200),
        (machine(), READ, 403),
        (None, READ, 401),
        ({}, READ, 401),
        ({"scope": Scope.READ.value}, READ, 401),  # no subject: not a token the authorizer vouched for
    ],
)
def test_the_table_decides_by_group_for_people_and_by_scope_for_machines(
    claims: dict[str, Any] | None, route: str, status: int
) -> None:
    assert authz.authorize(route, claims).status == status


def test_a_person_is_never_allowed_by_a_scope() -> None:
    # Were the public client ever granted a custom scope, groups would still decide for people.
    yard_with_write_scope = {**YARD, "scope": f"openid {Scope.WRITE}"}
    assert authz.authorize(REGENERATE, yard_with_write_scope).status == 403


@pytest.mark.parametrize(
    "groups",
    ["yard,appraiser", "[yard appraiser]", '["yard", "appraiser"]', ["yard", "appraiser"], " appraiser "],
)
def test_group_claims_in_every_shape_the_authorizers_send(groups: Any) -> None:
    claims = {**ADMIN_CLAIMS, "cognito:groups": groups}
    caller = authz.caller_from_claims(claims)
    assert caller is not None and Group.APPRAISER in caller.groups
    assert authz.authorize(REGENERATE, claims).allowed


def test_refusals_name_what_the_route_needs() -> None:
    decision = authz.authorize(REGENERATE, YARD)
    assert "admin, appraiser" in decision.message and "yard" in decision.message
    decision = authz.authorize(CREATE, machine(Scope.READ))
    assert Scope.WRITE.value in decision.message and Scope.READ.value in decision.message


@pytest.mark.parametrize(
    ("method", "path", "key"),
    [
        ("POST", "/assessments", CREATE),
        ("post", "/assessments/", CREATE),
        ("GET", "/assessments/abc-1", READ),
        ("GET", "/vehicles/1FTMW1T88MFA00001/assessments", HISTORY),
        ("POST", "/assessments/abc-1/descriptions", REGENERATE),
        ("GET", "/assessments", "GET /assessments"),
        ("GET", "/assessments/abc-1/media", "GET /assessments/{assessment_id}/media"),
        ("PUT", "/assessments", None),
        ("POST", "/assessments/abc-1", None),
        ("POST", "/assessments/a/b/descriptions", None),
    ],
)
def test_route_key_matches_the_path_the_router_dispatches_on(method: str, path: str, key: str | None) -> None:
    assert authz.route_key(method, path) == key


def test_every_route_of_the_handler_is_in_the_table_and_nothing_else() -> None:
    app = api_handler.app
    routed = {
        f"{route.method} {route.path.replace('<', '{').replace('>', '}')}"
        for route in app._static_routes + app._dynamic_routes
        if route.method != "OPTIONS"
    }
    assert routed == set(authz.ROUTES)


@pytest.mark.parametrize(
    ("origin", "ok"),
    [
        ("https://yard.example.com", True),
        ("https://yard.example.com:8443", True),
        ("http://localhost:3000", True),
        ("*", False),
        ("https://*.example.com", False),
        ("https://yard.example.com/", False),
        ("https://yard.example.com/app", False),
        ("http://yard.example.com", False),
        ("yard.example.com", False),
    ],
)
def test_cors_origins_are_exact_https_origins(origin: str, ok: bool) -> None:
    if ok:
        assert authz.check_origin(origin) == origin
    else:
        with pytest.raises(ValueError):
            authz.check_origin(origin)


# --- the handler ----------------------------------------------------------------------------


def _call(event: dict[str, Any], context: Any) -> tuple[int, dict[str, Any], dict[str, list[str]]]:
    response = api_handler.handler(event, context)
    return response["statusCode"], json.loads(response["body"]), response.get("multiValueHeaders") or {}


# Requests whose body or parameters the validator refuses: an authorised caller gets 400.
INVALID = {
    CREATE: lambda claims: rest_event("POST", "/assessments", {"vin": VIN, "mileage": -1}, claims=claims),
    READ: lambda claims: rest_event(
        "GET", "/assessments/a.b", path_parameters={"assessment_id": "a.b"}, claims=claims
    ),
    HISTORY: lambda claims: rest_event(
        "GET",
        f"/vehicles/{VIN}/assessments",
        query={"limit": "0"},
        path_parameters={"vin": VIN},
        claims=claims,
    ),
    REGENERATE: lambda claims: rest_event(
        "POST",
        "/assessments/a1/descriptions",
        {"language": 7},
        path_parameters={"assessment_id": "a1"},
        claims=claims,
    ),
}


@pytest.mark.parametrize(
    ("who", "claims", "route", "status"),
    [
        ("yard", YARD, CREATE, 400),
        ("yard", YARD, REGENERATE, 403),
        ("yard", YARD, HISTORY, 403),
        ("appraiser", APPRAISER, REGENERATE, 400),
        ("appraiser", APPRAISER, CREATE, 403),
        ("integration read", machine(Scope.READ), HISTORY, 400),
        ("integration read", machine(Scope.READ), CREATE, 403),
        ("integration write", machine(Scope.WRITE), CREATE, 400),
        ("no claims", None, READ, 401),
        ("no subject", {"cognito:groups": "admin"}, CREATE, 401),
    ],
)
def test_handler_enforces_the_table_before_validation(
    who: str, claims: dict[str, Any] | None, route: str, status: int, lambda_context: Any
) -> None:
    code, body, headers = _call(INVALID[route](claims), lambda_context)
    assert code == status, body
    if status in (401, 403):
        assert set(body) == {"message"} and body["message"]
    if status == 401:
        assert headers["WWW-Authenticate"] == ["Bearer"]


def test_every_route_refuses_a_request_without_claims(lambda_context: Any) -> None:
    for route, event in INVALID.items():
        code, _, _ = _call(event(None), lambda_context)
        assert code == 401, route
    # Unknown routes too: no hint of what exists to an anonymous caller.
    assert _call(rest_event("DELETE", "/admin", claims=None), lambda_context)[0] == 401
    assert _call(rest_event("DELETE", "/admin"), lambda_context)[0] == 404


# --- CORS headers from the Lambda -------------------------------------------------------------


@pytest.fixture
def cors_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The API module as built with CORS_ALLOWED_ORIGINS set (Powertools binds CORS at import)."""
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", '["https://yard.example.com", "https://review.example.com"]')
    yield importlib.reload(api_handler)
    monkeypatch.delenv("CORS_ALLOWED_ORIGINS")
    importlib.reload(api_handler)


def test_no_cors_headers_without_allowed_origins(lambda_context: Any) -> None:
    event = INVALID[CREATE](YARD)
    event["headers"]["Origin"] = "https://yard.example.com"
    response = api_handler.handler(event, lambda_context)
    assert not any(h.lower().startswith("access-control") for h in response["multiValueHeaders"])


def test_cors_headers_only_for_allowed_origins(cors_api: Any, lambda_context: Any) -> None:
    for origin, expected in (
        ("https://review.example.com", ["https://review.example.com"]),
        ("https://evil.example.net", None),
    ):
        too_deep = rest_event("POST", "/assessments", "[" * 40 + "]" * 40, claims=YARD)
        for event, status in (
            (INVALID[CREATE](YARD), 400),  # routed
            (INVALID[CREATE](APPRAISER), 403),  # refused before routing: not this group's route
            (too_deep, 400),  # refused before routing: a body no route reads
        ):
            event["headers"]["Origin"] = origin
            event["multiValueHeaders"]["Origin"] = [origin]
            response = cors_api.handler(event, lambda_context)
            assert response["statusCode"] == status
            headers = response["multiValueHeaders"]
            assert headers.get("Access-Control-Allow-Origin") == expected, (origin, status, headers)
