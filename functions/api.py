"""REST API (API Gateway proxy integration): routes, status codes and error bodies only.

    POST /assessments                                 201  open an assessment, get presigned POSTs
    GET  /assessments/{assessment_id}                 200  the assessment, its uploads and rejections
    GET  /vehicles/{vin}/assessments?limit=N          200  a VIN's history, newest first
    POST /assessments/{assessment_id}/descriptions    200  regenerate a description and its audio

Errors are JSON ``{"message": ..., "errors"?: [...]}``: 400 invalid input, 404 unknown id, 409 a
state conflict, 500 without details (the stack trace goes to the log, never to the caller).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from functions.container_cache import per_container
from functions.observability import lambda_entry, logger, metrics
from vehicle_assessment.aws_runtime import api, factory
from vehicle_assessment.aws_runtime.config import ApiConfig
from vehicle_assessment.domain.description import UnsupportedLanguage
from vehicle_assessment.domain.vin import InvalidVin
from vehicle_assessment.ports import AssessmentNotFound

OPENAPI_TITLE = "Vehicle assessment API"
OPENAPI_VERSION = "1.0.0"
_ID = Annotated[str, Path(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9-]+$")]

app = APIGatewayRestResolver(enable_validation=True)


class ErrorDetail(BaseModel):
    loc: list[str]
    msg: str
    type: str


class ErrorBody(BaseModel):
    message: str
    errors: list[ErrorDetail] | None = None


def _responses(ok: int, model: type[BaseModel], *errors: int) -> dict[int, dict[str, Any]]:
    # Given responses replace Powertools' generated ones, so the success one is listed too.
    text = {400: "Invalid request", 404: "Unknown assessment", 409: "Conflict with the assessment's state"}
    listed = {ok: {"description": "Success", "content": {"application/json": {"model": model}}}}
    for code in errors:
        listed[code] = {"description": text[code], "content": {"application/json": {"model": ErrorBody}}}
    return listed


@per_container
def get_config() -> ApiConfig:
    return ApiConfig()


@per_container
def get_services() -> api.ApiServices:
    config = get_config()
    return api.ApiServices(
        repository=factory.build_repository(config),
        s3_client=factory.aws_client("s3", config),
        objects=factory.build_object_store(config),
        describer=factory.build_describer(config),
        speaker=factory.build_speaker(config),
    )


def _json_error(status: int, message: str, errors: list[dict[str, Any]] | None = None) -> Response:
    body: dict[str, Any] = {"message": message}
    if errors is not None:
        body["errors"] = errors
    return Response(status_code=status, content_type="application/json", body=body)


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
    "/assessments/<assessment_id>",
    summary="An assessment with its photos, verdicts and value",
    responses=_responses(200, api.AssessmentView, 400, 404),
)
def get_assessment(assessment_id: _ID) -> api.AssessmentView:
    return api.get_assessment(assessment_id, get_services())


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
    responses=_responses(200, api.RegenerateDescriptionResponse, 400, 404, 409),
)
def regenerate_description(
    assessment_id: _ID, request: api.RegenerateDescriptionRequest
) -> api.RegenerateDescriptionResponse:
    return api.regenerate_description(assessment_id, request, get_services(), datetime.now(UTC))


# --- errors ---------------------------------------------------------------------------------


@app.exception_handler(RequestValidationError)
def _invalid_request(exc: RequestValidationError) -> Response:
    # Powertools answers 422 by default; keep only location, message and type (no echoed input).
    errors = [
        {"loc": [str(part) for part in e.get("loc", ())], "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    return _json_error(400, "invalid request", errors)


@app.exception_handler([InvalidVin, UnsupportedLanguage])
def _bad_value(exc: ValueError) -> Response:
    return _json_error(400, str(exc))


@app.exception_handler(AssessmentNotFound)
def _not_found(exc: AssessmentNotFound) -> Response:
    return _json_error(404, str(exc))


@app.exception_handler(api.Conflict)
def _conflict(exc: api.Conflict) -> Response:
    return _json_error(409, str(exc))


@app.exception_handler(Exception)
def _unexpected(exc: Exception) -> Response:
    logger.exception("unhandled error")
    return _json_error(500, "internal error")


def openapi_json() -> str:
    """The schema as served; Powertools lists a 422 for validation errors, which this API answers with 400."""
    schema = json.loads(app.get_openapi_json_schema(title=OPENAPI_TITLE, version=OPENAPI_VERSION))
    for operations in schema["paths"].values():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
    schemas = schema.get("components", {}).get("schemas", {})
    while unused := [n for n in schemas if f'"#/components/schemas/{n}"' not in json.dumps(schema)]:
        for name in unused:  # the validation-error models nothing refers to any more
            del schemas[name]
    return json.dumps(schema, indent=2, ensure_ascii=False)


@lambda_entry(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
