"""The photo that was counted is the photo that is valued: a re-upload under the same key (a new S3
version) never replaces it. moto S3 (versioned, as the stack's upload bucket) and DynamoDB; the
upload trigger and the analyse step run as their handlers."""

from __future__ import annotations

import hashlib
from urllib.parse import quote_plus

import pytest

from functions import analyse_photo, decode_vin, upload_trigger
from tests.aws_runtime.conftest import (
    BUCKET,
    NOW,
    VIN,
    Aws,
    FakeEncoder,
    FakeIndex,
    s3_notification,
    sqs_event,
)
from vehicle_assessment.adapters.aws.s3_object_store import S3ObjectStore
from vehicle_assessment.aws_runtime import factory
from vehicle_assessment.aws_runtime.uploads import open_assessment
from vehicle_assessment.domain.models import AssessmentInputs
from vehicle_assessment.ports import ObjectNotFound

pytestmark = pytest.mark.slow  # handlers end to end on moto


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factory, "build_encoder", lambda config: FakeEncoder())
    monkeypatch.setattr(factory, "build_reference_index", lambda config: FakeIndex())


def _put(aws: Aws, key: str, data: bytes) -> str:
    return str(aws.s3.put_object(Bucket=BUCKET, Key=key, Body=data)["VersionId"])


def test_a_reupload_after_counting_is_refused_and_the_first_bytes_are_analysed(
    aws: Aws, repository, fakes, jpeg_bytes, other_jpeg_bytes, lambda_context
) -> None:
    aws.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    repository.create(open_assessment(AssessmentInputs(vin=VIN), 1, NOW, "ev-1"))
    key = "uploads/ev-1/1.jpg"

    first = _put(aws, key, jpeg_bytes)
    counted = upload_trigger.handler(
        sqs_event([s3_notification(quote_plus(key), len(jpeg_bytes), version_id=first)]), lambda_context
    )
    assert counted == {"batchItemFailures": []}
    assert repository.get("ev-1").photos[0].object_version == first

    # Someone posts other bytes to the same key while (or after) the workflow runs.
    second = _put(aws, key, other_jpeg_bytes)
    assert second != first
    upload_trigger.handler(
        sqs_event([s3_notification(quote_plus(key), len(other_jpeg_bytes), version_id=second)]),
        lambda_context,
    )
    [rejected] = repository.rejected_uploads("ev-1")
    assert "re-upload" in rejected.reason and second in rejected.reason

    batch = decode_vin.handler({"assessment_id": "ev-1"}, lambda_context)
    outcome = analyse_photo.handler({"assessment_id": "ev-1", "photo": batch["photos"][0]}, lambda_context)
    assert outcome["status"] == "analysed"
    [photo] = repository.get("ev-1").photos
    assert photo.sha256 == hashlib.sha256(jpeg_bytes).hexdigest()  # the counted bytes, not the latest
    assert photo.size_bytes == len(jpeg_bytes) and photo.object_version == first


def test_the_object_store_reads_a_version_or_says_it_is_gone(aws: Aws, jpeg_bytes) -> None:
    aws.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    store = S3ObjectStore(aws.s3, BUCKET)
    first = _put(aws, "uploads/x/1.jpg", jpeg_bytes)
    _put(aws, "uploads/x/1.jpg", b"later")
    assert store.get("uploads/x/1.jpg") == b"later"
    assert store.get("uploads/x/1.jpg", first) == jpeg_bytes
    aws.s3.delete_object(Bucket=BUCKET, Key="uploads/x/1.jpg", VersionId=first)
    with pytest.raises(ObjectNotFound, match="version"):
        store.get("uploads/x/1.jpg", first)
