"""Task Value: undamaged value and the damage-adjusted value."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions import workflow_deps as deps
from functions.observability import lambda_entry, logger
from vehicle_assessment.aws_runtime import workflow_steps


@lambda_entry
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state = workflow_steps.AssessmentRef.model_validate(event)
    logger.append_keys(assessment_id=state.assessment_id)
    result = workflow_steps.value(state, deps.get_repository(), deps.get_config().rules)
    return result.model_dump(mode="json")
