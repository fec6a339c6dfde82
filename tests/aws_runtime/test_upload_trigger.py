"""The upload trigger handler with real S3 notifications: moto S3 → SQS → the handler's batch."""

from __future__ import annotations

import json

import pytest

from functions import upload_trigger
from tests.aws_runtime.conftest import BUCKET, NOW, VIN, Aws, s3_notification, sqs_event
from vehicle_assessment.aws_runtime.uploads import incoming_assessment_id, open_assessment
from vehicle_assessment.domain.models import AssessmentInputs

pytestmark = pytest.mark.slow  # handler end to end on moto (fast: tests/services)


def _queue_s3_notifications(aws: Aws) -> str:
    url = aws.sqs.create_queue(QueueName="photo-uploads")["QueueUrl"]
    arn = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws.s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    return url


def _received(aws: Aws, url: str) -> list[dict]:
    messages = aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    bodies = [json.loads(m["Body"]) for m in messages]
    return [b for b in bodies if "Records" in b]  # S3 sends a test event when the queue is wired


def test_s3_notifications_through_sqs_complete_an_assessment(
    aws: Aws, repository, jpeg_bytes, lambda_context
) -> None:
    url = _queue_s3_notifications(aws)
    metadata = {"expected-photos": "2"}
    # A space: the event key says "front+photo.jpg".
    aws.put_photo(f"incoming/{VIN}/b1/front photo.jpg", jpeg_bytes, metadata)
    aws.put_photo(f"incoming/{VIN}/b1/2.jpg", jpeg_bytes, metadata)
    bodies = _received(aws, url)
    assert len(bodies) == 2

    # Delivered twice (at-least-once), in one batch.
    response = upload_trigger.handler(sqs_event([*bodies, bodies[0]]), lambda_context)

    assert response == {"batchItemFailures": []}
    assessment_id = incoming_assessment_id(VIN, "b1")
    assert [e["name"] for e in aws.executions()] == [assessment_id]
    assert sorted(p.filename for p in repository.get(assessment_id).photos) == ["2.jpg", "front photo.jpg"]


def test_one_bad_record_does_not_fail_the_batch(aws: Aws, repository, jpeg_bytes, lambda_context) -> None:
    repository.create(open_assessment(AssessmentInputs(vin=VIN), 3, NOW, "t-2"))
    aws.put_photo("uploads/t-2/1.jpg", jpeg_bytes)
    aws.put_photo("uploads/t-2/2.jpg", b"GIF89a not allowed")
    event = sqs_event(
        [
            s3_notification("uploads/t-2/1.jpg", len(jpeg_bytes)),
            "this is not JSON",
            s3_notification("uploads/t-2/2.jpg", 18),
        ]
    )
    response = upload_trigger.handler(event, lambda_context)
    # Only the unparseable message is retried; the rejected GIF is recorded, not retried.
    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-1"}]}
    assert repository.upload_progress("t-2").received == 1
    [rejected] = repository.rejected_uploads("t-2")
    assert rejected.reason == "not an image: content is not JPEG, PNG or WebP"
