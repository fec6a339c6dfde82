"""Approximate top-k for large local reference indexes: faiss IVF-Flat on the unit vectors.

IVF-Flat clusters the vectors into `nlist` cells (k-means) and scores a query exactly, by inner
product (= cosine on unit vectors), against the vectors of the `nprobe` nearest cells. The index is
persisted next to the SQLite file with a manifest of what it was built from (row count, last row
id, encoder identity, the file's sha256); a file whose manifest does not match the rows being served,
or that is missing, foreign or corrupt, is rebuilt (with a logged line), never served.

faiss is imported only when an index is built or loaded: the package is optional for the rest of
the product and no Lambda handler imports this module.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from vehicle_assessment.domain.models import EncoderIdentity

logger = logging.getLogger(__name__)

# k-means wants ~40 training points per cell (faiss warns below 39); more adds build time, not recall.
_TRAINING_POINTS_PER_CELL = 40
_MIN_NLIST, _MAX_NLIST = 16, 4096


class AnnUnavailable(RuntimeError):
    """faiss is not installed: the caller answers exactly (and says so)."""


class AnnManifest(BaseModel):
    """What an ANN file was built from; any difference from the rows served means rebuild."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    row_count: int
    last_row_id: int
    identity: EncoderIdentity
    nlist: int
    faiss_sha256: str


def default_nlist(n: int) -> int:
    """~4·sqrt(n) cells (benchmark P5), 16 to 4096, and no more than n's training points allow."""
    return int(max(1, min(n // _TRAINING_POINTS_PER_CELL, _MAX_NLIST, max(_MIN_NLIST, 4 * np.sqrt(n)))))


def ann_file_paths(sqlite_path: Path) -> tuple[Path, Path]:
    """`reference-index.faiss` and `reference-index.faiss.json` beside `reference-index.sqlite3`."""
    index_path = sqlite_path.with_suffix(".faiss")
    return index_path, index_path.with_name(index_path.name + ".json")


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:
        raise AnnUnavailable("faiss-cpu is not installed (pip install -r requirements.txt)") from exc
    return faiss


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _replace_atomically(target: Path, write: Any) -> None:
    """Write through a temporary file in the same folder, then rename: readers see old or new, whole."""
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass
class AnnIndex:
    """A loaded IVF-Flat index whose ids are the SQLite row ids."""

    index: Any
    nprobe: int

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(row ids, inner products), best first; id -1 where the probed cells held fewer than k."""
        self.index.nprobe = min(self.nprobe, self.index.nlist)
        scores, ids = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return ids, scores


def build_ann(matrix: np.ndarray, row_ids: np.ndarray, nlist: int) -> Any:
    """Train IVF-Flat cells on a sample of `matrix` (unit rows) and add every row under its id."""
    faiss = _faiss()
    n, dimension = matrix.shape
    nlist = min(nlist, n)
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dimension), dimension, nlist, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(0)  # the same rows build the same cells
    sample = min(n, _TRAINING_POINTS_PER_CELL * nlist)
    training = matrix if sample == n else matrix[np.sort(rng.choice(n, sample, replace=False))]
    index.train(np.ascontiguousarray(training, dtype=np.float32))
    index.add_with_ids(np.ascontiguousarray(matrix, dtype=np.float32), row_ids.astype(np.int64))
    return index


def _why_unusable(
    index_path: Path, manifest_path: Path, expected: AnnManifest, dimension: int
) -> tuple[str | None, Any]:
    """(reason the persisted ANN index may not be served, or None; the loaded index when usable)."""
    if not index_path.exists() or not manifest_path.exists():
        return f"{index_path} or its manifest is missing", None
    try:
        manifest = AnnManifest.model_validate_json(manifest_path.read_bytes())
    except (OSError, ValidationError) as exc:
        return f"its manifest {manifest_path} is unreadable ({type(exc).__name__})", None
    if manifest.identity != expected.identity:
        return (
            f"it was built from vectors of {manifest.identity.describe()}, "
            f"not {expected.identity.describe()}",
            None,
        )
    if (manifest.row_count, manifest.last_row_id) != (expected.row_count, expected.last_row_id):
        return (
            f"it was built from {manifest.row_count} references (last id {manifest.last_row_id}); the "
            f"index now holds {expected.row_count} (last id {expected.last_row_id})",
            None,
        )
    if manifest.nlist != expected.nlist:
        return f"it has {manifest.nlist} cells; the settings ask for {expected.nlist}", None
    if _sha256(index_path) != manifest.faiss_sha256:
        return f"{index_path} does not match its manifest's checksum (corrupt or replaced)", None
    try:
        index = _faiss().read_index(str(index_path))
    except RuntimeError as exc:  # faiss reports unreadable files as RuntimeError
        return f"faiss cannot read {index_path} ({' '.join(str(exc).split())[:200]})", None
    if index.ntotal != expected.row_count or index.d != dimension:
        return (
            f"{index_path} holds {index.ntotal} × {index.d}-d, not {expected.row_count} × {dimension}-d",
            None,
        )
    return None, index


def load_or_build_ann(
    sqlite_path: Path,
    matrix: np.ndarray,
    row_ids: np.ndarray,
    identity: EncoderIdentity,
    nlist: int | None,
    nprobe: int,
) -> AnnIndex:
    """The persisted ANN index for exactly these rows and this encoder, rebuilt (and logged) if it is not."""
    index_path, manifest_path = ann_file_paths(sqlite_path)
    n, dimension = matrix.shape
    expected = AnnManifest(
        row_count=n,
        last_row_id=int(row_ids[-1]),
        identity=identity,
        nlist=min(nlist or default_nlist(n), n),
        faiss_sha256="",
    )
    reason, index = _why_unusable(index_path, manifest_path, expected, dimension)
    if reason is None:
        return AnnIndex(index=index, nprobe=nprobe)
    logger.warning("rebuilding the approximate reference index %s: %s", index_path, reason)
    index = build_ann(matrix, row_ids, expected.nlist)
    faiss = _faiss()
    _replace_atomically(index_path, lambda tmp: faiss.write_index(index, str(tmp)))
    manifest = expected.model_copy(update={"faiss_sha256": _sha256(index_path)})
    # Written after the index: a reader between the two renames sees a checksum mismatch and rebuilds.
    _replace_atomically(
        manifest_path, lambda tmp: tmp.write_text(manifest.model_dump_json(), encoding="utf-8")
    )
    logger.info("built %s: %d references, %d cells", index_path, n, expected.nlist)
    return AnnIndex(index=index, nprobe=nprobe)
