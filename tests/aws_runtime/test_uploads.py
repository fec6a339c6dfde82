"""Upload events → counted photos → exactly one workflow execution (moto S3, DynamoDB, Step Functions)."""

from __future__ import annotations

import threading

import pytest

from tests.aws_runtime.conftest import BUCKET, NOW, STATE_MACHINE_ARN, VIN, Aws
from vehicle_assessment.adapters.aws.dynamodb import DynamoAssessmentRepository
from vehicle_assessment.adapters.aws.s3_object_probe import S3ObjectProbe
from vehicle_assessment.adapters.aws.step_functions import StepFunctionsStarter
from vehicle_assessment.aws_runtime import uploads
from vehicle_assessment.aws_runtime.uploads import (
    UploadedObject,
    UploadResultKind,
    UploadRules,
    UploadServices,
    handle_upload,
    incoming_assessment_id,
    open_assessment,
)
from vehicle_assessment.domain.models import AssessmentInputs, AssessmentStatus

pytestmark = pytest.mark.slow  # the upload service end to end on moto (fast: tests/services)

RULES = UploadRules(max_upload_bytes=15 * 1024 * 1024, default_expected_photos=3)


@pytest.fixture
def services(aws: Aws, repository: DynamoAssessmentRepository) -> UploadServices:
    return UploadServices(
        repository=repository,
        probe=S3ObjectProbe(aws.s3, BUCKET),
        starter=StepFunctionsStarter(aws.sfn, STATE_MACHINE_ARN),
    )


def _open(repository: DynamoAssessmentRepository, assessment_id: str, expected: int = 3) -> None:
    assert repository.create(open_assessment(AssessmentInputs(vin=VIN), expected, NOW, assessment_id))


def _deliver(aws: Aws, services: UploadServices, key: str, data: bytes | None = None, **metadata: str):
    if data is not None:
        aws.put_photo(key, data, metadata)
    size = aws.s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"]
    return handle_upload(UploadedObject(bucket=BUCKET, key=key, size=size), services, RULES, NOW)


def test_duplicate_and_out_of_order_deliveries_count_once(aws: Aws, services, repository, jpeg_bytes) -> None:
    _open(repository, "a1")
    for n in (1, 2, 3):
        aws.put_photo(f"uploads/a1/{n}.jpg", jpeg_bytes)
    results = [_deliver(aws, services, f"uploads/a1/{n}.jpg") for n in (3, 3, 1, 3, 2, 1, 2)]
    assert [r.kind for r in results] == [
        "accepted",
        "duplicate",
        "accepted",
        "duplicate",
        "started",
        "duplicate",
        "duplicate",
    ]
    # Late duplicates ask for the (idempotent) start again while the status says AWAITING_PHOTOS.
    assert [r.start_retried for r in results][5:] == [True, True]
    [execution] = aws.executions()
    assert execution["name"] == "a1"
    assert repository.upload_progress("a1").received == 3


def test_fourth_photo_is_rejected_with_the_reason(aws: Aws, services, repository, jpeg_bytes) -> None:
    _open(repository, "a2")
    for n in (1, 2, 3):
        _deliver(aws, services, f"uploads/a2/{n}.jpg", jpeg_bytes)
    result = _deliver(aws, services, "uploads/a2/4.jpg", jpeg_bytes)
    assert result.kind == UploadResultKind.REJECTED
    assert result.reason == "rejected: already has 3 of 3 photos".removeprefix("rejected: ")
    [rejected] = repository.rejected_uploads("a2")
    assert rejected.object_key == "uploads/a2/4.jpg" and "already has 3 of 3 photos" in rejected.reason
    assert len(aws.executions()) == 1


def test_non_image_is_rejected_and_can_be_replaced(aws: Aws, services, repository, jpeg_bytes) -> None:
    _open(repository, "a3", expected=1)
    result = _deliver(aws, services, "uploads/a3/1.jpg", b"%PDF-1.7 not a photo")
    assert result.kind == UploadResultKind.REJECTED
    assert result.reason == "not an image: content is not JPEG, PNG or WebP"
    assert repository.upload_progress("a3").received == 0
    # The same presigned key, posted again with a real photo, counts.
    assert _deliver(aws, services, "uploads/a3/1.jpg", jpeg_bytes).kind == UploadResultKind.STARTED
    assert [r.reason for r in repository.rejected_uploads("a3")] == [result.reason]


def test_oversized_and_empty_uploads_are_rejected(aws: Aws, services, repository) -> None:
    _open(repository, "a4")
    big = handle_upload(
        UploadedObject(bucket=BUCKET, key="uploads/a4/1.jpg", size=16 * 1024 * 1024), services, RULES, NOW
    )
    assert big.kind == UploadResultKind.REJECTED and big.reason.startswith("file too large: 16.0 MB")
    empty = _deliver(aws, services, "uploads/a4/2.jpg", b"")
    assert empty.kind == UploadResultKind.REJECTED and empty.reason == "empty file (0 bytes)"


def test_unknown_assessment_and_bad_layout_become_orphans(aws: Aws, services, repository, jpeg_bytes) -> None:
    ghost = _deliver(aws, services, "uploads/no-such-id/1.jpg", jpeg_bytes)
    assert ghost.kind == UploadResultKind.ORPHANED
    assert repository.orphan_upload("uploads/no-such-id/1.jpg").reason == "no assessment with id 'no-such-id'"
    odd = _deliver(aws, services, "elsewhere/photo.jpg", jpeg_bytes)
    assert odd.kind == UploadResultKind.ORPHANED and "unexpected key layout" in odd.reason
    assert aws.executions() == []


def test_photos_after_the_sweep_are_rejected(aws: Aws, services, repository, jpeg_bytes) -> None:
    _open(repository, "a5")
    repository.mark_status("a5", AssessmentStatus.INCOMPLETE, {AssessmentStatus.AWAITING_PHOTOS}, NOW)
    late = _deliver(aws, services, "uploads/a5/1.jpg", jpeg_bytes)
    assert late.kind == UploadResultKind.REJECTED and "INCOMPLETE" in late.reason


def test_redelivered_last_photo_retries_a_failed_start(aws: Aws, services, repository, jpeg_bytes) -> None:
    _open(repository, "a6", expected=1)

    class Broken:
        def start(self, assessment_id: str) -> bool:
            raise RuntimeError("Step Functions throttled")

    aws.put_photo("uploads/a6/1.jpg", jpeg_bytes)
    broken = UploadServices(services.repository, services.probe, Broken())
    with pytest.raises(RuntimeError):
        _deliver(aws, broken, "uploads/a6/1.jpg")  # the SQS message is retried...
    assert aws.executions() == []
    again = _deliver(aws, services, "uploads/a6/1.jpg")  # ...and the redelivery starts it
    assert (again.kind, again.start_retried) == (UploadResultKind.DUPLICATE, True)
    assert _deliver(aws, services, "uploads/a6/1.jpg").kind == UploadResultKind.DUPLICATE
    assert len(aws.executions()) == 1


class _ItemSerialisingTable:
    """DynamoDB applies the writes to one item one at a time; moto checks a condition and writes
    in two unlocked steps, so two threads can both pass. Restore DynamoDB's guarantee, nothing more."""

    def __init__(self, table) -> None:
        self._table = table
        self._lock = threading.Lock()

    def update_item(self, **kwargs):
        with self._lock:
            return self._table.update_item(**kwargs)

    def __getattr__(self, name: str):
        return getattr(self._table, name)


def test_concurrent_last_photos_start_exactly_one_execution(
    aws: Aws, services, repository, jpeg_bytes
) -> None:
    repository.table = _ItemSerialisingTable(repository.table)
    _open(repository, "a7")
    for n in (1, 2, 3, 4):
        aws.put_photo(f"uploads/a7/{n}.jpg", jpeg_bytes)
    for n in (1, 2):
        _deliver(aws, services, f"uploads/a7/{n}.jpg")
    barrier = threading.Barrier(2)
    results = []

    def deliver(key: str) -> None:
        barrier.wait()
        results.append(_deliver(aws, services, key))

    threads = [threading.Thread(target=deliver, args=(f"uploads/a7/{n}.jpg",)) for n in (3, 4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.kind for r in results) == [UploadResultKind.REJECTED, UploadResultKind.STARTED]
    assert len(aws.executions()) == 1


def test_direct_incoming_layout_creates_the_assessment_from_metadata(
    aws: Aws, services, repository, jpeg_bytes
) -> None:
    meta = {"color": "Blue", "mileage": "42000", "expected-photos": "2"}
    first = _deliver(aws, services, f"incoming/{VIN.lower()}/batch-7/front.jpg", jpeg_bytes, **meta)
    assessment_id = incoming_assessment_id(VIN, "batch-7")
    assert (first.kind, first.assessment_id) == (UploadResultKind.ACCEPTED, assessment_id)
    # A second photo with other metadata joins the same assessment; the first writer's metadata wins.
    second = _deliver(
        aws, services, f"incoming/{VIN}/batch-7/rear.jpg", jpeg_bytes, color="Green", mileage="x"
    )
    assert (second.kind, second.assessment_id) == (UploadResultKind.STARTED, assessment_id)
    assessment = repository.get(assessment_id)
    assert (assessment.vin, assessment.inputs.color, assessment.inputs.mileage) == (VIN, "Blue", 42_000)
    assert assessment.expected_photos == 2
    assert sorted(p.filename for p in assessment.photos) == ["front.jpg", "rear.jpg"]
    assert [e["name"] for e in aws.executions()] == [assessment_id]


def test_incoming_with_invalid_vin_or_metadata_is_kept_as_orphan(
    aws: Aws, services, repository, jpeg_bytes
) -> None:
    bad_vin = _deliver(aws, services, "incoming/NOTAVIN/b1/front.jpg", jpeg_bytes)
    assert bad_vin.kind == UploadResultKind.ORPHANED and bad_vin.reason.startswith("invalid VIN")
    bad_meta = _deliver(aws, services, f"incoming/{VIN}/b2/front.jpg", jpeg_bytes, mileage="lots")
    assert bad_meta.kind == UploadResultKind.ORPHANED and bad_meta.reason.startswith(
        "invalid metadata: mileage"
    )


def test_s3_notification_parsing_decodes_keys_and_skips_test_events() -> None:
    body = {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "bucket": {"name": "b"},
                    "object": {"key": "uploads/x/my+photo%281%29.jpg", "size": 5},
                },
            },
            {
                "eventName": "ObjectRemoved:Delete",
                "s3": {"bucket": {"name": "b"}, "object": {"key": "uploads/x/2.jpg"}},
            },
        ]
    }
    assert uploads.parse_s3_notification(body) == [
        UploadedObject(bucket="b", key="uploads/x/my photo(1).jpg", size=5)
    ]
    assert uploads.parse_s3_notification('{"Service": "Amazon S3", "Event": "s3:TestEvent"}') == []


def test_photo_ids_are_stable_and_distinct() -> None:
    assert uploads.photo_id_for("1.jpg") == "1.jpg"
    assert uploads.photo_id_for("a b.jpg") != uploads.photo_id_for("a_b.jpg")
    assert uploads.photo_id_for("a b.jpg") == uploads.photo_id_for("a b.jpg")
