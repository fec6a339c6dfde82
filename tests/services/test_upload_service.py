"""The upload service on in-memory adapters: counting, rejections, orphans, one start per assessment."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.services.conftest import NOW, VIN, FakeProbe, FakeStarter, awaiting
from vehicle_assessment.adapters.memory import InMemoryAssessmentRepository
from vehicle_assessment.aws_runtime.uploads import (
    UploadedObject,
    UploadResultKind,
    UploadRules,
    UploadServices,
    handle_upload,
    incoming_assessment_id,
)
from vehicle_assessment.domain.models import AssessmentStatus

JPEG = (Path(__file__).resolve().parents[1] / "data" / "photos" / "damaged_0003_JPEG.jpg").read_bytes()
RULES = UploadRules(max_upload_bytes=15 * 1024 * 1024, default_expected_photos=3)


@pytest.fixture
def services(memory_repository, probe: FakeProbe, starter: FakeStarter) -> UploadServices:
    return UploadServices(repository=memory_repository, probe=probe, starter=starter)


def _deliver(services: UploadServices, probe: FakeProbe, key: str, data: bytes = JPEG, **metadata: str):
    probe.put(key, data, **metadata)
    return handle_upload(UploadedObject(bucket="b", key=key, size=len(data)), services, RULES, NOW)


def test_the_last_photo_starts_the_workflow_once(services, probe, starter, memory_repository) -> None:
    memory_repository.create(awaiting("u-1", expected=2))
    kinds = [_deliver(services, probe, f"uploads/u-1/{n}.jpg").kind for n in (2, 2, 1, 1)]
    assert kinds == [
        UploadResultKind.ACCEPTED,
        UploadResultKind.DUPLICATE,
        UploadResultKind.STARTED,
        UploadResultKind.DUPLICATE,  # a redelivered last photo asks again (idempotent start)
    ]
    assert starter.started == ["u-1", "u-1"]
    assert len(memory_repository.get("u-1").photos) == 2


def test_rejections_are_recorded_with_their_reason(services, probe, memory_repository) -> None:
    memory_repository.create(awaiting("u-2", expected=1))
    not_image = _deliver(services, probe, "uploads/u-2/1.jpg", b"GIF89a not allowed")
    empty = _deliver(services, probe, "uploads/u-2/2.jpg", b"")
    assert (not_image.kind, not_image.reason) == (
        UploadResultKind.REJECTED,
        "not an image: content is not JPEG, PNG or WebP",
    )
    assert empty.reason == "empty file (0 bytes)"
    assert [r.reason for r in memory_repository.rejected_uploads("u-2")] == [
        "not an image: content is not JPEG, PNG or WebP",
        "empty file (0 bytes)",
    ]
    assert _deliver(services, probe, "uploads/u-2/3.jpg").kind == UploadResultKind.STARTED


def test_uploads_naming_no_assessment_become_orphans(services, probe, memory_repository) -> None:
    ghost = _deliver(services, probe, "uploads/ghost/1.jpg")
    layout = _deliver(services, probe, "somewhere/else.jpg")
    assert (ghost.kind, layout.kind) == (UploadResultKind.ORPHANED, UploadResultKind.ORPHANED)
    orphan = memory_repository.orphan_upload("uploads/ghost/1.jpg")
    assert orphan is not None and orphan.reason == "no assessment with id 'ghost'"
    assert memory_repository.orphan_upload("somewhere/else.jpg") is not None


def test_a_deleted_object_is_rejected_not_raised(services, memory_repository) -> None:
    memory_repository.create(awaiting("u-3"))
    result = handle_upload(UploadedObject(bucket="b", key="uploads/u-3/1.jpg", size=10), services, RULES, NOW)
    assert (result.kind, result.reason) == (
        UploadResultKind.REJECTED,
        "object was deleted before it was checked",
    )


def test_photos_after_the_sweep_are_rejected(services, probe, memory_repository) -> None:
    memory_repository.create(awaiting("u-4"))
    memory_repository.mark_status("u-4", AssessmentStatus.INCOMPLETE, {AssessmentStatus.AWAITING_PHOTOS}, NOW)
    late = _deliver(services, probe, "uploads/u-4/1.jpg")
    assert (late.kind, late.reason) == (
        UploadResultKind.REJECTED,
        "assessment is INCOMPLETE, no longer accepting photos",
    )


def test_incoming_layout_opens_the_assessment_from_metadata(
    services, probe, starter, memory_repository
) -> None:
    key = f"incoming/{VIN.lower()}/batch-7/front.jpg"
    result = _deliver(services, probe, key, **{"expected-photos": "1", "mileage": "5000"})
    assessment_id = incoming_assessment_id(VIN, "batch-7")
    assert (result.kind, result.assessment_id) == (UploadResultKind.STARTED, assessment_id)
    assessment = memory_repository.get(assessment_id)
    assert (assessment.vin, assessment.inputs.mileage, assessment.expected_photos) == (VIN, 5000, 1)
    assert starter.started == [assessment_id]


def test_incoming_with_bad_metadata_is_an_orphan(services, probe, memory_repository) -> None:
    result = _deliver(services, probe, f"incoming/{VIN}/b/1.jpg", **{"expected-photos": "many"})
    assert result.kind == UploadResultKind.ORPHANED
    assert result.reason == "invalid metadata: expected-photos 'many' is not a whole number"


def test_services_accept_any_workflow_repository() -> None:
    """The service is typed against the port: the in-memory repository is a WorkflowRepository."""
    from vehicle_assessment.ports import WorkflowRepository

    repository: WorkflowRepository = InMemoryAssessmentRepository()
    assert UploadServices(repository, FakeProbe(), FakeStarter()).repository is repository
