"""Scheduled (EventBridge): mark assessments whose photos never all arrived as INCOMPLETE."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.container_cache import per_container
from functions.observability import lambda_entry, logger, metrics
from vehicle_assessment.adapters.aws.step_functions import StepFunctionsStarter
from vehicle_assessment.aws_runtime import factory, sweeper
from vehicle_assessment.aws_runtime.config import SweeperConfig
from vehicle_assessment.ports import WorkflowRepository


@per_container
def get_config() -> SweeperConfig:
    return SweeperConfig()


@per_container
def get_repository() -> WorkflowRepository:
    return factory.build_repository(get_config())


@per_container
def get_starter() -> StepFunctionsStarter | None:
    config = get_config()
    if not config.state_machine_arn:
        return None
    return StepFunctionsStarter(factory.aws_client("stepfunctions", config), config.state_machine_arn)


@lambda_entry
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    config = get_config()
    report = sweeper.sweep(
        get_repository(),
        timedelta(minutes=config.sweep_timeout_minutes),
        datetime.now(UTC),
        config.sweep_batch_limit,
        get_starter(),
    )
    metrics.add_metric(
        name="AssessmentIncomplete", unit=MetricUnit.Count, value=len(report.marked_incomplete)
    )
    metrics.add_metric(name="AssessmentRestarted", unit=MetricUnit.Count, value=len(report.restarted))
    logger.info("sweep done", extra=dataclasses.asdict(report))
    return dataclasses.asdict(report)
