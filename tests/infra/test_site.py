"""The review web app's site in the synthesized stack: a private bucket read by CloudFront through
origin access control, HTTPS only with security headers, the deployed files and config.json, its own
Cognito client (code grant, no secret) with redirects to the distribution, and the API and upload
bucket allowing the site's origin."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infra.cfn import placeholder, resolve_value, resources_of

pytestmark = pytest.mark.slow  # synthesizes the CDK app

YARD_ORIGIN = "https://yard.example.com"  # tests/infra/conftest.py TEST_CONTEXT


def _only(template: dict[str, Any], kind: str) -> tuple[str, dict[str, Any]]:
    [(logical_id, resource)] = resources_of(template, kind).items()
    return logical_id, resource


def _resolved(template: dict[str, Any], value: Any) -> Any:
    return resolve_value(value, placeholder(template))


@pytest.fixture(scope="module")
def site_origin(template_json: dict[str, Any]) -> str:
    distribution_id, _ = _only(template_json, "AWS::CloudFront::Distribution")
    return f"https://{distribution_id.lower()}-domainname"


def _site_bucket(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    _, distribution = _only(template, "AWS::CloudFront::Distribution")
    [origin] = distribution["Properties"]["DistributionConfig"]["Origins"]
    bucket_id = origin["DomainName"]["Fn::GetAtt"][0]
    return bucket_id, template["Resources"][bucket_id]


def test_site_bucket_is_private_encrypted_and_tls_only(template_json: dict[str, Any]) -> None:
    bucket_id, bucket = _site_bucket(template_json)
    properties = bucket["Properties"]
    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    [rule] = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert "WebsiteConfiguration" not in properties  # served by CloudFront only, never as a website
    [policy] = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in resources_of(template_json, "AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": bucket_id}
    ]
    denies_plain_http = [
        s
        for s in policy
        if s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert denies_plain_http
    # Only CloudFront (this distribution, by its ARN) may read; nobody else is allowed anything.
    allows = [s for s in policy if s["Effect"] == "Allow"]
    assert allows and all(s["Principal"] == {"Service": "cloudfront.amazonaws.com"} for s in allows)
    assert all("AWS:SourceArn" in json.dumps(s["Condition"]) for s in allows)
    assert all(s["Action"] == "s3:GetObject" for s in allows)


def test_distribution_reads_through_oac_https_only_with_security_headers(
    template_json: dict[str, Any],
) -> None:
    _, distribution = _only(template_json, "AWS::CloudFront::Distribution")
    config = distribution["Properties"]["DistributionConfig"]
    [origin] = config["Origins"]
    assert "OriginAccessControlId" in origin
    assert origin["S3OriginConfig"]["OriginAccessIdentity"] == ""  # OAC, not the legacy OAI
    _, oac = _only(template_json, "AWS::CloudFront::OriginAccessControl")
    assert oac["Properties"]["OriginAccessControlConfig"]["SigningBehavior"] == "always"
    behaviour = config["DefaultCacheBehavior"]
    assert behaviour["ViewerProtocolPolicy"] == "redirect-to-https"
    assert behaviour["AllowedMethods"] == ["GET", "HEAD"]
    assert config["DefaultRootObject"] == "index.html"
    assert "Logging" in config
    headers_id, headers = _only(template_json, "AWS::CloudFront::ResponseHeadersPolicy")
    assert behaviour["ResponseHeadersPolicyId"] == {"Ref": headers_id}
    security = headers["Properties"]["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    assert security["StrictTransportSecurity"]["AccessControlMaxAgeSec"] >= 31_536_000
    assert security["StrictTransportSecurity"]["Override"] is True
    assert security["FrameOptions"] == {"FrameOption": "DENY", "Override": True}
    assert security["ContentTypeOptions"] == {"Override": True}
    assert security["ReferrerPolicy"]["ReferrerPolicy"] == "no-referrer"


def test_content_security_policy_allows_the_site_api_cognito_and_s3_only(
    template_json: dict[str, Any],
) -> None:
    _, headers = _only(template_json, "AWS::CloudFront::ResponseHeadersPolicy")
    csp_value = headers["Properties"]["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"][
        "ContentSecurityPolicy"
    ]
    assert csp_value["Override"] is True
    csp = _resolved(template_json, csp_value["ContentSecurityPolicy"])
    directives = {d.split()[0]: d.split()[1:] for d in csp.split("; ")}
    assert directives["default-src"] == ["'none'"]
    assert directives["script-src"] == ["'self'"] and directives["style-src"] == ["'self'"]
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert directives["frame-ancestors"] == ["'none'"] and directives["object-src"] == ["'none'"]
    api_id, _ = _only(template_json, "AWS::ApiGateway::RestApi")
    domain_id, _ = _only(template_json, "AWS::Cognito::UserPoolDomain")
    assert directives["connect-src"] == [
        "'self'",
        f"https://{api_id.lower()}-ref.execute-api.us-east-1.amazonaws.com",
        f"https://{domain_id.lower()}-ref.auth.us-east-1.amazoncognito.com",
        "https://*.s3.us-east-1.amazonaws.com",
        "https://s3.us-east-1.amazonaws.com",
    ]
    # Photos and audio only from S3 (presigned), previews of dropped files as blob: URLs.
    assert directives["img-src"] == [
        "'self'",
        "blob:",
        "https://*.s3.us-east-1.amazonaws.com",
        "https://s3.us-east-1.amazonaws.com",
    ]
    assert directives["media-src"] == [
        "https://*.s3.us-east-1.amazonaws.com",
        "https://s3.us-east-1.amazonaws.com",
    ]


def test_site_client_is_public_code_grant_redirecting_to_the_distribution(
    template_json: dict[str, Any], site_origin: str
) -> None:
    [client] = [
        r["Properties"]
        for r in resources_of(template_json, "AWS::Cognito::UserPoolClient").values()
        if r["Properties"].get("ClientName") == "review-web-app"
    ]
    assert not client.get("GenerateSecret", False)
    assert client["AllowedOAuthFlows"] == ["code"]  # no implicit grant; the page sends PKCE S256
    assert client["AllowedOAuthFlowsUserPoolClient"] is True
    assert sorted(client["AllowedOAuthScopes"]) == ["email", "openid", "profile"]
    assert _resolved(template_json, client["CallbackURLs"]) == [f"{site_origin}/"]
    assert _resolved(template_json, client["LogoutURLs"]) == [f"{site_origin}/"]
    assert client["SupportedIdentityProviders"] == ["COGNITO"]


def test_deployment_copies_the_web_app_and_a_config_json_from_stack_values(
    template_json: dict[str, Any], site_origin: str
) -> None:
    [deployment] = [
        r["Properties"]
        for r in template_json["Resources"].values()
        if r["Type"] == "Custom::CDKBucketDeployment"
    ]
    bucket_id, _ = _site_bucket(template_json)
    assert deployment["DestinationBucketName"] == {"Ref": bucket_id}
    assert deployment["Prune"] is True
    assert deployment["DistributionPaths"] == ["/*"]
    assert len(deployment["SourceObjectKeys"]) == 2  # the static files and config.json
    # Source.json_data: the config's values are markers the custom resource replaces at deployment.
    markers = _resolved(template_json, deployment["SourceMarkers"])
    config_markers = next(m for m in markers if m)
    values = {json.loads(v) for v in config_markers.values()}  # each marker stands for a JSON value
    api_id, _ = _only(template_json, "AWS::ApiGateway::RestApi")
    assert any(v.startswith(f"https://{api_id.lower()}-ref.execute-api.") for v in values)
    assert f"{site_origin}/" in values
    client_ids = {
        f"{k.lower()}-ref"
        for k, r in resources_of(template_json, "AWS::Cognito::UserPoolClient").items()
        if r["Properties"].get("ClientName") == "review-web-app"
    }
    assert values & client_ids


def test_api_and_upload_bucket_allow_the_site_origin(template_json: dict[str, Any], site_origin: str) -> None:
    [api_fn] = [
        f["Properties"]
        for f in resources_of(template_json, "AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "functions.api.handler"
    ]
    origins = json.loads(_resolved(template_json, api_fn["Environment"]["Variables"]["CORS_ALLOWED_ORIGINS"]))
    assert origins == [site_origin, YARD_ORIGIN]
    preflights = [
        r["Properties"]
        for r in resources_of(template_json, "AWS::ApiGateway::Method").values()
        if r["Properties"]["HttpMethod"] == "OPTIONS"
    ]
    assert preflights
    for preflight in preflights:
        [response] = preflight["Integration"]["IntegrationResponses"]
        parameters = _resolved(template_json, response["ResponseParameters"])
        assert parameters["method.response.header.Access-Control-Allow-Origin"] == f"'{site_origin}'"
        assert "PUT" in parameters["method.response.header.Access-Control-Allow-Methods"]
        assert YARD_ORIGIN in json.dumps(response["ResponseTemplates"])  # the second origin, by equality
    # The gateway's own errors carry the site's origin (one static header value).
    for response in resources_of(template_json, "AWS::ApiGateway::GatewayResponse").values():
        parameters = _resolved(template_json, response["Properties"]["ResponseParameters"])
        assert parameters["gatewayresponse.header.Access-Control-Allow-Origin"] == f"'{site_origin}'"
    [upload_cors] = [
        b["Properties"]["CorsConfiguration"]
        for b in resources_of(template_json, "AWS::S3::Bucket").values()
        if "CorsConfiguration" in b["Properties"]
    ]
    [rule] = upload_cors["CorsRules"]
    assert _resolved(template_json, rule["AllowedOrigins"]) == [YARD_ORIGIN, site_origin]


def test_outputs_name_the_site(template_json: dict[str, Any], site_origin: str) -> None:
    outputs = template_json["Outputs"]
    assert _resolved(template_json, outputs["SiteUrl"]["Value"]) == f"{site_origin}/"
    assert "SiteClientId" in outputs
