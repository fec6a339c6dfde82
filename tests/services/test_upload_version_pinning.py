"""The upload service pins the S3 version the event names, and refuses another version of a counted key."""

from __future__ import annotations

from pathlib import Path

from tests.services.conftest import NOW, FakeProbe, FakeStarter, awaiting
from vehicle_assessment.adapters.memory import InMemoryAssessmentRepository
from vehicle_assessment.aws_runtime.uploads import (
    UploadedObject,
    UploadResultKind,
    UploadRules,
    UploadServices,
    handle_upload,
    read_queue_message,
)
from vehicle_assessment.ports import ObjectHead

JPEG = (Path(__file__).resolve().parents[1] / "data" / "photos" / "damaged_0003_JPEG.jpg").read_bytes()
RULES = UploadRules(max_upload_bytes=15 * 1024 * 1024, default_expected_photos=3)
KEY = "uploads/p-1/1.jpg"


def _upload(version: str | None) -> UploadedObject:
    return UploadedObject(bucket="b", key=KEY, size=len(JPEG), version_id=version)


def test_the_events_version_is_read_from_the_notification() -> None:
    body = {
        "Records": [
            {
                "eventName": "ObjectCreated:Post",
                "s3": {"bucket": {"name": "b"}, "object": {"key": KEY, "size": 5, "versionId": "v-7"}},
            }
        ]
    }
    assert read_queue_message(body).uploads[0].version_id == "v-7"
    body["Records"][0]["s3"]["object"]["versionId"] = None  # an unversioned bucket says null
    assert read_queue_message(body).uploads[0].version_id is None


def test_the_counted_version_is_pinned_and_another_is_refused(
    memory_repository: InMemoryAssessmentRepository, probe: FakeProbe, starter: FakeStarter
) -> None:
    services = UploadServices(repository=memory_repository, probe=probe, starter=starter)
    memory_repository.create(awaiting("p-1", expected=2))
    probe.put(KEY, JPEG)
    assert handle_upload(_upload("v-1"), services, RULES, NOW).kind == UploadResultKind.ACCEPTED
    assert handle_upload(_upload("v-1"), services, RULES, NOW).kind == UploadResultKind.DUPLICATE
    again = handle_upload(_upload("v-2"), services, RULES, NOW)
    assert again.kind == UploadResultKind.REJECTED and again.reason is not None and "'v-1'" in again.reason
    assert memory_repository.get("p-1").photos[0].object_version == "v-1"


def test_without_an_event_version_the_checked_version_is_pinned(
    memory_repository: InMemoryAssessmentRepository, starter: FakeStarter
) -> None:
    class VersionedProbe:
        def head(self, key: str, n_bytes: int, version_id: str | None = None) -> ObjectHead:
            return ObjectHead(JPEG[:n_bytes], {}, len(JPEG), version_id or "current-3")

    services = UploadServices(repository=memory_repository, probe=VersionedProbe(), starter=starter)
    memory_repository.create(awaiting("p-1", expected=2))
    assert handle_upload(_upload(None), services, RULES, NOW).kind == UploadResultKind.ACCEPTED
    assert memory_repository.get("p-1").photos[0].object_version == "current-3"
