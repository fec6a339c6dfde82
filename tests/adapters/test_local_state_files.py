"""Damaged or foreign local state files: one typed error naming the file, never a raw sqlite3 error."""

from __future__ import annotations

import logging
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from vehicle_assessment.adapters.local.repository import SqliteAssessmentRepository
from vehicle_assessment.adapters.local.vector_index import LocalVectorIndex
from vehicle_assessment.adapters.vpic import VpicVinDecoder
from vehicle_assessment.ports import StateFileUnusable, VinDecoderUnavailable
from vehicle_assessment.settings import VpicSettings


def _random_bytes(path: Path) -> None:
    path.write_bytes(np.random.default_rng(7).bytes(8192))


def _foreign_schema(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE songs (title TEXT, artist TEXT)")
        conn.execute("INSERT INTO songs VALUES ('a', 'b')")
    conn.close()


def _same_table_other_columns(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE assessments (id INTEGER, note TEXT)")
        conn.execute("CREATE TABLE reference_photos (id INTEGER, note TEXT)")
    conn.close()


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


DAMAGE: dict[str, Callable[[Path], None]] = {
    "random bytes": _random_bytes,
    "another application's database": _foreign_schema,
    "our table names with other columns": _same_table_other_columns,
}


def _use_index(path: Path) -> None:
    index = LocalVectorIndex(path)
    try:
        index.count()
        index.search(np.ones((1, 64), dtype=np.float32), 3)
    finally:
        index.close()


def _use_repository(path: Path) -> None:
    repository = SqliteAssessmentRepository(path)
    repository.list_by_vin("1FTMW1T88MFA00001")


@pytest.mark.parametrize("damage", list(DAMAGE))
@pytest.mark.parametrize("use", [_use_index, _use_repository], ids=["index", "repository"])
def test_damaged_state_file_is_a_typed_error_naming_it(tmp_path: Path, damage: str, use) -> None:
    path = tmp_path / "state.sqlite3"
    DAMAGE[damage](path)
    with pytest.raises(StateFileUnusable) as caught:
        use(path)
    message = str(caught.value)
    assert str(path) in message and "move" in message and "\n" not in message


def test_truncated_index_is_a_typed_error(tmp_path: Path, sample_index_path: Path) -> None:
    path = tmp_path / "reference-index.sqlite3"
    shutil.copy(sample_index_path, path)
    _truncate(path)
    with pytest.raises(StateFileUnusable, match="rebuild the index"):
        _use_index(path)


def test_foreign_file_is_not_modified(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite3"
    _foreign_schema(path)
    before = path.read_bytes()
    with pytest.raises(StateFileUnusable, match="other tables: songs"):
        SqliteAssessmentRepository(path)
    assert path.read_bytes() == before


@pytest.mark.allow_hosts(["127.0.0.1"])
def test_damaged_vpic_cache_is_replaced_with_a_warning(tmp_path: Path, caplog) -> None:
    cache = tmp_path / "vpic-cache.sqlite3"
    _random_bytes(cache)
    # Nothing listens on port 9: a decode reaches the (empty, rebuilt) cache, then fails to connect.
    settings = VpicSettings(base_url="http://127.0.0.1:9/api", retries=0, connect_timeout_s=0.5)
    with caplog.at_level(logging.WARNING, logger="vehicle_assessment.adapters.vpic"):
        decoder = VpicVinDecoder(settings, cache)
    assert "unusable" in caplog.text and "replacing it with an empty cache" in caplog.text
    with sqlite3.connect(cache) as conn:
        assert conn.execute("SELECT COUNT(*) FROM vpic_cache").fetchone() == (0,)
    conn.close()
    with pytest.raises(VinDecoderUnavailable):
        decoder.decode("1FTMW1T88MFA00001", None)


@pytest.mark.allow_hosts(["127.0.0.1"])
def test_vpic_cache_that_cannot_be_recreated_is_skipped_with_a_warning(tmp_path: Path, caplog) -> None:
    cache = tmp_path / "vpic-cache.sqlite3"
    cache.mkdir()  # a directory where the cache file should be: neither opened nor removable
    (cache / "keep").write_text("x")
    settings = VpicSettings(base_url="http://127.0.0.1:9/api", retries=0, connect_timeout_s=0.5)
    with caplog.at_level(logging.WARNING, logger="vehicle_assessment.adapters.vpic"):
        decoder = VpicVinDecoder(settings, cache)
    assert "decoding without a cache" in caplog.text
    with pytest.raises(VinDecoderUnavailable, match="unreachable"):
        decoder.decode("1FTMW1T88MFA00001", None)
