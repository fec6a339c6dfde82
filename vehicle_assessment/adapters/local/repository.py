"""SQLite assessment repository: one row per assessment, the document as JSON, VIN indexed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

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


class SqliteAssessmentRepository:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        with self._connect() as conn:
            conn.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        # One short-lived connection per call: safe across threads, and WAL lets readers
        # (`show`, `list`) run while an assessment is being written.
        conn = sqlite3.connect(self.path, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

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
