"""What only the SQLite photo registry has: its in-memory hash array follows other writers of the file,
and a file that is not a registry is refused with the remedy."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from vehicle_assessment.adapters.local.photo_registry import SqlitePhotoRegistry
from vehicle_assessment.domain.models import PhotoFingerprint
from vehicle_assessment.domain.rules import ReuseSettings
from vehicle_assessment.ports import StateFileUnusable

NOW = datetime(2026, 11, 27, tzinfo=UTC)


def _fp(assessment: str, vin: str, value: int) -> PhotoFingerprint:
    return PhotoFingerprint(
        assessment_id=assessment,
        photo_id="01",
        vin=vin,
        sha256=f"{value:064x}",
        perceptual_hash=f"{value:016x}",
        recorded_at=NOW,
    )


def test_a_search_sees_rows_another_process_added_or_replaced(tmp_path) -> None:
    path = tmp_path / "photo-registry.sqlite3"
    reader, writer = SqlitePhotoRegistry(path, ReuseSettings()), SqlitePhotoRegistry(path, ReuseSettings())
    high_bit = 0x8000_0000_0000_0001  # stored as a negative INTEGER: the bits must survive
    query = _fp("q", "VIN-Q", high_bit)
    assert reader.find_reuse(query) == []  # the reader's hash array is now built (empty)

    writer.remember(_fp("a1", "VIN-A", high_bit))
    assert [m.assessment_id for m in reader.find_reuse(query)] == ["a1"]
    assert reader.fingerprint("a1", "01") == _fp("a1", "VIN-A", high_bit)

    other_hash = 0x7FFF_FFFF_FFFF_FFFE
    writer.remember(_fp("a1", "VIN-A", other_hash))  # the same photo (the last row), another hash
    assert reader.find_reuse(query) == []
    # ...found by its new hash: a replaced row never keeps its id, so the reader sees it as new.
    assert [m.assessment_id for m in reader.find_reuse(_fp("q", "VIN-Q", other_hash))] == ["a1"]


def test_a_foreign_file_is_refused_with_the_remedy(tmp_path) -> None:
    path = tmp_path / "photo-registry.sqlite3"
    path.write_bytes(b"not a database" * 100)
    with pytest.raises(StateFileUnusable, match=r"not a usable photo registry.*move the damaged file aside"):
        SqlitePhotoRegistry(path, ReuseSettings())
