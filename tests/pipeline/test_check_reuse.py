"""pipeline.check_reuse on its own: what it records when the registry fails, and the order of its calls."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from vehicle_assessment.domain.models import (
    EncoderIdentity,
    PhotoFingerprint,
    PhotoRecord,
    PhotoStatus,
    ReuseMatch,
)
from vehicle_assessment.pipeline import ReuseCheck, check_reuse
from vehicle_assessment.ports import PhotoRegistryUnavailable

NOW = datetime(2026, 11, 27, tzinfo=UTC)
IDENTITY = EncoderIdentity(model_name="m", pretrained=None, untrained=True, dimension=2)
RECORD = PhotoRecord(
    photo_id="01",
    filename="a.jpg",
    object_key="photos/a/01-a.jpg",
    size_bytes=10,
    sha256="0" * 64,
    status=PhotoStatus.ANALYSED,
    perceptual_hash="00000000000000ff",
)


class Recording:
    def __init__(self, error: str | None = None) -> None:
        self.calls: list[str] = []
        self.error = error

    def remember(self, fingerprint: PhotoFingerprint) -> None:
        self.calls.append("remember")
        if self.error:
            raise PhotoRegistryUnavailable(self.error)

    def find_reuse(self, fingerprint: PhotoFingerprint) -> list[ReuseMatch]:
        self.calls.append("find_reuse")
        if self.error:
            raise PhotoRegistryUnavailable(self.error)
        return []

    def fingerprint(self, assessment_id: str, photo_id: str) -> PhotoFingerprint | None:
        return None


def test_the_photo_is_remembered_before_the_search() -> None:
    registry = Recording()
    checked = check_reuse(
        RECORD, np.array([1.0, 0.0], dtype=np.float32), IDENTITY, ReuseCheck(registry, "a", "V", NOW)
    )
    assert registry.calls == ["remember", "find_reuse"]
    assert checked.reuse_matches == [] and checked.reuse_unchecked is None


def test_a_failing_registry_is_recorded_on_one_bounded_line() -> None:
    registry = Recording(error="throttled\n" + "x" * 2000)
    checked = check_reuse(
        RECORD, np.zeros(2, dtype=np.float32), IDENTITY, ReuseCheck(registry, "a", "V", NOW)
    )
    reason = checked.reuse_unchecked
    assert reason is not None and "\n" not in reason and len(reason) < 700
    assert reason.startswith("not remembered for later reuse checks (throttled x")
    assert "; not checked for reuse (throttled x" in reason
