"""In-process reference index: cosine top-k, vectors persisted in SQLite.

Each row carries its label fields and source, so a search answers with everything a verdict
needs. Vectors are stored L2-normalised, so cosine similarity is a dot product. Below
`IndexSettings.ann_min_vectors` references the search is exact (numpy); at or above it, a faiss
IVF-Flat index persisted beside the SQLite file answers (see `ann_index`), with the same results'
shape and meaning.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from vehicle_assessment.adapters.local.ann_index import AnnIndex, AnnUnavailable, load_or_build_ann
from vehicle_assessment.adapters.local.sqlite_state import check_schema, state_file_errors
from vehicle_assessment.domain.models import (
    DamageType,
    EncoderIdentity,
    Neighbour,
    ReferenceLabel,
    ReferenceProvenance,
    Severity,
)
from vehicle_assessment.ports import IndexMismatch, ReferenceItem, StateFileUnusable
from vehicle_assessment.settings import IndexSettings

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS reference_photos (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL UNIQUE,
    sha256 TEXT NOT NULL,
    damaged INTEGER NOT NULL,
    damage_type TEXT NOT NULL,
    severity TEXT NOT NULL,
    vector BLOB NOT NULL,
    origin TEXT,
    provenance_assessment_id TEXT,
    provenance_photo_id TEXT,
    provenance_reviewer TEXT,
    provenance_reviewed_at TEXT
);
"""
# Columns every index file has; a file without them is not ours.
_COLUMNS = {
    "meta": ("key", "value"),
    "reference_photos": ("id", "source", "sha256", "damaged", "damage_type", "severity", "vector"),
}
# Columns added later (all nullable): an index file written before them gains them, rows kept.
_ADDED_COLUMNS = {
    "origin": "TEXT",
    "provenance_assessment_id": "TEXT",
    "provenance_photo_id": "TEXT",
    "provenance_reviewer": "TEXT",
    "provenance_reviewed_at": "TEXT",
}
_ROW_COLUMNS = (
    "source, sha256, damaged, damage_type, severity, vector, origin, "
    "provenance_assessment_id, provenance_photo_id, provenance_reviewer, provenance_reviewed_at"
)
_REMEDY = "move it aside and rebuild the index with `vehicle-assessment index build`"


def top_k(matrix: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and scores of the k largest dot products per query row, best first."""
    scores = queries @ matrix.T
    k = min(k, matrix.shape[0])
    if k == matrix.shape[0]:
        part = np.argsort(-scores, axis=1, kind="stable")
    else:
        # argpartition is O(n); only the k winners get sorted.
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
        part = np.take_along_axis(part, order, axis=1)
    part = part[:, :k]
    return part, np.take_along_axis(scores, part, axis=1)


@dataclass(frozen=True)
class StoredReference:
    """One indexed photo as stored (for evaluation and reports; searches use `search`)."""

    reference_id: str
    source: str
    sha256: str
    label: ReferenceLabel
    origin: str | None = None
    provenance: ReferenceProvenance | None = None


class LocalVectorIndex:
    def __init__(self, path: Path, settings: IndexSettings | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.settings = settings or IndexSettings()
        self._conn = sqlite3.connect(path)
        try:
            with self._state_errors():
                check_schema(self._conn, _COLUMNS)
                self._conn.executescript(_SCHEMA)
                self._add_missing_columns()
        except StateFileUnusable:
            self._conn.close()
            raise
        # Another connection's commit (a review adding a reference, an `index build`) changes this;
        # the cached rows are then reloaded (https://sqlite.org/pragma.html#pragma_data_version).
        self._data_version: int | None = None
        self._matrix: np.ndarray | None = None
        self._rows: list[tuple[int, str, ReferenceLabel]] = []
        self._sha256: dict[int, str] = {}
        self._row_ids = np.zeros(0, dtype=np.int64)
        self._position: dict[int, int] = {}
        self._ann: AnnIndex | None = None
        self._ann_unavailable_logged = False

    def close(self) -> None:
        self._conn.close()

    def _add_missing_columns(self) -> None:
        """Migrate a file written before the provenance and origin columns: ADD COLUMN keeps every row
        (their new columns read NULL: a labelled set's photo of unrecorded origin)."""

        def present() -> set[str]:
            return {row[1] for row in self._conn.execute("PRAGMA table_info(reference_photos)")}

        if set(_ADDED_COLUMNS) <= present():
            return
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")  # two processes opening an old file migrate it once
            columns = present()
            for name, kind in _ADDED_COLUMNS.items():
                if name not in columns:
                    logger.info("adding column %s to the reference index %s", name, self.path)
                    self._conn.execute(f"ALTER TABLE reference_photos ADD COLUMN {name} {kind}")

    def _state_errors(self) -> AbstractContextManager[None]:
        # A truncated, random or foreign file fails on whichever statement first reads it.
        return state_file_errors(self.path, "reference index", _REMEDY)

    @property
    def identity(self) -> EncoderIdentity | None:
        with self._state_errors():
            row = self._conn.execute("SELECT value FROM meta WHERE key = 'encoder'").fetchone()
        if row is None:
            return None
        try:
            return EncoderIdentity.model_validate_json(row[0])
        except ValidationError as exc:
            raise StateFileUnusable(
                f"{self.path} is not a usable reference index (its encoder record is unreadable); {_REMEDY}"
            ) from exc

    def bind(self, identity: EncoderIdentity) -> None:
        """Record `identity` in a new index, or check it against the one recorded.

        The check includes the weights fingerprint, whatever the names say. An index recorded
        without one (built before fingerprints existed) is claimed while it is still empty and
        refused once it holds vectors: nothing tells which weights made them.
        """
        if identity.weights_fingerprint is None:
            raise IndexMismatch(f"cannot bind {self.path} to {identity.describe()}: no weights fingerprint")
        with self._state_errors(), self._conn:
            # Write-locked from the first read: a second process binding at once waits, then sees ours.
            self._conn.execute("BEGIN IMMEDIATE")
            current = self.identity
            if current is None:
                self._conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('encoder', ?)", (identity.model_dump_json(),)
                )
                return
            if current.comparable_with(identity):
                return
            if current.weights_fingerprint is None and current == identity.without_fingerprint():
                if self.count() == 0:
                    self._conn.execute(
                        "UPDATE meta SET value = ? WHERE key = 'encoder'", (identity.model_dump_json(),)
                    )
                    return
                raise IndexMismatch(
                    f"the index at {self.path} holds vectors of {current.describe()}: it was built "
                    "before weights were fingerprinted, so nothing shows they came from "
                    f"{identity.describe()}; rebuild the index (delete {self.path}, run `index build`)"
                )
        raise IndexMismatch(
            f"the index at {self.path} holds vectors of {current.describe()}, "
            f"not {identity.describe()}; rebuild it with the same encoder settings "
            f"(delete {self.path}, run `index build`)"
        )

    def known_sources(self) -> set[str]:
        with self._state_errors():
            return {row[0] for row in self._conn.execute("SELECT source FROM reference_photos")}

    def count(self) -> int:
        with self._state_errors():
            return int(self._conn.execute("SELECT COUNT(*) FROM reference_photos").fetchone()[0])

    def _bound_identity(self) -> EncoderIdentity:
        identity = self.identity
        if identity is None:
            raise IndexMismatch("bind the index to an encoder before adding vectors")
        return identity

    @staticmethod
    def _row(item: ReferenceItem, dimension: int) -> tuple[object, ...]:
        vector = item.unit_vector(dimension)
        provenance = item.provenance
        return (
            item.source,
            item.sha256,
            int(item.label.damaged),
            item.label.damage_type.value,
            item.label.severity.value,
            vector.tobytes(),
            item.origin,
            provenance.assessment_id if provenance else None,
            provenance.photo_id if provenance else None,
            provenance.reviewer if provenance else None,
            provenance.reviewed_at.isoformat() if provenance else None,
        )

    def _rows_changed(self) -> None:
        self._matrix = None
        self._ann = None  # checked against the new rows (and rebuilt) at the next search

    def add(self, items: Sequence[ReferenceItem]) -> None:
        identity = self._bound_identity()
        rows = [self._row(item, identity.dimension) for item in items]
        # One transaction per batch: an interrupted build keeps every finished batch (resumable).
        with self._state_errors(), self._conn:
            self._conn.executemany(
                f"INSERT INTO reference_photos ({_ROW_COLUMNS}) VALUES ({', '.join('?' * 11)})", rows
            )
        self._rows_changed()

    def upsert(self, item: ReferenceItem) -> None:
        """Add `item`, replacing the row with its source (a photo reviewed again: its label may change).

        The new row takes an id above every existing one, so the ANN manifest's (row count, last row
        id) differs after a replacement too, and a persisted faiss file is rebuilt, never served stale.
        """
        row = self._row(item, self._bound_identity().dimension)
        with self._state_errors(), self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            (top,) = self._conn.execute("SELECT coalesce(max(id), 0) FROM reference_photos").fetchone()
            next_id = int(top) + 1
            replaced = self._conn.execute(
                "DELETE FROM reference_photos WHERE source = ?", (item.source,)
            ).rowcount
            self._conn.execute(
                f"INSERT INTO reference_photos (id, {_ROW_COLUMNS}) VALUES ({', '.join('?' * 12)})",
                (next_id, *row),
            )
        if replaced:
            logger.info("reference %s replaced in %s (new label %s)", item.source, self.path, item.label)
        self._rows_changed()

    def _load(self) -> np.ndarray:
        with self._state_errors():
            data_version = int(self._conn.execute("PRAGMA data_version").fetchone()[0])
        if data_version != self._data_version:
            self._data_version = data_version
            self._rows_changed()
        if self._matrix is None:
            with self._state_errors():
                rows = self._conn.execute(
                    "SELECT id, source, damaged, damage_type, severity, vector, sha256 FROM reference_photos"
                    " ORDER BY id"
                ).fetchall()
            try:
                self._matrix = self._decode_rows(rows)
            except ValueError as exc:  # unknown label values or vectors of the wrong length
                raise StateFileUnusable(
                    f"{self.path} is not a usable reference index ({' '.join(str(exc).split())}); {_REMEDY}"
                ) from exc
        return self._matrix

    def _decode_rows(self, rows: list[tuple]) -> np.ndarray:
        self._rows = [
            (
                row_id,
                source,
                ReferenceLabel(
                    damaged=bool(damaged), damage_type=DamageType(dtype), severity=Severity(severity)
                ),
            )
            for row_id, source, damaged, dtype, severity, *_ in rows
        ]
        # Each row's sha256 names its display copy (upload_keys.reference_image_key): Neighbour.sha256.
        self._sha256 = {int(row[0]): str(row[6]) for row in rows}
        self._row_ids = np.array([r[0] for r in rows], dtype=np.int64)
        self._position = {int(row_id): position for position, row_id in enumerate(self._row_ids)}
        dimension = self.identity.dimension if self.identity else 0
        if not rows:
            return np.zeros((0, dimension), dtype=np.float32)
        return np.frombuffer(b"".join(r[5] for r in rows), dtype=np.float32).reshape(len(rows), dimension)

    def search(self, vectors: np.ndarray, k: int) -> list[list[Neighbour]]:
        matrix = self._load()
        if matrix.shape[0] == 0:
            raise IndexMismatch(f"the reference index at {self.path} is empty; run `index build` first")
        queries = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        if queries.shape[1] != matrix.shape[1]:
            raise IndexMismatch(f"query dimension {queries.shape[1]} != index dimension {matrix.shape[1]}")
        indices, scores = self._top_k(matrix, queries, k)
        return [
            [
                Neighbour(
                    reference_id=str(self._rows[i][0]),
                    source=self._rows[i][1],
                    similarity=round(float(s), 6),
                    label=self._rows[i][2],
                    sha256=self._sha256.get(self._rows[i][0]),
                )
                for i, s in zip(row_idx, row_scores, strict=True)
            ]
            for row_idx, row_scores in zip(indices, scores, strict=True)
        ]

    def uses_ann(self) -> bool:
        """Whether searches go to the approximate index (its size is at or above the threshold)."""
        n = self._load().shape[0]
        return self.settings.ann_enabled and n >= self.settings.ann_min_vectors

    def prepare_search(self) -> None:
        """Load, and build if stale or missing, what searches need (after `index build`)."""
        if self.count() and self.uses_ann():
            self._ann_index(self._load())

    def _ann_index(self, matrix: np.ndarray) -> AnnIndex | None:
        if self._ann is None:
            identity = self.identity
            assert identity is not None  # rows exist only in a bound index
            try:
                self._ann = load_or_build_ann(
                    self.path,
                    matrix,
                    self._row_ids,
                    identity,
                    self.settings.ann_nlist,
                    self.settings.ann_nprobe,
                )
            except AnnUnavailable as exc:
                if not self._ann_unavailable_logged:
                    logger.warning("searching %d references exactly: %s", matrix.shape[0], exc)
                    self._ann_unavailable_logged = True
                return None
        return self._ann

    def _top_k(self, matrix: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Row positions and similarities, best first: exact, or from the ANN index when it is large."""
        n = matrix.shape[0]
        ann = self._ann_index(matrix) if self.uses_ann() and k < n else None
        if ann is None:
            return top_k(matrix, queries, k)
        ids, scores = ann.search(queries, k)
        short = np.flatnonzero((ids < 0).any(axis=1))
        if short.size:
            # The probed cells held fewer than k references: those queries are answered exactly.
            logger.info(
                "%d of %d queries answered exactly: fewer than %d hits in the probed cells",
                short.size,
                len(queries),
                k,
            )
            ids = ids.copy()
            exact_positions, scores[short] = top_k(matrix, queries[short], k)
            ids[short] = self._row_ids[exact_positions]
        positions = np.vectorize(self._position.__getitem__, otypes=[np.int64])(ids)
        return positions, scores

    def vectors_and_labels(self) -> tuple[list[StoredReference], np.ndarray]:
        """Every row in id order with its (n, d) unit-vector matrix; read-only, for evaluation."""
        matrix = self._load()
        with self._state_errors():
            extra = {
                row[0]: row[1:]
                for row in self._conn.execute(
                    "SELECT id, sha256, origin, provenance_assessment_id, provenance_photo_id,"
                    " provenance_reviewer, provenance_reviewed_at FROM reference_photos"
                )
            }
        rows = []
        for row_id, source, label in self._rows:
            sha256, origin, assessment_id, photo_id, reviewer, reviewed_at = extra[row_id]
            provenance = (
                ReferenceProvenance(
                    assessment_id=assessment_id,
                    photo_id=photo_id,
                    reviewer=reviewer,
                    reviewed_at=datetime.fromisoformat(reviewed_at),
                )
                if assessment_id is not None
                else None
            )
            rows.append(
                StoredReference(
                    reference_id=str(row_id),
                    source=source,
                    sha256=sha256,
                    label=label,
                    origin=origin,
                    provenance=provenance,
                )
            )
        return rows, matrix.copy()
