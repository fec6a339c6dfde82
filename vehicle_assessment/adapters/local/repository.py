"""SQLite assessment repository: one row per assessment, the document as JSON, VIN indexed.

The review queue (``review_queue``) is two columns kept by every save: ``review_key`` (the waiting
time, then the id; NULL while no photo waits) and ``review_entry`` (the queue entry as JSON), read
through a partial index on ``review_key``, so the queue is an index range, never a scan. A file
written before the queue existed gets the columns, filled from its documents, when it is opened.

``save`` keeps the port's optimistic locking although local mode is one process: the revision is
the document's own ``revision`` field (a row written before revisions existed reads as 0), and each
write is one statement conditional on it, so the semantics match the DynamoDB repository's.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, closing
from pathlib import Path

from vehicle_assessment.adapters.local.sqlite_state import KeptConnection, check_schema, state_file_errors
from vehicle_assessment.domain.models import Assessment, ReviewQueueEntry
from vehicle_assessment.domain.review import queue_entry, queue_sort_key
from vehicle_assessment.ports import AssessmentNotFound, ConcurrentUpdate

_SCHEMA = """
CREATE TABLE IF NOT EXISTS assessments (
    assessment_id TEXT PRIMARY KEY,
    vin TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    document TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS assessments_by_vin ON assessments (vin, created_at DESC);
-- `serve`'s list (GET /assessments): newest first, all or by status.
CREATE INDEX IF NOT EXISTS assessments_by_created ON assessments (created_at DESC, assessment_id DESC);
CREATE INDEX IF NOT EXISTS assessments_by_status ON assessments (status, created_at DESC, assessment_id DESC);
-- Upload tracking and orphan uploads of `serve` (workflow_repository.py); empty for the CLI's runs.
CREATE TABLE IF NOT EXISTS upload_tracking (
    assessment_id TEXT PRIMARY KEY,
    uploads TEXT NOT NULL,
    rejected TEXT NOT NULL,
    photo_results TEXT NOT NULL,
    rejected_overflow INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS orphan_uploads (
    object_key TEXT PRIMARY KEY,
    assessment_id TEXT,
    reason TEXT NOT NULL,
    size_bytes INTEGER,
    content_type TEXT,
    at TEXT NOT NULL
);
"""
# Added after the first release: ALTER TABLE on files that lack them (see _add_later_columns).
_QUEUE_COLUMNS = {"review_key": "TEXT", "review_entry": "TEXT"}
_QUEUE_INDEX = (
    "CREATE INDEX IF NOT EXISTS assessments_awaiting_review ON assessments (review_key)"
    " WHERE review_key IS NOT NULL"
)
_COLUMNS = {
    "assessments": ("assessment_id", "vin", "status", "created_at", "updated_at", "document"),
    "upload_tracking": ("assessment_id", "uploads", "rejected", "photo_results", "rejected_overflow"),
    "orphan_uploads": ("object_key", "assessment_id", "reason", "size_bytes", "content_type", "at"),
}
_REMEDY = "move the damaged file aside (a new empty one is created on the next run) and rerun"
_STORED_REVISION = "coalesce(json_extract(assessments.document, '$.revision'), 0)"
# Photos with a review, kept beside the document by `save` so that `evaluate` reads the reviewed
# assessments through a partial index instead of every document.
_REVIEWED_SCHEMA = """
CREATE INDEX IF NOT EXISTS assessments_reviewed ON assessments (created_at, assessment_id)
    WHERE reviewed_photos > 0;
"""
_REVIEWED_COLUMN = "reviewed_photos"
_COUNT_REVIEWED_PHOTOS = (
    "(SELECT COUNT(*) FROM json_each(assessments.document, '$.photos')"
    " WHERE json_array_length(json_each.value, '$.reviews') > 0)"
)


class SqliteAssessmentRepository:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # Checked before WAL mode is switched on, which would rewrite a foreign file's header.
        with state_file_errors(path, "assessment database", _REMEDY), closing(sqlite3.connect(path)) as conn:
            check_schema(conn, _COLUMNS)
        self._db = KeptConnection(path, "assessment database", _REMEDY)
        with self._connect() as conn:
            conn.executescript(_SCHEMA)
            self._add_later_columns(conn)
            conn.execute(_QUEUE_INDEX)
            conn.executescript(_REVIEWED_SCHEMA)

    @staticmethod
    def _add_later_columns(conn: sqlite3.Connection) -> None:
        """A file written before the queue / reviewed-photo columns gains them, filled once from its
        stored documents; two processes opening an old file migrate it once."""

        def missing() -> list[str]:
            found = {row[1] for row in conn.execute("PRAGMA table_info(assessments)")}
            return [name for name in (*_QUEUE_COLUMNS, _REVIEWED_COLUMN) if name not in found]

        if not missing():
            return
        conn.execute("BEGIN IMMEDIATE")
        todo = missing()
        for name in (n for n in todo if n in _QUEUE_COLUMNS):
            conn.execute(f"ALTER TABLE assessments ADD COLUMN {name} {_QUEUE_COLUMNS[name]}")
        if any(name in _QUEUE_COLUMNS for name in todo):
            rows = conn.execute("SELECT assessment_id, document FROM assessments").fetchall()
            for assessment_id, document in rows:
                key, entry = _queue_columns(Assessment.model_validate_json(document))
                conn.execute(
                    "UPDATE assessments SET review_key = ?, review_entry = ? WHERE assessment_id = ?",
                    (key, entry, assessment_id),
                )
        if _REVIEWED_COLUMN in todo:
            conn.execute(f"ALTER TABLE assessments ADD COLUMN {_REVIEWED_COLUMN} INTEGER NOT NULL DEFAULT 0")
            conn.execute(f"UPDATE assessments SET {_REVIEWED_COLUMN} = {_COUNT_REVIEWED_PHOTOS}")
        conn.commit()

    def close(self) -> None:
        self._db.close()

    def _connect(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._db.transaction()

    def save(self, assessment: Assessment) -> Assessment:
        """The document, only at the revision read (0: a new one); raises ConcurrentUpdate if not."""
        saved = assessment.model_copy(update={"revision": assessment.revision + 1})
        row: dict[str, object] = {
            "assessment_id": assessment.assessment_id,
            "vin": assessment.vin,
            "status": assessment.status.value,
            "created_at": assessment.created_at.isoformat(),
            "updated_at": assessment.updated_at.isoformat(),
            "document": saved.model_dump_json(),
            "read_revision": assessment.revision,
            "reviewed_photos": sum(1 for photo in assessment.photos if photo.reviews),
        }
        row["review_key"], row["review_entry"] = _queue_columns(assessment)
        set_columns = (
            "status = :status, updated_at = :updated_at, document = :document,"
            " review_key = :review_key, review_entry = :review_entry,"
            " reviewed_photos = :reviewed_photos"
        )
        if assessment.revision == 0:  # new, or stored before revisions existed
            statement = (
                "INSERT INTO assessments"
                " (assessment_id, vin, status, created_at, updated_at, document, review_key, review_entry,"
                " reviewed_photos)"
                " VALUES (:assessment_id, :vin, :status, :created_at, :updated_at, :document,"
                " :review_key, :review_entry, :reviewed_photos)"
                f" ON CONFLICT (assessment_id) DO UPDATE SET {set_columns}"
                f" WHERE {_STORED_REVISION} = :read_revision"
            )
        else:
            statement = (
                f"UPDATE assessments SET {set_columns}"
                f" WHERE assessment_id = :assessment_id AND {_STORED_REVISION} = :read_revision"
            )
        with self._connect() as conn:
            written = conn.execute(statement, row).rowcount
        if written != 1:
            raise ConcurrentUpdate(
                f"assessment {assessment.assessment_id} is no longer at revision {assessment.revision}"
            )
        return saved

    def get(self, assessment_id: str) -> Assessment:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT document FROM assessments WHERE assessment_id = ?", (assessment_id,)
            ).fetchone()
        if row is None:
            raise AssessmentNotFound(f"no assessment with id {assessment_id!r}")
        return Assessment.model_validate_json(row[0])

    def reviewed_assessments(self, page_size: int = 200) -> Iterator[Assessment]:
        """Every assessment with at least one reviewed photo, oldest first, read page by page through
        the partial index `assessments_reviewed` (never a scan of all documents)."""
        after: tuple[str, str] = ("", "")
        while True:
            with self._connect() as conn:
                rows = conn.execute(
                    "SELECT document, created_at, assessment_id FROM assessments"
                    " WHERE reviewed_photos > 0 AND (created_at, assessment_id) > (?, ?)"
                    " ORDER BY created_at, assessment_id LIMIT ?",
                    (*after, page_size),
                ).fetchall()
            for row in rows:
                yield Assessment.model_validate_json(row[0])
            if len(rows) < page_size:
                return
            after = (rows[-1][1], rows[-1][2])

    def list_by_vin(self, vin: str, limit: int = 50) -> list[Assessment]:
        return self.page_by_vin(vin, limit)[0]

    def review_queue(self, limit: int) -> list[ReviewQueueEntry]:
        """Assessments with photos awaiting a person, oldest first (the partial index, in order)."""
        with self._connect() as conn:
            rows = conn.execute(REVIEW_QUEUE_QUERY, (limit,)).fetchall()
        return [ReviewQueueEntry.model_validate_json(row[0]) for row in rows]

    def page_by_vin(
        self, vin: str, limit: int, next_token: str | None = None
    ) -> tuple[list[Assessment], str | None]:
        """One page, newest first, and the token of the next page (None on the last page).

        Keyset paging on (created_at, assessment_id): a page never repeats or skips a row when
        assessments are added between pages. Raises ValueError for a token it did not issue.
        """
        after = decode_page_token(next_token) if next_token else None
        query = "SELECT document, created_at, assessment_id FROM assessments WHERE vin = ?"
        params: list[object] = [vin]
        if after:
            query += " AND (created_at < ? OR (created_at = ? AND assessment_id < ?))"
            params += [after[0], after[0], after[1]]
        query += " ORDER BY created_at DESC, assessment_id DESC LIMIT ?"
        with self._connect() as conn:
            rows = conn.execute(query, (*params, limit + 1)).fetchall()
        page = rows[:limit]
        token = encode_page_token(page[-1][1], page[-1][2]) if len(rows) > limit else None
        return [Assessment.model_validate_json(row[0]) for row in page], token


REVIEW_QUEUE_QUERY = (
    "SELECT review_entry FROM assessments WHERE review_key IS NOT NULL ORDER BY review_key LIMIT ?"
)


def _queue_columns(assessment: Assessment) -> tuple[str | None, str | None]:
    entry = queue_entry(assessment)
    if entry is None:
        return None, None
    return queue_sort_key(entry), entry.model_dump_json()


def encode_page_token(created_at: str, assessment_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([created_at, assessment_id]).encode()).decode().rstrip("=")


def decode_page_token(token: str) -> tuple[str, str]:
    try:
        created_at, assessment_id = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, TypeError) as exc:  # binascii.Error and JSONDecodeError are ValueErrors
        raise ValueError(f"{token!r} is not a page token printed by `list`") from exc
    if not (isinstance(created_at, str) and isinstance(assessment_id, str)):
        raise ValueError(f"{token!r} is not a page token printed by `list`")
    return created_at, assessment_id
