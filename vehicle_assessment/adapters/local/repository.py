"""SQLite assessment repository: one row per assessment, the document as JSON, VIN indexed."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from vehicle_assessment.adapters.local.sqlite_state import check_schema, state_file_errors
from vehicle_assessment.domain.models import Assessment
from vehicle_assessment.ports import AssessmentNotFound

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
"""
_COLUMNS = {"assessments": ("assessment_id", "vin", "status", "created_at", "updated_at", "document")}
_REMEDY = "move the damaged file aside (a new empty one is created on the next run) and rerun"


class SqliteAssessmentRepository:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # Checked before WAL mode is switched on, which would rewrite a foreign file's header.
        with state_file_errors(path, "assessment database", _REMEDY), closing(sqlite3.connect(path)) as conn:
            check_schema(conn, _COLUMNS)
        with self._connect() as conn:
            conn.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # One short-lived connection per call: safe across threads, and WAL lets readers
        # (`show`, `list`) run while an assessment is being written. A damaged or foreign file
        # becomes StateFileUnusable naming it, whichever statement finds out.
        with (
            state_file_errors(self.path, "assessment database", _REMEDY),
            closing(sqlite3.connect(self.path, timeout=30)) as conn,
            conn,
        ):
            conn.execute("PRAGMA journal_mode=WAL")
            yield conn

    def save(self, assessment: Assessment) -> None:
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO assessments (assessment_id, vin, status, created_at, updated_at, document)"
                " VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (assessment_id) DO UPDATE SET status = excluded.status,"
                " updated_at = excluded.updated_at, document = excluded.document",
                (
                    assessment.assessment_id,
                    assessment.vin,
                    assessment.status.value,
                    assessment.created_at.isoformat(),
                    assessment.updated_at.isoformat(),
                    assessment.model_dump_json(),
                ),
            )

    def get(self, assessment_id: str) -> Assessment:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT document FROM assessments WHERE assessment_id = ?", (assessment_id,)
            ).fetchone()
        if row is None:
            raise AssessmentNotFound(f"no assessment with id {assessment_id!r}")
        return Assessment.model_validate_json(row[0])

    def list_by_vin(self, vin: str, limit: int = 50) -> list[Assessment]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT document FROM assessments WHERE vin = ? ORDER BY created_at DESC LIMIT ?",
                (vin, limit),
            ).fetchall()
        return [Assessment.model_validate_json(row[0]) for row in rows]
