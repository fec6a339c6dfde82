"""A large local reference index answers from a persisted faiss IVF-Flat index, never a stale one."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest

from vehicle_assessment.adapters.local.ann_index import AnnManifest, ann_file_paths
from vehicle_assessment.adapters.local.vector_index import LocalVectorIndex, top_k
from vehicle_assessment.domain.models import DamageType, EncoderIdentity, ReferenceLabel, Severity
from vehicle_assessment.ports import ReferenceItem
from vehicle_assessment.settings import IndexSettings

pytest.importorskip("faiss")

DIM, N, CENTRES = 64, 20_000, 200
IDENTITY = EncoderIdentity(
    model_name="m", pretrained=None, untrained=True, dimension=DIM, weights_fingerprint="a" * 64
)
OTHER_IDENTITY = IDENTITY.model_copy(update={"weights_fingerprint": "b" * 64})
SETTINGS = IndexSettings(ann_min_vectors=10_000)
LABEL = ReferenceLabel(damaged=True, damage_type=DamageType.DENT, severity=Severity.MINOR)
LOGGER = "vehicle_assessment.adapters.local.ann_index"


def _clustered(n: int, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    rows = centres[rng.integers(0, len(centres), n)] + 0.6 * rng.standard_normal((n, DIM))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def _items(vectors: np.ndarray, start: int = 0) -> list[ReferenceItem]:
    return [
        ReferenceItem(source=f"ref/{start + i}.jpg", sha256=f"{start + i:064x}", label=LABEL, vector=v)
        for i, v in enumerate(vectors)
    ]


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((CENTRES, DIM))
    return _clustered(N, rng, centres), _clustered(50, rng, centres), centres


def _built(path: Path, vectors: np.ndarray, settings: IndexSettings = SETTINGS) -> LocalVectorIndex:
    index = LocalVectorIndex(path, settings)
    index.bind(IDENTITY)
    index.add(_items(vectors))
    return index


def _recall_at_10(index: LocalVectorIndex, vectors: np.ndarray, queries: np.ndarray) -> float:
    truth, _ = top_k(vectors, queries, 10)
    found = index.search(queries, 10)
    return float(
        np.mean(
            [
                len({n.source for n in hits} & {f"ref/{i}.jpg" for i in row}) / 10
                for hits, row in zip(found, truth, strict=True)
            ]
        )
    )


def test_ann_answers_like_exact_search(tmp_path, data, caplog) -> None:
    vectors, queries, _ = data
    index = _built(tmp_path / "reference-index.sqlite3", vectors)
    assert index.uses_ann()
    caplog.clear()  # only what this search logs
    with caplog.at_level(logging.INFO, logger=LOGGER):
        results = index.search(queries, 10)
    faiss_path, manifest_path = ann_file_paths(index.path)
    assert faiss_path.name == "reference-index.faiss" and faiss_path.exists() and manifest_path.exists()
    assert "rebuilding the approximate reference index" in caplog.text  # first search builds it
    assert _recall_at_10(index, vectors, queries) >= 0.98
    exact = LocalVectorIndex(index.path, IndexSettings(ann_enabled=False)).search(queries, 10)
    for ann_hits, exact_hits in zip(results, exact, strict=True):
        assert len(ann_hits) == 10
        similarities = [n.similarity for n in ann_hits]
        assert similarities == sorted(similarities, reverse=True)
        # Same meaning: a shared hit has the same id, source, label and similarity as the exact one.
        by_id = {n.reference_id: n for n in exact_hits}
        shared = [n for n in ann_hits if n.reference_id in by_id]
        assert len(shared) >= 9
        for hit in shared:
            twin = by_id[hit.reference_id]
            assert (hit.source, hit.label) == (twin.source, twin.label)
            assert hit.similarity == pytest.approx(twin.similarity, abs=1e-5)


def test_below_the_threshold_search_is_exact_and_writes_no_ann_file(tmp_path, data) -> None:
    vectors, queries, _ = data
    index = _built(tmp_path / "reference-index.sqlite3", vectors[:5000])
    assert not index.uses_ann()
    index.search(queries, 10)
    assert not ann_file_paths(index.path)[0].exists()


def test_a_fresh_ann_file_is_reused_by_the_next_process(tmp_path, data, caplog) -> None:
    vectors, queries, _ = data
    first = _built(tmp_path / "reference-index.sqlite3", vectors)
    expected = first.search(queries, 10)
    caplog.clear()  # only what this search logs
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert LocalVectorIndex(first.path, SETTINGS).search(queries, 10) == expected
    assert "rebuilding" not in caplog.text


def test_adding_references_rebuilds_the_ann_file(tmp_path, data, caplog) -> None:
    vectors, queries, _ = data
    index = _built(tmp_path / "reference-index.sqlite3", vectors)
    index.search(queries, 10)
    # A new reference equal to the first query must be its best hit, in this process and the next.
    index.add(_items(queries[:1], start=N))
    caplog.clear()  # only what this search logs
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert index.search(queries[:1], 1)[0][0].source == f"ref/{N}.jpg"
    assert "now holds 20001" in caplog.text
    manifest = AnnManifest.model_validate_json(ann_file_paths(index.path)[1].read_bytes())
    assert manifest.row_count == N + 1
    assert LocalVectorIndex(index.path, SETTINGS).search(queries[:1], 1)[0][0].source == f"ref/{N}.jpg"


def test_another_process_adding_references_makes_the_ann_file_stale(tmp_path, data, caplog) -> None:
    vectors, queries, _ = data
    _built(tmp_path / "reference-index.sqlite3", vectors).search(queries, 10)
    writer = LocalVectorIndex(tmp_path / "reference-index.sqlite3", IndexSettings(ann_enabled=False))
    writer.add(_items(queries[:1], start=N))
    caplog.clear()  # only what this search logs
    with caplog.at_level(logging.INFO, logger=LOGGER):
        hit = LocalVectorIndex(writer.path, SETTINGS).search(queries[:1], 1)[0][0]
    assert hit.source == f"ref/{N}.jpg"
    assert "rebuilding" in caplog.text


def test_a_foreign_encoder_ann_file_is_refused_and_rebuilt(tmp_path, data, caplog) -> None:
    vectors, queries, _ = data
    index = _built(tmp_path / "reference-index.sqlite3", vectors)
    expected = index.search(queries, 10)
    _, manifest_path = ann_file_paths(index.path)
    manifest = AnnManifest.model_validate_json(manifest_path.read_bytes())
    manifest_path.write_text(manifest.model_copy(update={"identity": OTHER_IDENTITY}).model_dump_json())
    caplog.clear()  # only what this search logs
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert LocalVectorIndex(index.path, SETTINGS).search(queries, 10) == expected
    assert f"built from vectors of {OTHER_IDENTITY.describe()}" in caplog.text
    rebuilt = AnnManifest.model_validate_json(manifest_path.read_bytes())
    assert rebuilt.identity == IDENTITY


@pytest.mark.parametrize("damage", ["delete", "corrupt", "delete-manifest", "garbage-manifest"])
def test_a_missing_or_corrupt_ann_file_is_rebuilt_with_a_logged_line(tmp_path, data, caplog, damage) -> None:
    vectors, queries, _ = data
    index = _built(tmp_path / "reference-index.sqlite3", vectors)
    expected = index.search(queries, 10)
    faiss_path, manifest_path = ann_file_paths(index.path)
    if damage == "delete":
        faiss_path.unlink()
    elif damage == "corrupt":
        raw = bytearray(faiss_path.read_bytes())
        raw[len(raw) // 2 : len(raw) // 2 + 64] = bytes(64)  # zeroed vectors: a silent wrong answer if served
        faiss_path.write_bytes(bytes(raw))
    elif damage == "delete-manifest":
        manifest_path.unlink()
    else:
        manifest_path.write_text("{not json")
    caplog.clear()  # only what this search logs
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert LocalVectorIndex(index.path, SETTINGS).search(queries, 10) == expected
    assert "rebuilding the approximate reference index" in caplog.text


def test_more_neighbours_than_the_probed_cells_hold_are_answered_exactly(tmp_path, data) -> None:
    vectors, queries, _ = data
    settings = IndexSettings(ann_min_vectors=10_000, ann_nlist=1000, ann_nprobe=1)
    index = _built(tmp_path / "reference-index.sqlite3", vectors, settings)
    k = 500  # one of ~1000 cells holds ~20 vectors: the ANN answer is short, the exact one is not
    results = index.search(queries[:3], k)
    truth, _ = top_k(vectors, queries[:3], k)
    for hits, row in zip(results, truth, strict=True):
        assert [n.source for n in hits] == [f"ref/{i}.jpg" for i in row]


def test_without_faiss_a_large_index_answers_exactly_and_says_why(
    tmp_path, data, caplog, monkeypatch
) -> None:
    vectors, queries, _ = data
    index = _built(tmp_path / "reference-index.sqlite3", vectors)
    monkeypatch.setitem(sys.modules, "faiss", None)  # `import faiss` raises ImportError
    with caplog.at_level(logging.INFO):
        results = index.search(queries[:2], 10)
    truth, _ = top_k(vectors, queries[:2], 10)
    assert [[n.source for n in hits] for hits in results] == [[f"ref/{i}.jpg" for i in row] for row in truth]
    assert "searching 20000 references exactly: faiss-cpu is not installed" in caplog.text
    assert not ann_file_paths(index.path)[0].exists()
