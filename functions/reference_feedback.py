"""The reference feedback function: adds a reviewed photo to the reference index (OpenSearch).

Invoked asynchronously by the API for each review "as reference" (the event is a
`reference_requests.ReferenceRequest`); why asynchronously: aws_runtime/reference_requests.py. The
outcome, REFERENCE_ADDED or REFERENCE_FAILED with why, is recorded on the assessment with a
conditional write. A failed addition is an outcome, not an error (no retry would change it); only a
failure to record it raises, so that Lambda retries the event.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from functions.container_cache import per_container
from functions.observability import lambda_entry, logger, metrics
from vehicle_assessment import reviewing
from vehicle_assessment.aws_runtime import factory
from vehicle_assessment.aws_runtime.config import ReferenceFeedbackConfig
from vehicle_assessment.aws_runtime.reference_requests import (
    REFERENCE_FEEDBACK_FAILED_METRIC,
    ReferenceRequest,
)
from vehicle_assessment.domain.models import HistoryAction
from vehicle_assessment.ports import AssessmentNotFound, AssessmentRepository, ReferenceFeedback


@per_container
def get_config() -> ReferenceFeedbackConfig:
    return ReferenceFeedbackConfig()


@per_container
def get_repository() -> AssessmentRepository:
    return factory.build_repository(get_config())


@per_container
def get_feedback() -> ReferenceFeedback:
    """Built on the first invocation, never at import (a SnapStart snapshot holds no connection)."""
    config = get_config()
    return factory.build_reference_feedback(
        config.opensearch,
        config.sagemaker,
        config.aws_region,
        factory.build_object_store(config),
        factory.build_photo_registry(config),
        config.rules.intake,
        on_reembed=_record_reembed,
    )


def _record_reembed(reason: str) -> None:
    # The stored embedding could not be reused (the learning module logged why): the endpoint is called.
    metrics.add_metric(name="ReferenceReembedded", unit=MetricUnit.Count, value=1)


def _record_failure(reason: str) -> None:
    metrics.add_metric(name=REFERENCE_FEEDBACK_FAILED_METRIC, unit=MetricUnit.Count, value=1)


@lambda_entry
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        request = ReferenceRequest.model_validate(event)
    except ValidationError as exc:
        # Not ours to retry: an event this function was never sent. Logged and counted, then dropped.
        logger.error("not a reference request", extra={"errors": exc.errors(include_input=False)})
        _record_failure("invalid request")
        return {"status": "invalid"}
    logger.append_keys(assessment_id=request.assessment_id, photo_id=request.photo_id)
    try:
        saved = reviewing.add_requested_reference(
            get_repository(),
            get_feedback(),
            _record_failure,
            request.assessment_id,
            request.photo_id,
            request.reviewed_at,
        )
    except (AssessmentNotFound, reviewing.ReferenceRequestInvalid) as exc:
        # Gone (expired by TTL) or never asked for: no retry would change it.
        logger.error("reference request cannot be served", extra={"reason": str(exc)})
        _record_failure(str(exc))
        return {"status": "invalid"}
    if saved is None:
        return {"status": "already_recorded"}
    outcome = saved.history[-1].action if saved.history else None
    if outcome == HistoryAction.REFERENCE_ADDED:
        metrics.add_metric(name="ReferenceAdded", unit=MetricUnit.Count, value=1)
    return {"status": str(outcome)}
