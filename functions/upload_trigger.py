"""SQS (carrying S3 event notifications) → count uploaded photos, start the workflow on the last.

Partial batch responses: a record that fails (an AWS error) is retried alone; the others are done.
Rejections are not failures: they are recorded and counted, and the message is consumed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
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


def record_handler(record: SQSRecord) -> None:
    config = get_config()
    rules = uploads.UploadRules(config.max_upload_bytes, config.expected_photos)
    for uploaded in uploads.parse_s3_notification(record.body):
        result = uploads.handle_upload(uploaded, get_services(), rules, datetime.now(UTC))
        metrics.add_metric(name=_METRIC[result.kind], unit=MetricUnit.Count, value=1)
        log = logger.warning if result.kind in _PROBLEMS else logger.info
        log(
            "upload %s",
            result.kind.value,
            extra={
                "object_key": result.object_key,
                "assessment_id": result.assessment_id,
                "reason": result.reason,
                "received": result.received,
                "expected": result.expected,
            },
        )


_PROBLEMS = {uploads.UploadResultKind.REJECTED, uploads.UploadResultKind.ORPHANED}


@lambda_entry
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
