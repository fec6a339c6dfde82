"""SQLite photo registry: every analysed photo of local mode, for the reused-photo check.

Its own file beside the assessment database (``photo-registry.sqlite3``): the assessment database
refuses tables it does not know. One row per (assessment, photo): VIN, sha256 (indexed), the 64-bit
perceptual hash (stored as a signed 64-bit INTEGER, SQLite's only integer type), the encoder identity
(JSON) and its float32 embedding.

A query is vectorised: the hashes are held in memory as one uint64 numpy array (refreshed from rows
added since the last query, by their AUTOINCREMENT id), and one XOR + popcount over it finds every
photo within the threshold, with no Python loop per row. Exact copies are an indexed sha256 lookup.
Embedding similarity is one matrix product over the stored vectors of the SAME trained encoder (the
encoder column is compared as text, and ``domain.reuse`` checks the identities again).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, closing, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from vehicle_assessment.adapters.local.sqlite_state import KeptConnection, check_schema, state_file_errors
from vehicle_assessment.domain.models import EncoderIdentity, PhotoFingerprint, ReuseMatch
from vehicle_assessment.domain.reuse import (
    embeddings_comparable,
    hamming_distances,
    hash_value,
    match_candidates,
)
from vehicle_assessment.domain.rules import ReuseSettings
from vehicle_assessment.ports import PhotoRegistryUnavailable

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS photos (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    assessment_id TEXT NOT NULL,
    photo_id TEXT NOT NULL,
    vin TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    perceptual_hash INTEGER NOT NULL,
    recorded_at TEXT NOT NULL,
    encoder TEXT,
    vector BLOB,
    UNIQUE (assessment_id, photo_id)
);
CREATE INDEX IF NOT EXISTS photos_by_sha256 ON photos (sha256);
CREATE INDEX IF NOT EXISTS photos_by_encoder ON photos (encoder);
"""
_COLUMNS = {
    "photos": (
        "id",
        "assessment_id",
        "photo_id",
        "vin",
        "sha256",
        "perceptual_hash",
        "recorded_at",
        "encoder",
        "vector",
    )
}
_REMEDY = (
    "move the damaged file aside (a new empty one is created on the next run; photos analysed before "
    "are then no longer checked for reuse) and rerun"
)
_FIELDS = "assessment_id, photo_id, vin, sha256, perceptual_hash, recorded_at, encoder, vector"


def _signed(value: int) -> int:
    """uint64 -> the int64 with the same bits (SQLite integers are signed 64-bit)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _hex(stored: int) -> str:
    return f"{stored & 0xFFFF_FFFF_FFFF_FFFF:016x}"


class SqlitePhotoRegistry:
    def __init__(self, path: Path, settings: ReuseSettings) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.settings = settings
        with state_file_errors(path, "photo registry", _REMEDY), closing(sqlite3.connect(path)) as conn:
            check_schema(conn, _COLUMNS)
        self._db = KeptConnection(path, "photo registry", _REMEDY)
        with self._connect() as conn:
            conn.executescript(_SCHEMA)
        # The hashes seen so far: row ids and their bits as uint64, extended by id on each query.
        self._ids = np.zeros(0, dtype=np.int64)
        self._hashes = np.zeros(0, dtype=np.uint64)
        self._last_id = 0

    def close(self) -> None:
        self._db.close()

    def _connect(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._db.transaction()

    def remember(self, fingerprint: PhotoFingerprint) -> None:
        """Idempotent per (assessment, photo): a second remember replaces the row with a new id
        (AUTOINCREMENT never reuses one), so every reader's in-memory hashes pick the new row up and
        the old id finds nothing."""
        vector = None
        if fingerprint.vector is not None:
            vector = np.asarray(fingerprint.vector, dtype=np.float32).tobytes()
        row = (
            fingerprint.assessment_id,
            fingerprint.photo_id,
            fingerprint.vin,
            fingerprint.sha256,
            _signed(hash_value(fingerprint.perceptual_hash)),
            fingerprint.recorded_at.isoformat(),
            fingerprint.encoder.model_dump_json() if fingerprint.encoder else None,
            vector,
        )
        with self._guard(), self._connect() as conn:
            conn.execute(f"INSERT OR REPLACE INTO photos ({_FIELDS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)

    def find_reuse(self, fingerprint: PhotoFingerprint) -> list[ReuseMatch]:
        with self._guard(), self._connect() as conn:
            self._refresh(conn)
            near = hamming_distances(hash_value(fingerprint.perceptual_hash), self._hashes)
            rowids = set(self._ids[near <= self.settings.perceptual_max_distance].tolist())
            rowids |= {
                rowid
                for (rowid,) in conn.execute(
                    "SELECT id FROM photos WHERE sha256 = ? AND vin != ?",
                    (fingerprint.sha256, fingerprint.vin),
                )
            }
            rowids |= self._similar(conn, fingerprint)
            candidates = self._rows(conn, sorted(rowids))
        return match_candidates(fingerprint, candidates, self.settings)

    def fingerprint(self, assessment_id: str, photo_id: str) -> PhotoFingerprint | None:
        with self._guard(), self._connect() as conn:
            row = conn.execute(
                f"SELECT {_FIELDS} FROM photos WHERE assessment_id = ? AND photo_id = ?",
                (assessment_id, photo_id),
            ).fetchone()
        return _fingerprint(row) if row else None

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """A locked or busy file past the timeout is an outage of the registry, not damage."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            raise PhotoRegistryUnavailable(f"{self.path}: {exc}") from exc

    def _refresh(self, conn: sqlite3.Connection) -> None:
        rows = conn.execute(
            "SELECT id, perceptual_hash FROM photos WHERE id > ? ORDER BY id", (self._last_id,)
        ).fetchall()
        if not rows:
            return
        fresh = np.array(rows, dtype=np.int64)
        self._ids = np.concatenate([self._ids, fresh[:, 0]])
        # Reinterpret the signed column's bits as unsigned: the XOR/popcount works on the raw bits.
        self._hashes = np.concatenate([self._hashes, fresh[:, 1].view(np.uint64)])
        self._last_id = int(fresh[-1, 0])

    def _similar(self, conn: sqlite3.Connection, fingerprint: PhotoFingerprint) -> set[int]:
        """Rowids of other vehicles' photos whose embedding (same trained encoder) is similar enough."""
        encoder = fingerprint.encoder
        if fingerprint.vector is None or encoder is None or not embeddings_comparable(encoder, encoder):
            return set()
        rows = conn.execute(
            "SELECT id, vector FROM photos WHERE encoder = ? AND vin != ? AND vector IS NOT NULL",
            (encoder.model_dump_json(), fingerprint.vin),
        ).fetchall()
        if not rows:
            return set()
        matrix = np.stack([np.frombuffer(blob, dtype=np.float32) for _, blob in rows])
        if matrix.shape[1] != len(fingerprint.vector):
            logger.warning(
                "photo registry %s: stored vectors of %s are %d-d, the query's %d-d; embedding check skipped",
                self.path,
                encoder.describe(),
                matrix.shape[1],
                len(fingerprint.vector),
            )
            return set()
        query = np.asarray(fingerprint.vector, dtype=np.float32)
        norms = np.linalg.norm(matrix, axis=1) * float(np.linalg.norm(query))
        similarity = (matrix @ query) / np.where(norms > 0, norms, 1.0)
        return {rows[i][0] for i in np.flatnonzero(similarity >= self.settings.embedding_min_similarity)}

    def _rows(self, conn: sqlite3.Connection, rowids: Sequence[int]) -> list[PhotoFingerprint]:
        found: list[PhotoFingerprint] = []
        for start in range(0, len(rowids), 500):  # SQLite's bound-parameter limit is far above 500
            chunk = rowids[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            found += [
                _fingerprint(row)
                for row in conn.execute(f"SELECT {_FIELDS} FROM photos WHERE id IN ({marks})", chunk)
            ]
        return found


def _fingerprint(row: tuple[Any, ...]) -> PhotoFingerprint:
    assessment_id, photo_id, vin, sha256, stored_hash, recorded_at, encoder, vector = row
    return PhotoFingerprint(
        assessment_id=str(assessment_id),
        photo_id=str(photo_id),
        vin=str(vin),
        sha256=str(sha256),
        perceptual_hash=_hex(int(stored_hash)),
        recorded_at=datetime.fromisoformat(str(recorded_at)),
        encoder=EncoderIdentity.model_validate_json(str(encoder)) if encoder else None,
        vector=np.frombuffer(vector, dtype=np.float32).tolist() if isinstance(vector, bytes) else None,
    )
