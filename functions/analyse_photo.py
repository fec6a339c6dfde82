"""Task AnalysePhoto (one Map iteration): intake, embed and judge one photo."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions import workflow_deps as deps
from functions.observability import lambda_entry, logger, metrics
from vehicle_assessment.aws_runtime import workflow_steps
from vehicle_assessment.ports import ReferenceIndexEmpty


@lambda_entry
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state = workflow_steps.PhotoTask.model_validate(event)
    logger.append_keys(assessment_id=state.assessment_id)
    try:
        result = workflow_steps.analyse_photo(
            state,
            deps.get_repository(),
            deps.get_objects(),
            deps.get_encoder(),
            deps.get_reference_index(),
            deps.get_config().rules,
            deps.get_photo_registry(),
        )
    except ReferenceIndexEmpty as exc:
        # The step fails (MarkFailed records this reason on the assessment); the metric is what an
        # operator alarms on: every assessment fails the same way until the photos are loaded.
        logger.error("reference index is empty", extra={"reason": str(exc)})
        metrics.add_metric(name="ReferenceIndexEmpty", unit=MetricUnit.Count, value=1)
        raise
    if result.reuse_unchecked:
        # The photo was analysed without the reused-photo check (recorded on it and in the assessment's
        # warnings); operators alarm on the metric: a registry outage leaves fraud unflagged.
        logger.warning("reused-photo check did not run", extra={"reason": result.reuse_unchecked})
        metrics.add_metric(name=workflow_steps.REUSE_CHECK_UNAVAILABLE_METRIC, unit=MetricUnit.Count, value=1)
    if result.possible_reuse:
        metrics.add_metric(name="PossibleReuse", unit=MetricUnit.Count, value=1)
    return result.model_dump(mode="json")
