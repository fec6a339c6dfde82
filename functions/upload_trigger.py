"""SQS (carrying S3 event notifications) → count uploaded photos, start the workflow on the last.

Partial batch responses: a record that fails (an AWS error, a body that is not JSON) is retried alone,
then kept by the dead-letter queue; the others are done. Rejections are not failures: they are recorded
and counted, and the message is consumed. A message that is no object creation (S3's test event, another
event type, something else) or names another bucket is logged, counted and consumed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.container_cache import per_container
from functions.observability import lambda_entry, logger, metrics
from vehicle_assessment.adapters.aws.s3_object_probe import S3ObjectProbe
from vehicle_assessment.adapters.aws.step_functions import StepFunctionsStarter
from vehicle_assessment.aws_runtime import factory, uploads
from vehicle_assessment.aws_runtime.config import UploadConfig

processor = BatchProcessor(event_type=EventType.SQS)

_METRIC = {
    uploads.UploadResultKind.STARTED: "AssessmentStarted",
    uploads.UploadResultKind.ACCEPTED: "PhotoAccepted",
    uploads.UploadResultKind.DUPLICATE: "PhotoDuplicate",
    uploads.UploadResultKind.REJECTED: "PhotoRejected",
    uploads.UploadResultKind.ORPHANED: "UploadOrphaned",
    uploads.UploadResultKind.FOREIGN_BUCKET: "UploadForeignBucket",
}


@per_container
def get_config() -> UploadConfig:
    return UploadConfig()


@per_container
def get_services() -> uploads.UploadServices:
    config = get_config()
    return uploads.UploadServices(
        repository=factory.build_repository(config),
        probe=S3ObjectProbe(factory.aws_client("s3", config), config.bucket_name),
        starter=StepFunctionsStarter(factory.aws_client("stepfunctions", config), config.state_machine_arn),
    )


def _read(record: SQSRecord) -> uploads.QueueMessage:
    try:
        message = uploads.read_queue_message(record.body)
    except ValueError:
        logger.warning("queue message is not JSON: left to retry and the dead-letter queue")
        metrics.add_metric(name="QueueMessageUnreadable", unit=MetricUnit.Count, value=1)
        raise
    if message.test_event:
        logger.info("S3 test event ignored")
        metrics.add_metric(name="S3TestEvent", unit=MetricUnit.Count, value=1)
    for reason in message.ignored:
        logger.warning("queue message ignored: %s", reason, extra={"message_id": record.message_id})
        metrics.add_metric(name="QueueMessageIgnored", unit=MetricUnit.Count, value=1)
    return message


def record_handler(record: SQSRecord) -> None:
    config = get_config()
    rules = uploads.UploadRules(config.max_upload_bytes, config.expected_photos, config.bucket_name)
    for uploaded in _read(record).uploads:
        result = uploads.handle_upload(uploaded, get_services(), rules, datetime.now(UTC))
        metrics.add_metric(name=_METRIC[result.kind], unit=MetricUnit.Count, value=1)
        log = logger.warning if result.kind in _PROBLEMS else logger.info
        log(
            "upload %s",
            result.kind.value,
            extra={
                "object_key": result.object_key,
                "message_id": record.message_id,
                "assessment_id": result.assessment_id,
                "reason": result.reason,
                "received": result.received,
                "expected": result.expected,
            },
        )


_PROBLEMS = {
    uploads.UploadResultKind.REJECTED,
    uploads.UploadResultKind.ORPHANED,
    uploads.UploadResultKind.FOREIGN_BUCKET,
}


@lambda_entry
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
