"""The local index build's handling of photos it cannot index."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vehicle_assessment.adapters.local.vector_index import LocalVectorIndex
from vehicle_assessment.domain.models import DamageType, ReferenceLabel, Severity
from vehicle_assessment.domain.rules import IntakeSettings
from vehicle_assessment.indexing import LabelledPhoto, build_index

from ..conftest import SAMPLE_DATA

LABEL = ReferenceLabel(damaged=False, damage_type=DamageType.NONE, severity=Severity.NONE)


def test_a_photo_over_the_size_limit_is_skipped_on_its_size_unread(
    tmp_path: Path, tiny_encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    small, large = sorted((SAMPLE_DATA / "queries").rglob("*.jpg"), key=lambda p: p.stat().st_size)[:2]
    photos = []
    for path in (small, large):
        copy = tmp_path / path.name
        shutil.copyfile(path, copy)
        photos.append(LabelledPhoto(source=path.name, path=copy, label=LABEL))
    read: list[str] = []
    real_read_bytes = Path.read_bytes

    def noting_reads(self: Path) -> bytes:
        read.append(self.name)
        return real_read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", noting_reads)
    intake = IntakeSettings(max_bytes=small.stat().st_size)
    index = LocalVectorIndex(tmp_path / "index.sqlite3")
    report = build_index(photos, tiny_encoder, index, intake)
    assert report.added == 1 and [s.source for s in report.skipped] == [large.name]
    assert report.skipped[0].reason.startswith("file too large:")
    assert large.name not in read
