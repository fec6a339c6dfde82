"""Scheduled (EventBridge): mark assessments whose photos never all arrived as INCOMPLETE.

Each one marked gets its "Assessment Finished" event. An event that could not be published fails
the invocation after the sweep (error alarm); invoke the function with ``{"republish": [ids]}`` to
send those again.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.container_cache import per_container
from functions.observability import lambda_entry, logger, metrics
from vehicle_assessment.adapters.aws.step_functions import StepFunctionsStarter
from vehicle_assessment.aws_runtime import factory, sweeper
from vehicle_assessment.aws_runtime.config import SweeperConfig
from vehicle_assessment.ports import EventPublisher, EventPublishFailed, WorkflowRepository


@per_container
def get_config() -> SweeperConfig:
    return SweeperConfig()


@per_container
def get_repository() -> WorkflowRepository:
    return factory.build_repository(get_config())


@per_container
def get_event_publisher() -> EventPublisher:
    return factory.build_event_publisher(get_config())


@per_container
def get_starter() -> StepFunctionsStarter | None:
    config = get_config()
    if not config.state_machine_arn:
        return None
    return StepFunctionsStarter(factory.aws_client("stepfunctions", config), config.state_machine_arn)


@lambda_entry
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    config = get_config()
    if "republish" in event:
        ids = event["republish"]
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ValueError('"republish" must be a list of assessment ids')
        published = sweeper.republish(get_repository(), get_event_publisher(), ids)
        logger.info("events published again", extra={"assessment_ids": published})
        return {"republished": published}
    report = sweeper.sweep(
        get_repository(),
        get_event_publisher(),
        timedelta(minutes=config.sweep_timeout_minutes),
        datetime.now(UTC),
        config.sweep_batch_limit,
        get_starter(),
    )
    metrics.add_metric(
        name="AssessmentIncomplete", unit=MetricUnit.Count, value=len(report.marked_incomplete)
    )
    metrics.add_metric(name="AssessmentRestarted", unit=MetricUnit.Count, value=len(report.restarted))
    metrics.add_metric(name="FinishedEventFailed", unit=MetricUnit.Count, value=len(report.events_failed))
    logger.info("sweep done", extra=dataclasses.asdict(report))
    if report.events_failed:
        # After the sweep and its metrics: the others are done; this fails the run so it alarms.
        raise EventPublishFailed(
            f"{len(report.events_failed)} INCOMPLETE events not published; invoke with "
            f"{json.dumps({'republish': report.events_failed})} to send them again"
        )
    return dataclasses.asdict(report)
