"""The REST API: Cognito-authorised routes proxied to the API Lambda, validated at the gateway.

Every method needs a Cognito access token (the authorizer checks it before the Lambda runs) holding a
scope of ``authz.ROUTES``; the Lambda then checks the caller's groups or scopes against the same table.
CORS preflights (OPTIONS) exist only when ``cors_allowed_origins`` lists browser origins, and need no token.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_cdk import Duration, Fn, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct
from pydantic import BaseModel

from infra.config import InfraConfig
from infra.constructs.lambdas import (
    READ_PINNED_PHOTO,
    FunctionSpec,
    PipelineFunction,
    acknowledge,
    grant_objects,
    grant_speech,
    grant_table,
    removal,
    retention,
)
from infra.constructs.workflow import bedrock_invoke_statements
from vehicle_assessment.aws_runtime import authz
from vehicle_assessment.aws_runtime.api import (
    CreateAssessmentRequest,
    EditDescriptionRequest,
    RegenerateDescriptionRequest,
    ReviewPhotoRequest,
)
from vehicle_assessment.domain import limits
from vehicle_assessment.domain.upload_keys import REFERENCE_IMAGE_PREFIX


def draft4_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A pydantic model's JSON schema as API Gateway accepts it (JSON Schema draft 4, no $ref).

    One source of truth for request bodies: the gateway rejects what the Lambda would reject,
    before the Lambda is invoked (and billed).
    """
    raw = model.model_json_schema()
    defs = raw.pop("$defs", {})

    def convert(node: Any) -> Any:
        if isinstance(node, list):
            return [convert(n) for n in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            return convert(defs[node["$ref"].rsplit("/", 1)[1]])
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in ("title", "description", "default", "examples"):
                continue
            if key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
                # draft 2020-12 gives the bound; draft 4 wants minimum/maximum plus a flag.
                out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
                out[key] = True
                continue
            out[key] = convert(value)
        return out

    schema = convert(raw)
    schema["$schema"] = "http://json-schema.org/draft-04/schema#"
    return schema


class Api(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: InfraConfig,
        code: lambda_.Code,
        common_environment: Mapping[str, str],
        table: dynamodb.ITable,
        bucket: s3.IBucket,
        user_pool: cognito.IUserPool,
        site_origin: str | None = None,
        rules_json: str,
    ) -> None:
        """``site_origin``: the stack's own web app (infra/constructs/site.py), allowed beside the
        configured ``cors_allowed_origins``."""
        super().__init__(scope, construct_id)
        self.site_origin = site_origin
        self.browser_origins = [*([site_origin] if site_origin else []), *config.cors_allowed_origins]
        self.handler = self._build_handler(config, code, common_environment, table, bucket, rules_json)
        self.authorizer = apigw.CognitoUserPoolsAuthorizer(
            self,
            "Authorizer",
            cognito_user_pools=[user_pool],
            identity_source=apigw.IdentitySource.header("Authorization"),
            # Cached per token: a revoked token is still accepted for up to this long.
            results_cache_ttl=Duration.minutes(5),
        )
        self.rest_api = self._build_rest_api(config)
        self._add_error_cors(config)
        self._add_routes()
        self._acknowledge_findings()

    def _build_handler(
        self,
        config: InfraConfig,
        code: lambda_.Code,
        common_environment: Mapping[str, str],
        table: dynamodb.ITable,
        bucket: s3.IBucket,
        rules_json: str,
    ) -> PipelineFunction:
        stack = Stack.of(self)
        handler = PipelineFunction(
            self,
            "ApiFn",
            spec=FunctionSpec(
                handler="functions.api.handler",
                description="REST API: assessments, upload forms, history, descriptions, reviews",
                # Regenerating a description calls Bedrock and Polly, and so does a review (every pair at
                # once, aws_runtime/api.py); API Gateway waits 29 s at most.
                timeout=Duration.seconds(limits.API_GATEWAY_TIMEOUT_S),
                memory_mb=512,
                environment={
                    "BUCKET_NAME": bucket.bucket_name,
                    "EXPECTED_PHOTOS": str(config.expected_photos),
                    "BEDROCK": stack.to_json_string({"model_id": config.bedrock_model_id}),
                    # The workflow's rules: a review revalues with the same valuation settings.
                    "RULES": rules_json,
                    # The Lambda's own CORS headers (Powertools) for the same origins as the preflight.
                    # The site's origin is a token until deployment: rendered by the stack, not json.dumps.
                    "CORS_ALLOWED_ORIGINS": stack.to_json_string(self.browser_origins),
                },
            ),
            code=code,
            config=config,
            common_environment=common_environment,
        )
        role = handler.role
        grant_table(table, role, "api")
        # Presigned POSTs are signed with this role: it must be allowed to put what it signs.
        for prefix, why in (
            ("uploads/", "Signs presigned POSTs for uploads/{assessment_id}/{photo}."),
            ("audio/", "Writes regenerated description audio under audio/{assessment_id}/."),
        ):
            grant_objects(bucket, role, "s3:PutObject", prefix, why)
        # GET /assessments/{id}/media presigns GETs with this role: photos by the version that was counted
        # (GetObjectVersion), audio, and the reference photos' display copies. Nothing else is readable.
        for prefix, why in (
            ("uploads/", "Presigns GETs of an assessment's photos (pinned versions) for the review page."),
            ("audio/", "Presigns GETs of an assessment's description audio for the review page."),
            (REFERENCE_IMAGE_PREFIX, "Presigns GETs of reference photos' display copies (review page)."),
        ):
            grant_objects(bucket, role, READ_PINNED_PHOTO, prefix, why)
        for statement in bedrock_invoke_statements(stack, config.bedrock_model_id):
            role.add_to_principal_policy(statement)
        grant_speech(role)
        return handler

    def _build_rest_api(self, config: InfraConfig) -> apigw.RestApi:
        access_logs = logs.LogGroup(
            self, "AccessLogs", retention=retention(config), removal_policy=removal(config)
        )
        return apigw.RestApi(
            self,
            "RestApi",
            description="Vehicle damage assessment API (Cognito-authorised)",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            # Stage logging needs the account's API Gateway CloudWatch role. That role is one setting
            # per account and Region (AWS::ApiGateway::Account): creating it here would replace
            # whatever role another stack set, so only when the context flag asks for it.
            cloud_watch_role=config.api_gateway_cloudwatch_role,
            # CDK refuses a removal policy for a role it does not create.
            cloud_watch_role_removal_policy=removal(config) if config.api_gateway_cloudwatch_role else None,
            deploy_options=apigw.StageOptions(
                stage_name="v1",
                throttling_rate_limit=config.api_throttle_rate,
                throttling_burst_limit=config.api_throttle_burst,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,  # request bodies hold VINs: keep them out of logs
                tracing_enabled=True,
                metrics_enabled=True,
            ),
            # Each method adds its OAuth scopes (authz.ROUTES): with scopes, API Gateway accepts access
            # tokens holding any of them and refuses ID tokens.
            # https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-enable-cognito-user-pool.html
            default_method_options=apigw.MethodOptions(
                authorization_type=apigw.AuthorizationType.COGNITO, authorizer=self.authorizer
            ),
            # Answered by the gateway (mock integration, no token: browsers send none on a preflight).
            default_cors_preflight_options=apigw.CorsOptions(
                allow_origins=self.browser_origins,
                # PUT: the review web app records reviews and edits descriptions.
                allow_methods=["GET", "POST", "PUT", "OPTIONS"],
                allow_headers=["Authorization", "Content-Type"],
                max_age=Duration.minutes(10),
            )
            if self.browser_origins
            else None,
        )

    def _add_error_cors(self, config: InfraConfig) -> None:
        """CORS headers on the errors API Gateway answers itself (401 for a missing or expired token,
        429 throttled): without them a browser app sees a network error, not "sign in again".

        A gateway response header is one static value, so this is done for one origin only: the stack's
        own web app when there is one, else a single configured origin; for any other origin those
        errors reach the browser unreadable (README).
        """
        if self.site_origin:
            origin = self.site_origin
        elif len(config.cors_allowed_origins) == 1:
            [origin] = config.cors_allowed_origins
        else:
            return
        for name, kind in (
            ("Default4xx", apigw.ResponseType.DEFAULT_4_XX),
            ("Default5xx", apigw.ResponseType.DEFAULT_5_XX),
        ):
            self.rest_api.add_gateway_response(
                name,
                type=kind,
                response_headers={
                    "Access-Control-Allow-Origin": Fn.join("", ["'", origin, "'"]),
                    "Access-Control-Allow-Headers": "'Authorization,Content-Type'",
                },
            )

    def _add_routes(self) -> None:
        """One proxy integration; bodies and parameters validated by the gateway first."""
        api = self.rest_api
        integration = apigw.LambdaIntegration(self.handler.invoke_target, proxy=True)
        body_validator = api.add_request_validator(
            "BodyValidator", validate_request_body=True, validate_request_parameters=True
        )
        params_validator = api.add_request_validator(
            "ParamsValidator", validate_request_body=False, validate_request_parameters=True
        )

        def model(name: str, pydantic_model: type) -> apigw.Model:
            return api.add_model(
                name,
                content_type="application/json",
                model_name=name,
                schema=apigw.JsonSchema(**_json_schema_kwargs(draft4_schema(pydantic_model))),
            )

        def scopes(route: str) -> list[str]:
            routed.add(route)
            return authz.ROUTES[route].gateway_scopes()

        routed: set[str] = set()
        assessments = api.root.add_resource("assessments")
        assessments.add_method(
            "POST",
            integration,
            authorization_scopes=scopes("POST /assessments"),
            request_validator=body_validator,
            request_models={"application/json": model("CreateAssessment", CreateAssessmentRequest)},
        )
        assessments.add_method(
            "GET",
            integration,
            authorization_scopes=scopes("GET /assessments"),
            request_validator=params_validator,
            request_parameters={
                f"method.request.querystring.{name}": False
                for name in ("status", "vin", "needs_review", "limit", "next")
            },
        )
        one = assessments.add_resource("{assessment_id}")
        one.add_method(
            "GET",
            integration,
            authorization_scopes=scopes("GET /assessments/{assessment_id}"),
            request_validator=params_validator,
            request_parameters={"method.request.path.assessment_id": True},
        )
        one.add_resource("media").add_method(
            "GET",
            integration,
            authorization_scopes=scopes("GET /assessments/{assessment_id}/media"),
            request_validator=params_validator,
            request_parameters={"method.request.path.assessment_id": True},
        )
        descriptions = one.add_resource("descriptions")
        descriptions.add_method(
            "POST",
            integration,
            authorization_scopes=scopes("POST /assessments/{assessment_id}/descriptions"),
            request_validator=body_validator,
            request_parameters={"method.request.path.assessment_id": True},
            request_models={"application/json": model("RegenerateDescription", RegenerateDescriptionRequest)},
        )
        descriptions.add_resource("{language}").add_method(
            "PUT",
            integration,
            authorization_scopes=scopes("PUT /assessments/{assessment_id}/descriptions/{language}"),
            request_validator=body_validator,
            request_parameters={
                "method.request.path.assessment_id": True,
                "method.request.path.language": True,
                "method.request.querystring.style": False,
            },
            request_models={"application/json": model("EditDescription", EditDescriptionRequest)},
        )
        one.add_resource("photos").add_resource("{photo_id}").add_resource("review").add_method(
            "PUT",
            integration,
            authorization_scopes=scopes("PUT /assessments/{assessment_id}/photos/{photo_id}/review"),
            request_validator=body_validator,
            request_parameters={
                "method.request.path.assessment_id": True,
                "method.request.path.photo_id": True,
            },
            request_models={"application/json": model("ReviewPhoto", ReviewPhotoRequest)},
        )
        api.root.add_resource("reviews").add_method(
            "GET",
            integration,
            authorization_scopes=scopes("GET /reviews"),
            request_validator=params_validator,
            request_parameters={"method.request.querystring.limit": False},
        )
        api.root.add_resource("vehicles").add_resource("{vin}").add_resource("assessments").add_method(
            "GET",
            integration,
            authorization_scopes=scopes("GET /vehicles/{vin}/assessments"),
            request_validator=params_validator,
            request_parameters={"method.request.path.vin": True, "method.request.querystring.limit": False},
        )
        if routed != set(authz.ROUTES):
            raise ValueError(f"routes in authz.ROUTES without a gateway method: {set(authz.ROUTES) - routed}")

    def _acknowledge_findings(self) -> None:
        api = self.rest_api
        acknowledge(
            api,
            "AwsSolutions-APIG3",
            "No WAF web ACL by default: every method needs a Cognito access token that API Gateway checks "
            "before any integration runs, browsers are limited to the listed CORS origins, and stage "
            "throttling bounds abuse. A deployment facing heavy internet traffic should associate one.",
        )
        for method in api.methods:
            if method.http_method != "OPTIONS":
                continue
            for rule in ("AwsSolutions-APIG4", "AwsSolutions-COG4"):
                acknowledge(
                    method,
                    rule,
                    "CORS preflight: browsers send OPTIONS without credentials by design (Fetch standard). "
                    "The gateway answers it with a mock integration (CORS headers only, no data, no Lambda).",
                )
        acknowledge(
            api,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonAPIGatewayPushToCloudWatchLogs]",
            "The account-level role API Gateway needs to write stage execution logs; AWS maintains "
            "this policy for exactly that purpose.",
        )


def _json_schema_kwargs(schema: dict[str, Any]) -> dict[str, Any]:
    """A draft-4 dict as apigw.JsonSchema keyword arguments (recursively)."""
    names = {
        "$schema": "schema",
        "type": "type",
        "properties": "properties",
        "required": "required",
        "additionalProperties": "additional_properties",
        "minLength": "min_length",
        "maxLength": "max_length",
        "minimum": "minimum",
        "maximum": "maximum",
        "exclusiveMinimum": "exclusive_minimum",
        "exclusiveMaximum": "exclusive_maximum",
        "pattern": "pattern",
        "enum": "enum",
        "anyOf": "any_of",
        "items": "items",
        "format": "format",
    }
    out: dict[str, Any] = {}
    for key, value in schema.items():
        name = names.get(key)
        if name is None:
            raise ValueError(f"no API Gateway model equivalent for JSON schema keyword {key!r}")
        if key == "$schema":
            value = apigw.JsonSchemaVersion.DRAFT4
        elif key == "type":
            value = (
                [getattr(apigw.JsonSchemaType, v.upper()) for v in value]
                if isinstance(value, list)
                else getattr(apigw.JsonSchemaType, value.upper())
            )
        elif key == "properties":
            value = {k: apigw.JsonSchema(**_json_schema_kwargs(v)) for k, v in value.items()}
        elif key in ("anyOf",):
            value = [apigw.JsonSchema(**_json_schema_kwargs(v)) for v in value]
        elif key == "items" or (key == "additionalProperties" and isinstance(value, dict)):
            value = apigw.JsonSchema(**_json_schema_kwargs(value))
        out[name] = value
    return out
