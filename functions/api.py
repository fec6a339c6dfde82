"""REST API (API Gateway proxy integration): routes, status codes and error bodies only.

    POST /assessments                                 201  open an assessment, get presigned POSTs
    GET  /assessments?status=&vin=&needs_review=&limit=&next=  200  newest first, filtered, paged
    GET  /assessments/{assessment_id}                 200  the assessment, its uploads and rejections
    GET  /assessments/{assessment_id}/media           200  short-lived links to its photos, audio, references
    GET  /vehicles/{vin}/assessments?limit=N          200  a VIN's history, newest first
    POST /assessments/{assessment_id}/descriptions    200  regenerate a description and its audio
    GET  /reviews?limit=N                             200  the review queue, oldest first
    PUT  /assessments/{assessment_id}/photos/{photo_id}/review
                                                      200  record the caller's review of a photo: revalue,
                                                           rewrite the descriptions; the assessment view
    PUT  /assessments/{assessment_id}/descriptions/{language}?style=standard
                                                      200  a person's text for a description (new version)

Every route needs a Cognito access token; who may call which route is the table in
``vehicle_assessment.aws_runtime.authz`` (checked here before anything else, and by the gateway).

Errors are JSON ``{"message": ..., "errors"?: [...]}``: 401 no usable sign-in, 403 signed in without
the group or scope the route needs, 400 invalid input (also a body that is not
base64, UTF-8 or one JSON object, or is nested deeper than MAX_JSON_DEPTH), 404 unknown id or route,
405 a known path with another method (with ``Allow``), 409 a state conflict, 413 a body over
MAX_BODY_BYTES, 415 a body that is not JSON, 503 (with ``Retry-After``) a description that cannot
be written while the language model is down, 500 without details (the stack trace goes to the log,
never to the caller). 4xx are the caller's fault and are logged at info; only 5xx are errors.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.models import (
    OAuth2,
    OAuthFlowClientCredentials,
    OAuthFlows,
    OpenIdConnect,
    SecurityScheme,
)
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from functions.container_cache import per_container
from functions.observability import lambda_entry, logger, metrics, record_description_fallback
from vehicle_assessment.aws_runtime import api, authz, factory
from vehicle_assessment.aws_runtime.config import ApiConfig, CorsSettings
from vehicle_assessment.domain import limits
from vehicle_assessment.domain.description import UnsupportedLanguage
from vehicle_assessment.domain.models import AssessmentStatus, DescriptionStyle
from vehicle_assessment.domain.review import NotFinished, ReviewRefused
from vehicle_assessment.domain.vin import InvalidVin
from vehicle_assessment.ports import AssessmentFilter, AssessmentNotFound, DescriptionUnavailable

OPENAPI_TITLE = "Vehicle assessment API"
OPENAPI_VERSION = "1.0.0"
_ID = Annotated[
    str, Path(min_length=1, max_length=limits.MAX_ASSESSMENT_ID_CHARS, pattern=r"^[A-Za-z0-9-]+$")
]
_PHOTO_ID = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
# Request bodies are a few hundred bytes; API Gateway would pass up to 10 MB.
MAX_BODY_BYTES = 64 * 1024
# Deeper JSON is no request of ours; refused before json.loads recurses into it.
MAX_JSON_DEPTH = 16
# Bedrock throttling and outages usually pass within a minute.
DESCRIBER_RETRY_AFTER_S = 30
_BODY_METHODS = {"POST", "PUT", "PATCH"}


def cors_config(settings: CorsSettings) -> CORSConfig | None:
    """Powertools' CORS for the allowed origins; None (no CORS headers at all) when there are none."""
    origins = settings.cors_allowed_origins
    if not origins:
        return None
    # Bearer tokens, not cookies: no credentials mode, so no Access-Control-Allow-Credentials.
    return CORSConfig(
        allow_origin=origins[0], extra_origins=origins[1:], allow_headers=["Authorization"], max_age=600
    )


CORS = cors_config(CorsSettings())
app = APIGatewayRestResolver(enable_validation=True, cors=CORS)


class ErrorDetail(BaseModel):
    loc: list[str]
    msg: str
    type: str


class ErrorBody(BaseModel):
    message: str
    errors: list[ErrorDetail] | None = None


def _responses(ok: int, model: type[BaseModel], *errors: int) -> dict[int, OpenAPIResponse]:
    # Given responses replace Powertools' generated ones, so the success one is listed too.
    text = {
        400: "Invalid request",
        404: "Unknown assessment",
        409: "Conflict with the assessment's state",
        503: "The language model is unavailable and no fallback can write this language; retry later",
    }
    listed: dict[int, OpenAPIResponse] = {
        ok: {"description": "Success", "content": {"application/json": {"model": model}}}
    }
    for code in errors:
        listed[code] = {"description": text[code], "content": {"application/json": {"model": ErrorBody}}}
    return listed


@dataclass(frozen=True)
class ProvidedServices:
    config: ApiConfig
    services: api.ApiServices


# Set only by `vehicle-assessment serve` (provide_services): the same routes over the local adapters.
_provided: ProvidedServices | None = None


def provide_services(config: ApiConfig | None, services: api.ApiServices | None) -> None:
    """Serve these routes over ``services`` instead of the container's AWS ones (the local server);
    None, None: back to the AWS ones."""
    global _provided
    _provided = ProvidedServices(config, services) if config is not None and services is not None else None
    get_config.cache_clear()
    get_services.cache_clear()


@per_container
def get_config() -> ApiConfig:
    return _provided.config if _provided is not None else ApiConfig()


@per_container
def get_services() -> api.ApiServices:
    if _provided is not None:
        return _provided.services
    config = get_config()
    repository = factory.build_repository(config)
    presigning = factory.build_s3_presigning_client(config)
    return api.ApiServices(
        repository=repository,
        s3_client=presigning,
        objects=factory.build_object_store(config),
        describer=factory.build_describer(config, on_fallback=record_description_fallback),
        speaker=factory.build_speaker(config),
        media=factory.build_media_links(config, presigning),
        review_queue=repository,
        valuation=config.rules.valuation,
        on_reference_failure=_record_reference_failure,
    )


def _record_reference_failure(reason: str) -> None:
    # The review stands and its history says why; the metric lets an alarm notice a broken index.
    metrics.add_metric(name="ReferenceFeedbackFailed", unit=MetricUnit.Count, value=1)


def _signed_in_person() -> str:
    """Who the caller is, by the token the gateway checked; a review is recorded under this name."""
    claims = app.current_event.request_context.authorizer.claims
    name = authz.person_name(claims)
    if name is None:  # authz.ROUTES lets only people here; a direct invocation might not
        raise api.Conflict("only a signed-in person can record a review or an edit")
    return name


def _json_error(
    status: int,
    message: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {"message": message}
    if errors is not None:
        body["errors"] = errors
    if status < 500:
        # The caller's mistake: worth a line, not an alarm.
        logger.info("client error %d: %s", status, message)
    return Response(status_code=status, content_type="application/json", body=body, headers=headers)


def _proxy_error(status: int, message: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """An error answered before routing, in the proxy integration's response format."""
    logger.info("client error %d: %s", status, message)
    return {
        "statusCode": status,
        "multiValueHeaders": {
            "Content-Type": ["application/json"],
            **{k: [v] for k, v in (headers or {}).items()},
        },
        "body": json.dumps({"message": message}),
        "isBase64Encoded": False,
    }


def _with_cors(response: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    """The CORS headers the router would add, on a response answered before routing, so that a
    browser at an allowed origin can read the error."""
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    origin = headers.get("origin")
    allowed = CORS.allowed_origin(origin) if CORS is not None and origin is not None else None
    if CORS is not None and allowed is not None:
        response["multiValueHeaders"].update({k: [v] for k, v in CORS.to_dict(allowed).items()})
    return response


def _json_depth(text: str) -> int:
    """The deepest nesting of [ and { outside strings, without recursion."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _refused_caller(event: dict[str, Any]) -> dict[str, Any] | None:
    """401/403 for a caller the route is not for (authz.ROUTES), before the body is even read.

    The gateway's Cognito authorizer has checked the token; this checks who it belongs to.
    A CORS preflight (OPTIONS) carries no credentials by design: the router answers it.
    """
    method = str(event.get("httpMethod") or "").upper()
    if method == "OPTIONS":
        return None
    route = authz.route_key(method, str(event.get("path") or ""))
    claims = ((event.get("requestContext") or {}).get("authorizer") or {}).get("claims")
    decision = authz.authorize(route, claims if isinstance(claims, dict) else None)
    if decision.allowed:
        return None
    metrics.add_metric(name=f"Refused{decision.status}", unit=MetricUnit.Count, value=1)
    headers = {"WWW-Authenticate": "Bearer"} if decision.status == 401 else {}
    return _proxy_error(decision.status, decision.message, headers)


def _malformed_body(event: dict[str, Any]) -> dict[str, Any] | None:
    """The error response for a body no route can read, or None to let the router go on.

    Powertools would raise deep inside parsing (binascii.Error, UnicodeDecodeError, RecursionError)
    and the catch-all would answer 500 for what is the caller's fault; it would also take the first
    element of a JSON array as the body.
    """
    method = str(event.get("httpMethod") or "").upper()
    body = event.get("body")
    if method not in _BODY_METHODS or body is None:
        return None
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    media_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in {"", "application/json"}:
        return _proxy_error(415, "unsupported content type: send application/json")
    if len(body) > MAX_BODY_BYTES * 2:  # base64 is 4/3 of the bytes; a cheap early bound
        return _proxy_error(413, f"body larger than {MAX_BODY_BYTES} bytes")
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return _proxy_error(400, "body is not valid base64")
    else:
        raw = body.encode("utf-8", errors="surrogatepass")
    if len(raw) > MAX_BODY_BYTES:
        return _proxy_error(413, f"body larger than {MAX_BODY_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return _proxy_error(400, "body is not UTF-8 text")
    if _json_depth(text) > MAX_JSON_DEPTH:
        return _proxy_error(400, f"body is nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        parsed = json.loads(text)
    except ValueError:
        return None  # Powertools answers 400 with the position of the syntax error
    if not isinstance(parsed, dict):
        return _proxy_error(400, "body must be one JSON object")
    return None


# --- routes ---------------------------------------------------------------------------------


@app.post(
    "/assessments",
    status_code=201,
    summary="Open an assessment and get one upload form per photo",
    responses=_responses(201, api.CreateAssessmentResponse, 400),
)
def create_assessment(request: api.CreateAssessmentRequest) -> api.CreateAssessmentResponse:
    config = get_config()
    policy = api.UploadPolicy(
        bucket=config.bucket_name,
        expected_photos=config.expected_photos,
        max_upload_bytes=config.max_upload_bytes,
        expires_in_s=config.presigned_post_expires_s,
    )
    created = api.create_assessment(request, get_services(), policy, datetime.now(UTC))
    metrics.add_metric(name="AssessmentCreated", unit=MetricUnit.Count, value=1)
    return created


@app.get(
    "/assessments",
    summary="Assessments newest first: any or one status, a VIN, needing review or not; paged",
    responses=_responses(200, api.AssessmentListPage, 400),
)
def list_all_assessments(
    status: Annotated[AssessmentStatus | None, Query()] = None,
    vin: Annotated[str | None, Query(min_length=1, max_length=40)] = None,
    needs_review: Annotated[bool | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    next_token: Annotated[str | None, Query(alias="next", min_length=1, max_length=500)] = None,
) -> api.AssessmentListPage:
    which = AssessmentFilter(status=status, vin=vin, needs_review=needs_review)
    return api.list_all_assessments(which, get_services(), limit, next_token)


@app.get(
    "/assessments/<assessment_id>",
    summary="An assessment with its photos, verdicts and value",
    responses=_responses(200, api.AssessmentView, 400, 404),
)
def get_assessment(assessment_id: _ID) -> api.AssessmentView:
    return api.get_assessment(assessment_id, get_services())


@app.get(
    "/assessments/<assessment_id>/media",
    summary="Short-lived links to the assessment's photos, audio and its neighbours' reference photos",
    responses=_responses(200, api.AssessmentMedia, 400, 404),
)
def get_media(assessment_id: _ID) -> api.AssessmentMedia:
    return api.media_links(assessment_id, get_services(), limits.MEDIA_LINK_EXPIRES_S)


@app.get(
    "/vehicles/<vin>/assessments",
    summary="A vehicle's assessments, newest first",
    responses=_responses(200, api.AssessmentList, 400),
)
def list_assessments(
    vin: Annotated[str, Path(min_length=1, max_length=40)],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> api.AssessmentList:
    return api.list_assessments(vin, get_services(), limit)


@app.post(
    "/assessments/<assessment_id>/descriptions",
    summary="Regenerate a description and its audio",
    responses=_responses(200, api.RegenerateDescriptionResponse, 400, 404, 409, 503),
)
def regenerate_description(
    assessment_id: _ID, request: api.RegenerateDescriptionRequest
) -> api.RegenerateDescriptionResponse:
    return api.regenerate_description(assessment_id, request, get_services(), datetime.now(UTC))


@app.get(
    "/reviews",
    summary="The review queue: assessments with photos awaiting a person, oldest first, with why",
    responses=_responses(200, api.ReviewQueueView, 400),
)
def review_queue(
    limit: Annotated[int, Query(ge=1, le=limits.MAX_REVIEW_QUEUE_LIMIT)] = limits.DEFAULT_REVIEW_QUEUE_LIMIT,
) -> api.ReviewQueueView:
    return api.review_queue(get_services(), limit)


@app.put(
    "/assessments/<assessment_id>/photos/<photo_id>/review",
    summary="Record the caller's review of a photo; revalues and rewrites the descriptions",
    responses=_responses(200, api.AssessmentView, 400, 404, 409),
)
def review_photo(
    assessment_id: _ID, photo_id: _PHOTO_ID, request: api.ReviewPhotoRequest
) -> api.AssessmentView:
    reviewer = _signed_in_person()
    view = api.review_photo(assessment_id, photo_id, request, reviewer, get_services(), datetime.now(UTC))
    metrics.add_metric(name="PhotoReviewed", unit=MetricUnit.Count, value=1)
    return view


@app.put(
    "/assessments/<assessment_id>/descriptions/<language>",
    summary="Replace a description's text with a person's (a new version, with its audio)",
    responses=_responses(200, api.AssessmentView, 400, 404, 409),
)
def edit_description(
    assessment_id: _ID,
    language: Annotated[str, Path(pattern=r"^[a-z]{2}$", description="ISO 639-1 code")],
    request: api.EditDescriptionRequest,
    style: Annotated[DescriptionStyle, Query()] = DescriptionStyle.STANDARD,
) -> api.AssessmentView:
    editor = _signed_in_person()
    return api.edit_description(
        assessment_id, language, style, request, editor, get_services(), datetime.now(UTC)
    )


# --- errors ---------------------------------------------------------------------------------


@app.exception_handler(RequestValidationError)
def _invalid_request(exc: RequestValidationError) -> Response:
    # Powertools answers 422 by default; keep only location, message and type (no echoed input).
    errors = [
        {"loc": [str(part) for part in e.get("loc", ())], "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    return _json_error(400, "invalid request", errors)


@app.exception_handler(api.InvalidInputs)
def _invalid_inputs(exc: api.InvalidInputs) -> Response:
    return _json_error(400, "invalid request", exc.errors)


@app.exception_handler([InvalidVin, UnsupportedLanguage, api.InvalidPageToken])
def _bad_value(exc: ValueError) -> Response:
    return _json_error(400, str(exc))


@app.exception_handler(RequestUnsupportedContentType)
def _unsupported_content_type(exc: RequestUnsupportedContentType) -> Response:
    return _json_error(415, "unsupported content type: send application/json")


@app.not_found
def _no_route(exc: NotFoundError) -> Response:
    path, method = app.current_event.path, app.current_event.http_method.upper()
    # Powertools answers an unrouted method with "not found"; a known path deserves 405 and Allow.
    allowed = sorted(
        {route.method for route in app._static_routes + app._dynamic_routes if route.rule.match(path)}
    )
    if allowed and method not in allowed:
        return _json_error(405, f"method {method} not allowed", headers={"Allow": ", ".join(allowed)})
    return _json_error(404, "no such resource")


@app.exception_handler(AssessmentNotFound)
def _not_found(exc: AssessmentNotFound) -> Response:
    return _json_error(404, str(exc))


@app.exception_handler([api.Conflict, NotFinished])
def _conflict(exc: Exception) -> Response:
    return _json_error(409, str(exc))


@app.exception_handler(ReviewRefused)
def _review_refused(exc: ReviewRefused) -> Response:
    # NotFinished, its subclass, has its own handler (409): Powertools looks handlers up by the MRO.
    return _json_error(400, str(exc))


@app.exception_handler(DescriptionUnavailable)
def _describer_down(exc: DescriptionUnavailable) -> Response:
    # Ours, but passing: a warning with the reason, a metric, and a hint when to try again.
    logger.warning("description unavailable: %s", exc)
    metrics.add_metric(name="DescriptionUnavailable", unit=MetricUnit.Count, value=1)
    return _json_error(
        503,
        "the description service is unavailable; retry later",
        headers={"Retry-After": str(DESCRIBER_RETRY_AFTER_S)},
    )


@app.exception_handler(Exception)
def _unexpected(exc: Exception) -> Response:
    logger.exception("unhandled error")
    return _json_error(500, "internal error")


USER_SCHEME = "cognitoUser"
CLIENT_SCHEME = "cognitoClient"
# The deployed values are the stack outputs UserPoolId and CognitoDomain; a schema is built before
# any deployment, so the URLs carry the placeholders in capitals.
SECURITY_SCHEMES: dict[str, SecurityScheme] = {
    USER_SCHEME: OpenIdConnect(
        openIdConnectUrl="https://cognito-idp.REGION.amazonaws.com/USER_POOL_ID/.well-known/openid-configuration",
        description="People (yard app, review page): sign in to the Cognito user pool (SRP, or the hosted "
        "sign-in with authorization code + PKCE) with the public client (stack output UserPoolClientId) and "
        "send the ACCESS token as 'Authorization: Bearer <token>'. Allowed by group (cognito:groups): "
        + "; ".join(f"{g.value}: {text}" for g, text in authz.GROUP_DESCRIPTIONS.items()),
    ),
    CLIENT_SCHEME: OAuth2(
        flows=OAuthFlows(
            clientCredentials=OAuthFlowClientCredentials(
                tokenUrl="https://COGNITO_DOMAIN/oauth2/token",
                scopes={s.value: text for s, text in authz.SCOPE_DESCRIPTIONS.items()},
            )
        ),
        description="Integrations: client credentials grant with the confidential client (stack output "
        "IntegrationClientId) at the stack output CognitoDomain + /oauth2/token; allowed by scope.",
    ),
}


def _document_access(operation: dict[str, Any], access: authz.RouteAccess) -> None:
    """Who may call the operation, and why, in its description; the scopes a machine client needs."""
    operation["description"] = "\n\n".join(filter(None, [operation.get("description"), access.describe()]))
    # A route no machine client may call lists only the people's scheme.
    operation["security"] = [{USER_SCHEME: []}] + (
        [{CLIENT_SCHEME: sorted(access.scopes)}] if access.scopes else []
    )
    responses = operation.setdefault("responses", {})
    for code, text in (
        ("401", "No usable sign-in: send a Cognito access token"),
        ("403", "Signed in, without the group or scope this route needs"),
    ):
        responses[code] = {
            "description": text,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
        }


def openapi_json() -> str:
    """The schema as served; Powertools lists a 422 for validation errors, which this API answers with 400."""
    schema = json.loads(
        app.get_openapi_json_schema(
            title=OPENAPI_TITLE,
            version=OPENAPI_VERSION,
            security_schemes=SECURITY_SCHEMES,
            security=[{USER_SCHEME: []}, {CLIENT_SCHEME: []}],
        )
    )
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            operation.get("responses", {}).pop("422", None)
            _document_access(operation, authz.ROUTES[f"{method.upper()} {path}"])
    schemas = schema.get("components", {}).get("schemas", {})
    while unused := [n for n in schemas if f'"#/components/schemas/{n}"' not in json.dumps(schema)]:
        for name in unused:  # the validation-error models nothing refers to any more
            del schemas[name]
    return json.dumps(schema, indent=2, ensure_ascii=False)


@lambda_entry(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    refused = _refused_caller(event) or _malformed_body(event)
    if refused is not None:
        metrics.add_metric(name="RequestRefused", unit=MetricUnit.Count, value=1)
        return _with_cors(refused, event)
    return app.resolve(event, context)
