"""Who may call which API route: one table, read by the API handler on every request and by the CDK
app for the gateway's per-method OAuth scopes, so the two cannot drift apart.

Callers sign in with the stack's Amazon Cognito user pool and send an **access token**:

- people (the yard app, the review web page) are judged by their groups, the token's
  ``cognito:groups`` claim: ``yard``, ``appraiser``, ``admin``;
- machine clients (client-credentials grant, no user) are judged by the token's ``scope`` claim:
  ``assessments/read``, ``assessments/write``.

A person's token is never judged by its scopes, so granting a custom scope to the public client
later cannot bypass the group table. Missing or unreadable claims answer 401, a known caller without
the right group or scope 403.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Group(StrEnum):
    YARD = "yard"
    APPRAISER = "appraiser"
    ADMIN = "admin"


GROUP_DESCRIPTIONS: dict[Group, str] = {
    Group.YARD: "Yard staff: open assessments and upload photos, follow their progress",
    Group.APPRAISER: "Appraisers: read assessments and a vehicle's history, the review queue; review photos, "
    "edit and regenerate descriptions",
    Group.ADMIN: "Administrators: every route but reviewing photos and editing descriptions (an appraiser's "
    "signed judgement)",
}

# The resource server of the machine clients' custom scopes (scope names are "<identifier>/<name>").
RESOURCE_SERVER = "assessments"


class Scope(StrEnum):
    READ = f"{RESOURCE_SERVER}/read"
    WRITE = f"{RESOURCE_SERVER}/write"


SCOPE_DESCRIPTIONS: dict[Scope, str] = {
    Scope.READ: "Read assessments and a vehicle's assessment history",
    Scope.WRITE: "Open assessments and regenerate descriptions",
}

# Scopes that every signed-in person's access token carries: SRP sign-in (InitiateAuth) issues
# `aws.cognito.signin.user.admin`; the hosted sign-in (authorization code + PKCE) issues what the
# client asked for, `openid` included. A REST method with OAuth scopes accepts an access token that
# holds ANY of them (and then refuses ID tokens), so the gateway lists these beside the route's own.
# https://docs.aws.amazon.com/cognito/latest/developerguide/amazon-cognito-user-pools-using-the-access-token.html
PERSON_TOKEN_SCOPES: tuple[str, ...] = ("aws.cognito.signin.user.admin", "openid")


@dataclass(frozen=True)
class RouteAccess:
    groups: frozenset[Group]
    scopes: frozenset[Scope]
    why: str

    def describe(self) -> str:
        """The sentence the OpenAPI description carries."""
        people = ", ".join(sorted(self.groups)) or "nobody"
        machines = ", ".join(sorted(self.scopes)) or "none"
        return f"Allowed groups: {people}. Machine clients need scope: {machines}. Why: {self.why}"

    def gateway_scopes(self) -> list[str]:
        """The gateway method's AuthorizationScopes: any person's token, or this route's machine scope."""
        return [*PERSON_TOKEN_SCOPES, *sorted(self.scopes)]


_ALL_PEOPLE = frozenset(Group)

# The one table: route ("METHOD /template" as API Gateway names resources) -> who may call it.
ROUTES: dict[str, RouteAccess] = {
    "POST /assessments": RouteAccess(
        groups=frozenset({Group.YARD, Group.ADMIN}),
        scopes=frozenset({Scope.WRITE}),
        why="yard staff open an assessment when a vehicle arrives and get its upload forms; "
        "an integration (e.g. an auction system) may open one too. Appraisers review, they do not intake.",
    ),
    "GET /assessments": RouteAccess(
        groups=_ALL_PEOPLE,
        scopes=frozenset({Scope.READ}),
        why="the web app's first page: yard staff find the assessments they opened, appraisers those "
        "that need review.",
    ),
    "GET /assessments/{assessment_id}": RouteAccess(
        groups=_ALL_PEOPLE,
        scopes=frozenset({Scope.READ}),
        why="the yard app shows upload progress and rejected photos to retake; appraisers review the result.",
    ),
    "GET /assessments/{assessment_id}/media": RouteAccess(
        groups=_ALL_PEOPLE,
        scopes=frozenset({Scope.READ}),
        why="whoever may read an assessment may see its photos, audio and neighbours' reference photos.",
    ),
    "GET /vehicles/{vin}/assessments": RouteAccess(
        groups=frozenset({Group.APPRAISER, Group.ADMIN}),
        scopes=frozenset({Scope.READ}),
        why="a vehicle's history across yards is valuation work, not intake.",
    ),
    "GET /reviews": RouteAccess(
        groups=frozenset({Group.APPRAISER, Group.ADMIN}),
        scopes=frozenset({Scope.READ}),
        why="the queue of photos awaiting a person is the appraisers' work list; an integration may "
        "watch its length.",
    ),
    "PUT /assessments/{assessment_id}/photos/{photo_id}/review": RouteAccess(
        groups=frozenset({Group.APPRAISER}),
        scopes=frozenset(),
        why="a review is an appraiser's judgement, recorded under their sign-in name (the audit trail a "
        "dispute is settled with): no machine client and no other role may record one.",
    ),
    "PUT /assessments/{assessment_id}/descriptions/{language}": RouteAccess(
        groups=frozenset({Group.APPRAISER}),
        scopes=frozenset(),
        why="a person's text replaces what the auction reads; it is recorded under the appraiser's name.",
    ),
    "POST /assessments/{assessment_id}/descriptions": RouteAccess(
        groups=frozenset({Group.APPRAISER, Group.ADMIN}),
        scopes=frozenset({Scope.WRITE}),
        why="regenerating rewrites the reviewed description and calls the language model (billed); "
        "it is part of the appraiser's review.",
    ),
}


@dataclass(frozen=True)
class Caller:
    subject: str
    is_person: bool
    groups: frozenset[str]
    scopes: frozenset[str]


@dataclass(frozen=True)
class Decision:
    status: int  # 200 allowed, 401 no usable identity, 403 identity without the right
    message: str

    @property
    def allowed(self) -> bool:
        return self.status == 200


def _claim_values(value: Any) -> frozenset[str]:
    """A multi-valued claim in any shape it arrives in.

    REST API authorizers flatten arrays to strings ("yard,admin"), HTTP API ones to "[yard admin]",
    a test or a direct invocation may pass a list or a JSON array; ``scope`` is space-separated.
    """
    if value is None:
        return frozenset()
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("[") and text.endswith("]"):
            try:
                parsed = json.loads(text)
            except ValueError:
                text = text[1:-1]
            else:
                return _claim_values(parsed)
        return frozenset(part for part in re.split(r"[,\s]+", text) if part)
    if isinstance(value, Iterable):
        return frozenset(str(v).strip() for v in value if str(v).strip())
    return frozenset({str(value)})


def caller_from_claims(claims: Mapping[str, Any] | None) -> Caller | None:
    """The caller the authorizer vouched for, or None without a subject (no token, or not Cognito's)."""
    if not claims:
        return None
    subject = str(claims.get("sub") or "").strip()
    if not subject:
        return None
    # Access tokens of people carry `username`, ID tokens `cognito:username`; client-credentials
    # tokens carry neither (their `sub` is the app client id).
    is_person = bool(claims.get("username") or claims.get("cognito:username"))
    return Caller(
        subject=subject,
        is_person=is_person,
        groups=_claim_values(claims.get("cognito:groups")),
        scopes=_claim_values(claims.get("scope")),
    )


def person_name(claims: Mapping[str, Any] | None) -> str | None:
    """A signed-in person's user name (access tokens: ``username``; ID tokens: ``cognito:username``);
    None for a machine client or no token. What a review or an edit is recorded under."""
    if not claims:
        return None
    name = str(claims.get("username") or claims.get("cognito:username") or "").strip()
    return name or None


_TEMPLATES: list[tuple[str, re.Pattern[str], str]] = [
    (
        key.split(" ", 1)[0],
        re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(key.split(" ", 1)[1])) + "/?$"),
        key,
    )
    for key in ROUTES
]


def route_key(method: str, path: str) -> str | None:
    """The table's key for a request, matched on the same path the router dispatches on."""
    method = method.upper()
    for route_method, pattern, key in _TEMPLATES:
        if route_method == method and pattern.match(path):
            return key
    return None


def authorize(route: str | None, claims: Mapping[str, Any] | None) -> Decision:
    """Allow or refuse one request. ``route`` None (no such route): only the identity is checked,
    so the router can answer 404/405 to a signed-in caller and 401 to everyone else."""
    caller = caller_from_claims(claims)
    if caller is None:
        return Decision(401, "sign in: send a Cognito access token as 'Authorization: Bearer <token>'")
    if route is None:
        return Decision(200, "no such route; the router answers")
    access = ROUTES[route]
    if caller.is_person:
        if caller.groups & access.groups:
            return Decision(200, "allowed by group")
        needed = ", ".join(sorted(access.groups))
        return Decision(403, f"{route} is for the groups {needed}; you are in: {_listed(caller.groups)}")
    if caller.scopes & access.scopes:
        return Decision(200, "allowed by scope")
    needed = ", ".join(sorted(access.scopes))
    return Decision(403, f"{route} needs the scope {needed}; the token has: {_listed(caller.scopes)}")


def _listed(values: frozenset[str]) -> str:
    return ", ".join(sorted(values)) or "none"


_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")


def check_origin(origin: str) -> str:
    """A browser origin as CORS compares it: scheme://host[:port], no path, no wildcard.

    Plain http is only for localhost (a developer's machine).
    """
    if origin == "*":
        raise ValueError("'*' allows every web site to call the API from a browser: list the origins")
    if not _ORIGIN.match(origin):
        raise ValueError(f"{origin!r} is not an origin (scheme://host[:port], without path or trailing /)")
    if origin.startswith("http://") and not re.match(r"^http://(localhost|127\.0\.0\.1)(:|$)", origin):
        raise ValueError(f"{origin!r}: browser origins must use https (http only for localhost)")
    return origin
