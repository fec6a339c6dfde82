"""The Step Functions task services on in-memory adapters: one assessment from upload to COMPLETED."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.services.conftest import NOW, awaiting
from vehicle_assessment.adapters.memory import (
    InMemoryAssessmentRepository,
    InMemoryEventPublisher,
    InMemoryObjectStore,
)
from vehicle_assessment.aws_runtime import workflow_steps as steps
from vehicle_assessment.domain.description import TemplateDescriber
from vehicle_assessment.domain.models import (
    UNTRAINED_ENCODER_WARNING,
    AssessmentStatus,
    DamageType,
    EncoderIdentity,
    Neighbour,
    PhotoStatus,
    ReferenceLabel,
    Severity,
    VehicleFacts,
)
from vehicle_assessment.domain.rules import AssessmentRules
from vehicle_assessment.ports import SpeechClip, VinDecoderUnavailable

PHOTOS = Path(__file__).resolve().parents[1] / "data" / "photos"
IDENTITY = EncoderIdentity(model_name="fake-clip", pretrained=None, untrained=True, dimension=4)


class FakeEncoder:
    identity = IDENTITY

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        return np.array([[1.0, 0.0, 0.0, 0.0]] * len(images), dtype=np.float32)


class FakeIndex:
    identity = IDENTITY

    def search(self, vectors: np.ndarray, k: int) -> list[list[Neighbour]]:
        dent = ReferenceLabel(damaged=True, damage_type=DamageType.DENT, severity=Severity.MODERATE)
        return [
            [
                Neighbour(reference_id=f"r{i}", source=f"r/{i}.jpg", similarity=0.9, label=dent)
                for i in range(k)
            ]
            for _ in range(len(vectors))
        ]


class OfflineDecoder:
    def decode(self, vin: str, model_year: int | None) -> VehicleFacts:
        raise VinDecoderUnavailable("offline in this test")


class FakeSpeaker:
    def synthesize(self, text: str, language: str) -> SpeechClip:
        return SpeechClip(audio=b"ID3fake", content_type="audio/mpeg", extension="mp3")


@pytest.fixture
def uploaded(
    memory_repository: InMemoryAssessmentRepository,
) -> tuple[InMemoryAssessmentRepository, InMemoryObjectStore]:
    objects = InMemoryObjectStore()
    memory_repository.create(awaiting("wf-1", expected=2))
    for n, name in ((1, "damaged_0003_JPEG.jpg"), (2, "undamaged_white_6150526860_fd9cd2c04c_b.jpg")):
        data = (PHOTOS / name).read_bytes()
        key = f"uploads/wf-1/{n}.jpg"
        objects.put(key, data, "image/jpeg")
        memory_repository.record_photo("wf-1", key, len(data), "image/jpeg", NOW, str(n), f"{n}.jpg")
    return memory_repository, objects


def test_the_steps_take_an_assessment_to_completed(uploaded) -> None:
    repo, objects = uploaded
    rules = AssessmentRules()
    ref = steps.AssessmentRef(assessment_id="wf-1")
    batch = steps.decode_vin(ref, repo, OfflineDecoder(), clock=lambda: NOW)
    assert [p.photo_id for p in batch.photos] == ["1", "2"]
    assert repo.get("wf-1").status == AssessmentStatus.PROCESSING
    for photo in batch.photos:
        outcome = steps.analyse_photo(
            steps.PhotoTask(assessment_id="wf-1", photo=photo),
            repo,
            objects,
            FakeEncoder(),
            FakeIndex(),
            rules,
        )
        assert outcome.status == PhotoStatus.ANALYSED
    steps.value(ref, repo, rules, clock=lambda: NOW)
    steps.describe(ref, repo, TemplateDescriber(), rules, clock=lambda: NOW)
    steps.speak(ref, repo, FakeSpeaker(), objects, clock=lambda: NOW)
    events = InMemoryEventPublisher()
    result = steps.store(ref, repo, events, clock=lambda: NOW)

    assert (result.status, result.needs_review) == (AssessmentStatus.COMPLETED, True)
    done = repo.get("wf-1")
    assert all(len(p.sha256) == 64 for p in done.photos) and done.encoder == IDENTITY
    assert (
        done.warnings.count(UNTRAINED_ENCODER_WARNING) == 1 and done.warnings[0] == UNTRAINED_ENCODER_WARNING
    )
    assert all(objects.exists(a.object_key) for a in done.audio if a.object_key)
    assert [(e.event_id, e.status) for e in events.events] == [("wf-1:COMPLETED", AssessmentStatus.COMPLETED)]


def test_decode_refuses_a_swept_assessment(uploaded) -> None:
    repo, _ = uploaded
    repo.mark_status("wf-1", AssessmentStatus.INCOMPLETE, {AssessmentStatus.AWAITING_PHOTOS}, NOW)
    with pytest.raises(steps.WorkflowConflict, match="is INCOMPLETE"):
        steps.decode_vin(steps.AssessmentRef(assessment_id="wf-1"), repo, OfflineDecoder())


def test_mark_failed_keeps_a_one_line_bounded_reason(uploaded) -> None:
    repo, _ = uploaded
    error = steps.StepError(Error="States.TaskFailed", Cause="boom\n  at line 1\n" + "x" * 2000)
    failed = steps.mark_failed(
        steps.FailureInput(assessment_id="wf-1", failed_step="Value", error=error),
        repo,
        InMemoryEventPublisher(),
        clock=lambda: NOW,
    )
    assert failed.status == AssessmentStatus.FAILED
    reason = repo.get("wf-1").failure_reason or ""
    assert reason.startswith("States.TaskFailed: boom at line 1 x") and "\n" not in reason
    assert len(reason) == 1000 and reason.endswith("…")
