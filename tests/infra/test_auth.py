"""Sign-in and browser access in the synthesized stack: the Cognito user pool and its clients, the
authorizer on every API method, CORS preflights without auth, and no '*' origin by default."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template

from infra.config import InfraConfig
from tests.infra.cfn import resources_of
from tests.infra.conftest import TEST_CONTEXT
from vehicle_assessment.aws_runtime import authz

pytestmark = pytest.mark.slow  # synthesizes the CDK app

OUTPUT_KEYS = {
    "ApiUrl",
    "UserPoolId",
    "UserPoolClientId",
    "IntegrationClientId",
    "CognitoDomain",
    "UploadBucketName",
}


def _one(template_json: dict[str, Any], kind: str, **match: Any) -> dict[str, Any]:
    found = [
        r["Properties"]
        for r in resources_of(template_json, kind).values()
        if all(r["Properties"].get(k) == v for k, v in match.items())
    ]
    assert len(found) == 1, (kind, match, len(found))
    return found[0]


def _methods(template_json: dict[str, Any]) -> list[dict[str, Any]]:
    return [m["Properties"] for m in resources_of(template_json, "AWS::ApiGateway::Method").values()]


def test_user_pool_admin_created_users_strong_passwords_optional_totp(template_json: dict[str, Any]) -> None:
    [pool] = resources_of(template_json, "AWS::Cognito::UserPool").values()
    props = pool["Properties"]
    assert props["AdminCreateUserConfig"] == {"AllowAdminCreateUserOnly": True}
    policy = props["Policies"]["PasswordPolicy"]
    assert policy["MinimumLength"] >= 12
    assert all(
        policy[k] for k in ("RequireLowercase", "RequireUppercase", "RequireNumbers", "RequireSymbols")
    )
    assert (props["MfaConfiguration"], props["EnabledMfas"]) == ("OPTIONAL", ["SOFTWARE_TOKEN_MFA"])
    # Threat protection (advanced security) enforced by default, on the plan that offers it.
    assert props["UserPoolAddOns"] == {"AdvancedSecurityMode": "ENFORCED"}
    assert props["UserPoolTier"] == "PLUS"
    # The test context destroys on delete; a retained pool (the default) is deletion-protected.
    assert TEST_CONTEXT["removal_policy"] == "destroy" and props["DeletionProtection"] == "INACTIVE"
    assert pool["DeletionPolicy"] == "Delete"


def test_groups_are_the_authz_groups(template_json: dict[str, Any]) -> None:
    names = {
        g["Properties"]["GroupName"]
        for g in resources_of(template_json, "AWS::Cognito::UserPoolGroup").values()
    }
    assert names == {"yard", "appraiser", "admin"} == {g.value for g in authz.Group}


def test_public_client_srp_and_code_flow_without_secret(template_json: dict[str, Any]) -> None:
    client = _one(template_json, "AWS::Cognito::UserPoolClient", ClientName="yard-app-and-review-page")
    assert client["GenerateSecret"] is False
    assert set(client["ExplicitAuthFlows"]) == {"ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"}
    assert client["AllowedOAuthFlows"] == ["code"]  # no implicit grant
    assert client["CallbackURLs"] == TEST_CONTEXT["cognito_callback_urls"]
    assert "openid" in client["AllowedOAuthScopes"]
    assert client["PreventUserExistenceErrors"] == "ENABLED"


def test_integration_client_credentials_with_resource_server_scopes(template_json: dict[str, Any]) -> None:
    client = _one(template_json, "AWS::Cognito::UserPoolClient", ClientName="integrations")
    assert client["GenerateSecret"] is True
    assert client["AllowedOAuthFlows"] == ["client_credentials"]
    assert client["ExplicitAuthFlows"] == ["ALLOW_REFRESH_TOKEN_AUTH"]  # no user sign-in flow
    [server] = resources_of(template_json, "AWS::Cognito::UserPoolResourceServer").values()
    assert server["Properties"]["Identifier"] == authz.RESOURCE_SERVER
    scopes = {f"{authz.RESOURCE_SERVER}/{s['ScopeName']}" for s in server["Properties"]["Scopes"]}
    assert scopes == {s.value for s in authz.Scope}
    allowed = json.dumps(client["AllowedOAuthScopes"])
    assert '"/read"' in allowed and '"/write"' in allowed
    [domain] = resources_of(template_json, "AWS::Cognito::UserPoolDomain").values()
    assert "vehicle-assessment" in json.dumps(domain["Properties"]["Domain"])


def test_cognito_authorizer_with_the_route_scopes_on_every_method(template_json: dict[str, Any]) -> None:
    [authorizer] = resources_of(template_json, "AWS::ApiGateway::Authorizer").values()
    assert authorizer["Properties"]["Type"] == "COGNITO_USER_POOLS"
    assert authorizer["Properties"]["IdentitySource"] == "method.request.header.Authorization"
    methods = [m for m in _methods(template_json) if m["HttpMethod"] != "OPTIONS"]
    assert len(methods) == len(authz.ROUTES)
    expected = sorted(sorted(access.gateway_scopes()) for access in authz.ROUTES.values())
    assert sorted(sorted(m["AuthorizationScopes"]) for m in methods) == expected
    for method in methods:
        assert method["AuthorizationType"] == "COGNITO_USER_POOLS"
        assert method["AuthorizerId"] == {
            "Ref": next(iter(resources_of(template_json, "AWS::ApiGateway::Authorizer")))
        }


def test_preflights_need_no_token_and_allow_only_the_listed_origin(template_json: dict[str, Any]) -> None:
    preflights = [m for m in _methods(template_json) if m["HttpMethod"] == "OPTIONS"]
    assert preflights
    for method in preflights:
        assert method["AuthorizationType"] == "NONE" and "AuthorizerId" not in method
        assert method["Integration"]["Type"] == "MOCK"
    text = json.dumps(preflights)
    assert "https://yard.example.com" in text and "'*'" not in text
    [bucket_cors] = [
        b["Properties"]["CorsConfiguration"]
        for b in resources_of(template_json, "AWS::S3::Bucket").values()
        if "CorsConfiguration" in b["Properties"]
    ]
    # Beside the configured origin, only the stack's own web app (its origin, tests/infra/test_site.py).
    [rule] = bucket_cors["CorsRules"]
    assert rule["AllowedOrigins"][0] == "https://yard.example.com" and len(rule["AllowedOrigins"]) == 2
    [api_fn] = [
        f["Properties"]
        for f in resources_of(template_json, "AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "functions.api.handler"
    ]
    origins = json.dumps(api_fn["Environment"]["Variables"]["CORS_ALLOWED_ORIGINS"])
    assert "https://yard.example.com" in origins and "*" not in origins
    # The gateway's own errors (401 bad token, 429) readable by the browser app too: one static
    # origin, the stack's web app's (test_site.py); without a site, the single configured one.
    responses = {
        r["Properties"]["ResponseType"]
        for r in resources_of(template_json, "AWS::ApiGateway::GatewayResponse").values()
    }
    assert responses == {"DEFAULT_4XX", "DEFAULT_5XX"}


def test_outputs_clients_read(template_json: dict[str, Any]) -> None:
    assert set(template_json["Outputs"]) >= OUTPUT_KEYS
    domain = json.dumps(template_json["Outputs"]["CognitoDomain"]["Value"])
    assert '"https://"' in domain and ".amazoncognito.com" in domain


# --- defaults, in a small stack of the constructs concerned (the full synth takes ~30 s here) ---


@pytest.fixture(scope="module")
def default_template() -> dict[str, Any]:
    from aws_cdk import App, Stack
    from aws_cdk import aws_dynamodb as dynamodb
    from aws_cdk import aws_lambda as lambda_

    from infra.config import rules_json
    from infra.constructs.api import Api
    from infra.constructs.auth import Auth
    from infra.constructs.ingest import Ingest

    config = InfraConfig(bundling="skip")
    assert config.cors_allowed_origins == [] and config.cognito_callback_urls == []
    stack = Stack(App(), "Defaults")
    table = dynamodb.Table(
        stack, "T", partition_key=dynamodb.Attribute(name="PK", type=dynamodb.AttributeType.STRING)
    )
    ingest = Ingest(stack, "Ingest", config=config)
    auth = Auth(stack, "Auth", config=config)
    Api(
        stack,
        "Api",
        config=config,
        code=lambda_.Code.from_inline("def handler(event, context): ..."),
        common_environment={},
        table=table,
        bucket=ingest.bucket,
        user_pool=auth.user_pool,
        rules_json=rules_json(config),
    )
    return Template.from_stack(stack).to_json()


def test_by_default_no_browser_origin_no_preflight_no_hosted_redirect(
    default_template: dict[str, Any],
) -> None:
    methods = _methods(default_template)
    assert len(methods) == len(authz.ROUTES)
    assert all(m["AuthorizationType"] == "COGNITO_USER_POOLS" for m in methods)
    assert not any(
        "CorsConfiguration" in b["Properties"]
        for b in resources_of(default_template, "AWS::S3::Bucket").values()
    )
    assert "*" not in json.dumps(methods)
    assert not resources_of(default_template, "AWS::ApiGateway::GatewayResponse")
    # Without callback URLs the public client signs in with SRP only (no example.com redirect).
    client = _one(default_template, "AWS::Cognito::UserPoolClient", ClientName="yard-app-and-review-page")
    assert "AllowedOAuthFlows" not in client and "CallbackURLs" not in client
    [pool] = resources_of(default_template, "AWS::Cognito::UserPool").values()
    assert pool["Properties"]["DeletionProtection"] == "ACTIVE" and pool["DeletionPolicy"] == "Retain"


@pytest.mark.parametrize("threat_protection", ["enforced", "audit", "off"])
def test_user_pool_passes_cdk_nag_for_every_threat_protection_setting(
    threat_protection: str, tmp_path: Path
) -> None:
    # cdk-nag on the Auth construct alone: "off" (Essentials plan) needs its own acknowledgments.
    from aws_cdk import App, Stack, Validations
    from cdk_nag import AwsSolutionsChecks

    from infra.constructs.auth import Auth

    app = App(outdir=str(tmp_path))
    Auth(Stack(app, "AuthOnly"), "Auth", config=InfraConfig(cognito_threat_protection=threat_protection))
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()  # raises on any unacknowledged finding
