"""Task Store: mark the assessment COMPLETED (or NEEDS_PHOTOS) with its review reasons, and publish it."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions import workflow_deps as deps
from functions.observability import lambda_entry, logger, metrics
from vehicle_assessment.aws_runtime import workflow_steps
from vehicle_assessment.domain.models import AssessmentStatus


@lambda_entry
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state = workflow_steps.AssessmentRef.model_validate(event)
    logger.append_keys(assessment_id=state.assessment_id)
    result = workflow_steps.store(state, deps.get_repository(), deps.get_event_publisher())
    # NEEDS_PHOTOS is counted apart: a rising share means the yard's photos are unusable.
    needs_photos = result.status == AssessmentStatus.NEEDS_PHOTOS
    metric = "AssessmentNeedsPhotos" if needs_photos else "AssessmentCompleted"
    metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
    return result.model_dump(mode="json")
