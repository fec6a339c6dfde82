"""The WorkflowRepository on SQLite: what `vehicle-assessment serve` needs beyond the CLI's repository.

Same file, same ``assessments`` table as the CLI (``repository.py``), so an assessment made by
``assess`` (or ``make demo``) is served too. Upload tracking lives beside the document, one row per
assessment in ``upload_tracking`` (the uploads counted, the rejections, the per-photo results), and
orphan uploads in ``orphan_uploads``; every read merges them over the document with the code the
DynamoDB and in-memory repositories share (``adapters/upload_tracking.py``), so the semantics are
theirs: ``create`` stores revision 1, ``save`` and ``mark_status`` add one, the tracking writes do not.

Each write that reads first runs in one ``BEGIN IMMEDIATE`` transaction: SQLite's write lock is then
held from the read to the commit, which makes the read-check-write as conditional as DynamoDB's
condition expressions, across threads and processes alike.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from vehicle_assessment.adapters.local.repository import (
    SqliteAssessmentRepository,
    decode_page_token,
    encode_page_token,
)
from vehicle_assessment.adapters.upload_tracking import tracked_assessment
from vehicle_assessment.domain import limits
from vehicle_assessment.domain.models import Assessment, AssessmentStatus, EncoderIdentity, PhotoRecord
from vehicle_assessment.ports import (
    AssessmentFilter,
    AssessmentNotFound,
    AssessmentPage,
    AwaitingAssessment,
    PhotoReceipt,
    RejectedUpload,
    UploadOutcome,
)

_STORED_REVISION = "coalesce(json_extract(document, '$.revision'), 0)"


def _iso(moment: datetime) -> str:
    """The fixed-width UTC form the other repositories use: string order is time order."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class SqliteWorkflowRepository(SqliteAssessmentRepository):
    """Implements WorkflowRepository; safe to share between threads (the repository's one connection, under
    its lock; read-then-write steps in BEGIN IMMEDIATE transactions)."""

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A transaction that holds the write lock from its first statement (reads included)."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            yield conn

    # -- AssessmentRepository ----------------------------------------------------------------

    def create(self, assessment: Assessment) -> bool:
        stored = assessment.model_copy(update={"revision": 1})
        with self._write() as conn:
            inserted = conn.execute(
                "INSERT INTO assessments (assessment_id, vin, status, created_at, updated_at, document)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (assessment_id) DO NOTHING",
                (
                    assessment.assessment_id,
                    assessment.vin,
                    assessment.status.value,
                    assessment.created_at.isoformat(),
                    assessment.updated_at.isoformat(),
                    stored.model_dump_json(),
                ),
            ).rowcount
        return inserted == 1

    def get(self, assessment_id: str) -> Assessment:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT a.document, a.status, a.updated_at, t.uploads, t.photo_results"
                " FROM assessments a LEFT JOIN upload_tracking t USING (assessment_id)"
                " WHERE a.assessment_id = ?",
                (assessment_id,),
            ).fetchone()
        if row is None:
            raise AssessmentNotFound(f"no assessment with id {assessment_id!r}")
        return self._merged(*row)

    def list_by_vin(self, vin: str, limit: int = 50) -> list[Assessment]:
        return [self.get(a.assessment_id) for a in super().list_by_vin(vin, limit)]

    def exists(self, assessment_id: str) -> bool:
        with self._connect() as conn:
            found = conn.execute("SELECT 1 FROM assessments WHERE assessment_id = ?", (assessment_id,))
            return found.fetchone() is not None

    # -- upload tracking ---------------------------------------------------------------------

    def record_photo(
        self,
        assessment_id: str,
        object_key: str,
        size_bytes: int,
        content_type: str,
        now: datetime,
        photo_id: str,
        filename: str,
        version_id: str | None = None,
    ) -> PhotoReceipt:
        with self._write() as conn:
            row = self._status_and_expected(conn, assessment_id)
            if row is None:
                return PhotoReceipt.unknown(assessment_id)
            status, expected = row
            tracking = _Tracking.read(conn, assessment_id)
            received = set(tracking.uploads)
            countable = status == AssessmentStatus.AWAITING_PHOTOS and (
                photo_id not in received and len(received) < expected
            )
            if not countable:
                counted = tracking.uploads.get(photo_id, {})
                return PhotoReceipt.not_counted(
                    photo_id,
                    object_key,
                    counted.get("object_key"),
                    received,
                    expected,
                    status,
                    version_id,
                    counted.get("version_id"),
                )
            tracking.uploads[photo_id] = {
                "photo_id": photo_id,
                "object_key": object_key,
                "filename": filename,
                "size_bytes": size_bytes,
                "content_type": content_type,
                "received_at": _iso(now),
                "version_id": version_id,
            }
            tracking.write(conn)
            conn.execute(
                "UPDATE assessments SET updated_at = ? WHERE assessment_id = ?", (_iso(now), assessment_id)
            )
            return PhotoReceipt(UploadOutcome.ACCEPTED, len(tracking.uploads), expected, status)

    def reject_upload(
        self,
        assessment_id: str | None,
        object_key: str,
        reason: str,
        now: datetime,
        size_bytes: int | None = None,
        content_type: str | None = None,
    ) -> bool:
        rejected = RejectedUpload(object_key, reason, size_bytes, content_type, _iso(now))
        with self._write() as conn:
            known = assessment_id is not None and (
                conn.execute("SELECT 1 FROM assessments WHERE assessment_id = ?", (assessment_id,)).fetchone()
                is not None
            )
            if not known or assessment_id is None:
                self._keep_orphan(conn, rejected, assessment_id)
                return False
            tracking = _Tracking.read(conn, assessment_id)
            kept = tracking.rejected
            if object_key in kept or len(kept) < limits.MAX_REJECTED_UPLOADS_PER_ASSESSMENT:
                kept[object_key] = vars(rejected)
                tracking.write(conn)
                return True
            already = conn.execute("SELECT 1 FROM orphan_uploads WHERE object_key = ?", (object_key,))
            if already.fetchone() is None:  # a redelivered rejection counts once
                tracking.rejected_overflow += 1
                tracking.write(conn)
            self._keep_orphan(conn, rejected, assessment_id)
            return False

    @staticmethod
    def _keep_orphan(conn: sqlite3.Connection, rejected: RejectedUpload, assessment_id: str | None) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO orphan_uploads"
            " (object_key, assessment_id, reason, size_bytes, content_type, at) VALUES (?, ?, ?, ?, ?, ?)",
            (
                rejected.object_key,
                assessment_id,
                rejected.reason,
                rejected.size_bytes,
                rejected.content_type,
                rejected.at,
            ),
        )

    def rejected_uploads(self, assessment_id: str) -> list[RejectedUpload]:
        with self._connect() as conn:
            self._require(conn, assessment_id)
            entries = [RejectedUpload(**r) for r in _Tracking.read(conn, assessment_id).rejected.values()]
        return sorted(entries, key=lambda r: (r.at, r.object_key))

    def rejected_uploads_overflow(self, assessment_id: str) -> int:
        with self._connect() as conn:
            self._require(conn, assessment_id)
            return _Tracking.read(conn, assessment_id).rejected_overflow

    def orphan_upload(self, object_key: str) -> RejectedUpload | None:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT object_key, reason, size_bytes, content_type, at FROM orphan_uploads"
                " WHERE object_key = ?",
                (object_key,),
            ).fetchone()
        return RejectedUpload(*row) if row is not None else None

    def upload_progress(self, assessment_id: str) -> PhotoReceipt:
        with self._connect() as conn:
            row = self._status_and_expected(conn, assessment_id)
            if row is None:
                raise AssessmentNotFound(f"no assessment with id {assessment_id!r}")
            received = len(_Tracking.read(conn, assessment_id).uploads)
        status, expected = row
        return PhotoReceipt(UploadOutcome.ACCEPTED, received, expected, status)

    def mark_status(
        self,
        assessment_id: str,
        new_status: AssessmentStatus,
        from_statuses: Iterable[AssessmentStatus],
        now: datetime,
        only_if_photos_missing: bool = False,
    ) -> bool:
        allowed = set(from_statuses)
        with self._write() as conn:
            row = self._status_and_expected(conn, assessment_id)
            if row is None or row[0] not in allowed:
                return False
            if only_if_photos_missing and len(_Tracking.read(conn, assessment_id).uploads) >= row[1]:
                return False
            # The status is in the document too (a save writes both): the revision moves on, so a
            # save from a read before this move is refused instead of undoing it.
            conn.execute(
                "UPDATE assessments SET status = :status, updated_at = :now,"
                f" document = json_set(document, '$.status', :status, '$.updated_at', :now,"
                f" '$.revision', {_STORED_REVISION} + 1)"
                " WHERE assessment_id = :assessment_id",
                {"status": new_status.value, "now": _iso(now), "assessment_id": assessment_id},
            )
            return True

    def awaiting_before(self, cutoff: datetime, limit: int = 100) -> list[AwaitingAssessment]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT assessment_id, json_extract(document, '$.created_at'),"
                " json_extract(document, '$.expected_photos') FROM assessments"
                " WHERE status = ? ORDER BY created_at, assessment_id",
                (AssessmentStatus.AWAITING_PHOTOS.value,),
            ).fetchall()
            found: list[AwaitingAssessment] = []
            for assessment_id, created_at, expected in rows:
                created = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
                if created >= cutoff or len(found) >= limit:
                    break
                received = len(_Tracking.read(conn, assessment_id).uploads)
                found.append(AwaitingAssessment(assessment_id, _iso(created), received, int(expected)))
        return found

    def save_photo_result(self, assessment_id: str, record: PhotoRecord, encoder: EncoderIdentity) -> None:
        with self._write() as conn:
            self._require(conn, assessment_id)
            tracking = _Tracking.read(conn, assessment_id)
            tracking.photo_results[record.photo_id] = record.model_dump(mode="json")
            tracking.write(conn)
            conn.execute(
                "UPDATE assessments SET document = json_set(document, '$.encoder', json(?))"
                " WHERE assessment_id = ?",
                (encoder.model_dump_json(), assessment_id),
            )

    def list_assessments(
        self, which: AssessmentFilter, limit: int, next_token: str | None = None
    ) -> AssessmentPage:
        """One indexed query: (vin, created_at), (status, created_at) or (created_at), newest first."""
        clauses: list[str] = []
        params: list[object] = []
        if which.status is not None:
            clauses.append("a.status = ?")
            params.append(which.status.value)
        if which.vin is not None:
            clauses.append("a.vin = ?")
            params.append(which.vin)
        if which.needs_review is not None:
            clauses.append("(coalesce(json_array_length(a.document, '$.review_reasons'), 0) > 0) = ?")
            params.append(int(which.needs_review))
        if next_token:
            created_at, assessment_id = decode_page_token(next_token)
            clauses.append("(a.created_at < ? OR (a.created_at = ? AND a.assessment_id < ?))")
            params += [created_at, created_at, assessment_id]
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT a.document, a.status, a.updated_at, t.uploads, t.photo_results, a.created_at,"
                " a.assessment_id FROM assessments a LEFT JOIN upload_tracking t USING (assessment_id)"
                f"{where} ORDER BY a.created_at DESC, a.assessment_id DESC LIMIT ?",
                (*params, limit + 1),
            ).fetchall()
        page = rows[:limit]
        token = encode_page_token(page[-1][5], page[-1][6]) if len(rows) > limit else None
        return AssessmentPage([self._merged(*row[:5]) for row in page], token)

    # -- helpers -----------------------------------------------------------------------------

    @staticmethod
    def _status_and_expected(
        conn: sqlite3.Connection, assessment_id: str
    ) -> tuple[AssessmentStatus, int] | None:
        """What upload counting reads of an assessment: its status and how many photos it expects."""
        row = conn.execute(
            "SELECT status, json_extract(document, '$.expected_photos') FROM assessments"
            " WHERE assessment_id = ?",
            (assessment_id,),
        ).fetchone()
        return None if row is None else (AssessmentStatus(row[0]), int(row[1]))

    @staticmethod
    def _require(conn: sqlite3.Connection, assessment_id: str) -> None:
        found = conn.execute("SELECT 1 FROM assessments WHERE assessment_id = ?", (assessment_id,))
        if found.fetchone() is None:
            raise AssessmentNotFound(f"no assessment with id {assessment_id!r}")

    @staticmethod
    def _merged(
        document: str, status: str, updated_at: str, uploads: str | None, photo_results: str | None
    ) -> Assessment:
        parsed = json.loads(document)
        return tracked_assessment(
            parsed,
            status,
            updated_at,
            json.loads(uploads) if uploads else {},
            json.loads(photo_results) if photo_results else {},
            int(parsed.get("revision") or 0),
        )


class _Tracking:
    """One assessment's upload tracking row, read and written inside the caller's transaction."""

    def __init__(self, assessment_id: str, row: tuple[str, str, str, int] | None) -> None:
        self.assessment_id = assessment_id
        uploads, rejected, photo_results, overflow = row or ("{}", "{}", "{}", 0)
        self.uploads: dict[str, dict[str, Any]] = json.loads(uploads)
        self.rejected: dict[str, dict[str, Any]] = json.loads(rejected)
        self.photo_results: dict[str, dict[str, Any]] = json.loads(photo_results)
        self.rejected_overflow = int(overflow)

    @classmethod
    def read(cls, conn: sqlite3.Connection, assessment_id: str) -> _Tracking:
        row = conn.execute(
            "SELECT uploads, rejected, photo_results, rejected_overflow FROM upload_tracking"
            " WHERE assessment_id = ?",
            (assessment_id,),
        ).fetchone()
        return cls(assessment_id, row)

    def write(self, conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO upload_tracking"
            " (assessment_id, uploads, rejected, photo_results, rejected_overflow) VALUES (?, ?, ?, ?, ?)",
            (
                self.assessment_id,
                json.dumps(self.uploads),
                json.dumps(self.rejected),
                json.dumps(self.photo_results),
                self.rejected_overflow,
            ),
        )
