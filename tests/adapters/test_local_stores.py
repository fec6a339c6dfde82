"""Filesystem object store and SQLite assessment repository."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from vehicle_assessment.adapters.local.object_store import FilesystemObjectStore
from vehicle_assessment.adapters.local.repository import SqliteAssessmentRepository
from vehicle_assessment.adapters.memory import InMemoryObjectStore
from vehicle_assessment.domain.models import Assessment, AssessmentInputs, AssessmentStatus
from vehicle_assessment.ports import AssessmentNotFound, ConcurrentUpdate, ObjectNotFound, ObjectTooLarge


def test_object_store_round_trip_keeps_bytes_exactly(tmp_path) -> None:
    store = FilesystemObjectStore(tmp_path)
    data = bytes(range(256)) * 10
    store.put("photos/a/01-front.jpg", data, "image/jpeg")
    assert store.exists("photos/a/01-front.jpg")
    assert store.get("photos/a/01-front.jpg") == data
    store.put("photos/a/01-front.jpg", b"new", "image/jpeg")  # overwrite, like S3
    assert store.get("photos/a/01-front.jpg") == b"new"
    assert not [p for p in tmp_path.rglob(".tmp-*")], "temporary files must not be left behind"


def test_object_store_missing_and_unsafe_keys(tmp_path) -> None:
    store = FilesystemObjectStore(tmp_path / "objects")
    assert not store.exists("nope")
    with pytest.raises(ObjectNotFound, match="nope"):
        store.get("nope")
    for key in ("../escape", "/abs/path", "a/../../b", ""):
        with pytest.raises(ValueError, match="invalid object key"):
            store.put(key, b"x", "text/plain")


@pytest.mark.parametrize("kind", ["filesystem", "memory"])
def test_object_store_refuses_an_object_over_max_bytes(tmp_path, kind: str) -> None:
    store = FilesystemObjectStore(tmp_path) if kind == "filesystem" else InMemoryObjectStore()
    store.put("refs/big.jpg", b"x" * 11, "image/jpeg")
    with pytest.raises(ObjectTooLarge, match="11 bytes, more than the 10") as refused:
        store.get("refs/big.jpg", max_bytes=10)
    assert (refused.value.size, refused.value.max_bytes) == (11, 10)
    assert store.get("refs/big.jpg", max_bytes=11) == b"x" * 11


def _assessment(assessment_id: str, vin: str, created: datetime) -> Assessment:
    return Assessment(
        assessment_id=assessment_id,
        vin=vin,
        status=AssessmentStatus.PROCESSING,
        created_at=created,
        updated_at=created,
        inputs=AssessmentInputs(vin=vin, mileage=1200, estimate_usd=19999.99),
    )


def test_object_store_refuses_a_version_it_cannot_keep(tmp_path) -> None:
    store = FilesystemObjectStore(tmp_path)
    store.put("uploads/a/1.jpg", b"x", "image/jpeg")
    # A pinned S3 version cannot be honoured here: say so rather than hand over other bytes.
    with pytest.raises(ValueError, match="keeps no versions"):
        store.get("uploads/a/1.jpg", "3HL4kqtJvjVBH40Nrjfkd")


def test_in_memory_store_reads_a_pinned_version() -> None:
    from vehicle_assessment.adapters.memory import InMemoryObjectStore

    store = InMemoryObjectStore()
    store.put("k", b"first", "image/jpeg")
    first = store.current_version("k")
    store.put("k", b"second", "image/jpeg")
    assert store.get("k") == b"second" and store.get("k", first) == b"first"
    with pytest.raises(ObjectNotFound):
        store.get("k", "9")


def test_repository_saves_gets_and_updates(tmp_path) -> None:
    repo = SqliteAssessmentRepository(tmp_path / "db.sqlite3")
    now = datetime(2026, 11, 27, tzinfo=UTC)
    original = repo.save(_assessment("a1", "1FTMW1T88MFA00001", now))
    assert original.revision == 1 and repo.get("a1") == original
    done = original.model_copy(
        update={"status": AssessmentStatus.COMPLETED, "updated_at": now + timedelta(1)}
    )
    saved = repo.save(done)
    assert saved.revision == 2 and repo.get("a1") == saved
    # A second repository on the same file sees the same data (state survives the process).
    assert SqliteAssessmentRepository(tmp_path / "db.sqlite3").get("a1").status == AssessmentStatus.COMPLETED
    with pytest.raises(AssessmentNotFound, match="zzz"):
        repo.get("zzz")


def test_repository_saves_only_at_the_revision_read(tmp_path) -> None:
    """The port's optimistic locking, in SQLite too: a stale save writes nothing."""
    repo = SqliteAssessmentRepository(tmp_path / "db.sqlite3")
    now = datetime(2026, 11, 27, tzinfo=UTC)
    fresh = _assessment("a1", "1FTMW1T88MFA00001", now)
    stored = repo.save(fresh)
    with pytest.raises(ConcurrentUpdate):  # revision 0 creates only where nothing is stored
        repo.save(fresh)
    first, second = repo.get("a1"), repo.get("a1")
    saved = repo.save(first.model_copy(update={"warnings": ["first"]}))
    with pytest.raises(ConcurrentUpdate, match="a1"):
        repo.save(second.model_copy(update={"warnings": ["second"]}))
    assert repo.get("a1") == saved and saved.revision == stored.revision + 1
    with pytest.raises(ConcurrentUpdate):  # a revision never stored creates nothing
        repo.save(_assessment("a2", "1FTMW1T88MFA00001", now).model_copy(update={"revision": 3}))
    with pytest.raises(AssessmentNotFound):
        repo.get("a2")


def test_a_row_stored_before_revisions_reads_as_revision_0_and_saves_once(tmp_path) -> None:
    repo = SqliteAssessmentRepository(tmp_path / "db.sqlite3")
    repo.save(_assessment("old", "1FTMW1T88MFA00001", datetime(2026, 1, 1, tzinfo=UTC)))
    with sqlite3.connect(tmp_path / "db.sqlite3") as conn:  # as an older version wrote it
        conn.execute("UPDATE assessments SET document = json_remove(document, '$.revision')")
    legacy = repo.get("old")
    assert legacy.revision == 0
    assert repo.save(legacy.model_copy(update={"warnings": ["migrated"]})).revision == 1
    with pytest.raises(ConcurrentUpdate):
        repo.save(legacy)


def test_repository_lists_by_vin_newest_first(tmp_path) -> None:
    repo = SqliteAssessmentRepository(tmp_path / "db.sqlite3")
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for day, vin in enumerate(["VIN_A", "VIN_B", "VIN_A", "VIN_A"]):
        repo.save(_assessment(f"id{day}", vin, base + timedelta(days=day)))
    assert [a.assessment_id for a in repo.list_by_vin("VIN_A")] == ["id3", "id2", "id0"]
    assert [a.assessment_id for a in repo.list_by_vin("VIN_A", limit=1)] == ["id3"]
    assert repo.list_by_vin("UNKNOWN") == []


def test_repository_keeps_its_connection_across_calls(tmp_path, monkeypatch) -> None:
    """A warm assessment saves twice: opening a connection per call (and the WAL checkpoint SQLite
    runs when the last one closes) cost more than the writes themselves."""
    import vehicle_assessment.adapters.local.repository as repository_module

    repo = SqliteAssessmentRepository(tmp_path / "db.sqlite3")
    opened: list[object] = []
    real_connect = sqlite3.connect

    def counting_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        opened.append(args)
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(repository_module.sqlite3, "connect", counting_connect)
    now = datetime(2026, 11, 27, tzinfo=UTC)
    saved = repo.save(_assessment("a1", "1FTMW1T88MFA00001", now))
    saved = repo.save(saved.model_copy(update={"status": AssessmentStatus.COMPLETED}))
    assert repo.get("a1") == saved and repo.list_by_vin("1FTMW1T88MFA00001") == [saved]
    assert opened == []
    # What it wrote is committed: another connection (another process) reads it.
    monkeypatch.undo()
    assert SqliteAssessmentRepository(tmp_path / "db.sqlite3").get("a1") == saved
    repo.close()
    assert repo.get("a1") == saved  # reopened on use after close


def test_repository_nested_blocks_share_one_transaction(tmp_path) -> None:
    """An inner block (a read inside a write) must not commit its caller's transaction early."""
    repo = SqliteAssessmentRepository(tmp_path / "db.sqlite3")
    now = datetime(2026, 11, 27, tzinfo=UTC)
    with pytest.raises(RuntimeError), repo._connect() as conn:
        conn.execute(
            "INSERT INTO assessments (assessment_id, vin, status, created_at, updated_at, document)"
            " VALUES ('x', 'V', 'PROCESSING', 'c', 'u', ?)",
            (_assessment("x", "1FTMW1T88MFA00001", now).model_dump_json(),),
        )
        with repo._connect() as inner:
            assert inner.execute("SELECT count(*) FROM assessments").fetchone() == (1,)
        raise RuntimeError("the outer block fails after the inner one ended")
    with pytest.raises(AssessmentNotFound):
        repo.get("x")


def test_repository_is_safe_to_share_between_threads(tmp_path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    repo = SqliteAssessmentRepository(tmp_path / "db.sqlite3")
    now = datetime(2026, 11, 27, tzinfo=UTC)

    def save_and_update(number: int) -> Assessment:
        saved = repo.save(_assessment(f"t{number}", "1FTMW1T88MFA00001", now + timedelta(seconds=number)))
        return repo.save(saved.model_copy(update={"warnings": [f"thread {number}"]}))

    with ThreadPoolExecutor(max_workers=4) as pool:
        saved = list(pool.map(save_and_update, range(16)))
    assert [repo.get(a.assessment_id) for a in saved] == saved
