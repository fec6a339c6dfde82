"""Catch target MarkFailed: record the failed step and a one-line reason, and publish the failure.

Also the target of the EventBridge rule for executions that timed out or were stopped
(infra/constructs/workflow.py), invoked asynchronously with ``execution_status`` instead of ``error``.
"""

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
    state = workflow_steps.FailureInput.model_validate(event)
    logger.append_keys(assessment_id=state.assessment_id)
    result = workflow_steps.mark_failed(state, deps.get_repository(), deps.get_event_publisher())
    if result is None:  # no such assessment: logged by mark_failed; nothing for Lambda to retry
        metrics.add_metric(name="FailureForUnknownAssessment", unit=MetricUnit.Count, value=1)
        return {"assessment_id": state.assessment_id, "status": None}
    if result.status == AssessmentStatus.FAILED:  # not for a late event on a finished assessment
        metrics.add_metric(name="AssessmentFailed", unit=MetricUnit.Count, value=1)
    return result.model_dump(mode="json")
