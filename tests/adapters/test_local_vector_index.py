"""The in-process reference index answers exactly like a brute-force cosine search."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vehicle_assessment.adapters.local.vector_index import LocalVectorIndex
from vehicle_assessment.domain.models import DamageType, EncoderIdentity, ReferenceLabel, Severity
from vehicle_assessment.ports import IndexMismatch, ReferenceItem

IDENTITY = EncoderIdentity(
    model_name="m", pretrained=None, untrained=True, dimension=16, weights_fingerprint="a" * 64
)
LABELS = [
    ReferenceLabel(damaged=False, damage_type=DamageType.NONE, severity=Severity.NONE),
    ReferenceLabel(damaged=True, damage_type=DamageType.DENT, severity=Severity.MODERATE),
    ReferenceLabel(damaged=True, damage_type=DamageType.BROKEN, severity=Severity.SEVERE),
]


def _items(rng: np.random.Generator, n: int) -> list[ReferenceItem]:
    return [
        ReferenceItem(
            source=f"ref/{i}.jpg", sha256=f"{i:064x}", label=LABELS[i % 3], vector=rng.normal(size=16)
        )
        for i in range(n)
    ]


def _brute_force(items: list[ReferenceItem], query: np.ndarray, k: int) -> list[tuple[str, float]]:
    q = query / np.linalg.norm(query)
    scored = [(item.source, float(item.vector @ q / np.linalg.norm(item.vector))) for item in items]
    return sorted(scored, key=lambda s: -s[1])[:k]


@pytest.mark.parametrize("k", [1, 5, 200, 500])
def test_search_equals_brute_force(tmp_path, k: int) -> None:
    rng = np.random.default_rng(7)
    items = _items(rng, 200)
    index = LocalVectorIndex(tmp_path / "index.sqlite3")
    index.bind(IDENTITY)
    index.add(items[:120])
    index.add(items[120:])  # two batches, like a resumed build
    queries = rng.normal(size=(4, 16)).astype(np.float32)
    results = index.search(queries / np.linalg.norm(queries, axis=1, keepdims=True), k)
    for query, neighbours in zip(queries, results, strict=True):
        expected = _brute_force(items, query, k)
        assert [n.source for n in neighbours] == [s for s, _ in expected]
        np.testing.assert_allclose([n.similarity for n in neighbours], [s for _, s in expected], atol=1e-5)
    by_source = {item.source: item.label for item in items}
    assert all(n.label == by_source[n.source] for n in results[0])
    # Each neighbour names its photo's digest: the key of its display copy (Neighbour.sha256).
    sha_by_source = {item.source: item.sha256 for item in items}
    assert all(n.sha256 == sha_by_source[n.source] for row in results for n in row)


def test_index_persists_and_checks_the_encoder(tmp_path) -> None:
    path = tmp_path / "index.sqlite3"
    index = LocalVectorIndex(path)
    index.bind(IDENTITY)
    index.add(_items(np.random.default_rng(1), 10))
    index.close()
    reopened = LocalVectorIndex(path)
    assert reopened.identity == IDENTITY
    assert reopened.count() == 10
    assert reopened.known_sources() == {f"ref/{i}.jpg" for i in range(10)}
    reopened.bind(IDENTITY)  # same encoder: fine
    other = IDENTITY.model_copy(update={"model_name": "other"})
    with pytest.raises(IndexMismatch, match="rebuild"):
        reopened.bind(other)


def test_index_rejects_bad_vectors_and_empty_search(tmp_path) -> None:
    index = LocalVectorIndex(tmp_path / "index.sqlite3")
    with pytest.raises(IndexMismatch, match="bind"):
        index.add(_items(np.random.default_rng(1), 1))
    index.bind(IDENTITY)
    with pytest.raises(IndexMismatch, match="empty"):
        index.search(np.ones(16, dtype=np.float32), 3)
    bad_shape = ReferenceItem(source="x", sha256="0", label=LABELS[0], vector=np.ones(8))
    with pytest.raises(ValueError, match="shape"):
        index.add([bad_shape])
    zero = ReferenceItem(source="z", sha256="0", label=LABELS[0], vector=np.zeros(16))
    with pytest.raises(ValueError, match="zero"):
        index.add([zero])
    index.add(_items(np.random.default_rng(2), 3))
    with pytest.raises(IndexMismatch, match="dimension"):
        index.search(np.ones(8, dtype=np.float32), 3)


def test_same_name_other_weights_is_refused(tmp_path) -> None:
    """Two untrained models of one name used to look alike; their fingerprints do not."""
    index = LocalVectorIndex(tmp_path / "index.sqlite3")
    index.bind(IDENTITY)
    index.add(_items(np.random.default_rng(1), 2))
    other_weights = IDENTITY.model_copy(update={"weights_fingerprint": "b" * 64})
    with pytest.raises(IndexMismatch, match=r"weights aaaaaaaaaaaa.*not .*weights bbbbbbbbbbbb.*rebuild"):
        index.bind(other_weights)
    with pytest.raises(IndexMismatch, match="no weights fingerprint"):
        index.bind(IDENTITY.without_fingerprint())
    assert index.identity == IDENTITY


def _legacy_index(path, rows: int) -> LocalVectorIndex:
    """An index as written before fingerprints: its meta row has no weights_fingerprint key."""
    index = LocalVectorIndex(path)
    legacy = IDENTITY.model_dump(exclude={"weights_fingerprint"})
    with index._conn:
        index._conn.execute("INSERT INTO meta (key, value) VALUES ('encoder', ?)", (json.dumps(legacy),))
    if rows:
        index.add(_items(np.random.default_rng(3), rows))
    return index


def test_legacy_index_with_vectors_is_refused_whatever_the_name_says(tmp_path) -> None:
    index = _legacy_index(tmp_path / "index.sqlite3", rows=3)
    assert index.identity == IDENTITY.without_fingerprint()
    with pytest.raises(IndexMismatch, match=r"before weights were fingerprinted.*rebuild the index"):
        index.bind(IDENTITY)
    assert index.identity == IDENTITY.without_fingerprint()  # nothing rewritten


def test_empty_legacy_index_is_claimed_by_the_fingerprinted_encoder(tmp_path) -> None:
    path = tmp_path / "index.sqlite3"
    _legacy_index(path, rows=0).bind(IDENTITY)
    assert LocalVectorIndex(path).identity == IDENTITY
