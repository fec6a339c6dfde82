"""The reused-photo check's pure rules: hash, distances, the band layout's pigeonhole guarantee, and
the match rule (other vehicles only; embeddings only from one trained encoder)."""

from __future__ import annotations

import random
import sys
from datetime import UTC, datetime

import numpy as np
import pytest
from PIL import Image

from vehicle_assessment.domain import reuse
from vehicle_assessment.domain.models import EncoderIdentity, PhotoFingerprint, ReuseMatchKind
from vehicle_assessment.domain.rules import ReuseSettings

NOW = datetime(2026, 11, 27, tzinfo=UTC)
TRAINED = EncoderIdentity(
    model_name="ViT-L-14",
    pretrained="laion2b_s32b_b82k",
    untrained=False,
    dimension=3,
    weights_fingerprint="ab",
)


def _fingerprint(
    photo_id: str, vin: str, hex_hash: str, sha: str = "0" * 64, **extra: object
) -> PhotoFingerprint:
    return PhotoFingerprint(
        assessment_id=f"a-{photo_id}",
        photo_id=photo_id,
        vin=vin,
        sha256=sha,
        perceptual_hash=hex_hash,
        recorded_at=NOW,
        **extra,  # type: ignore[arg-type]
    )


def test_the_hash_is_64_bits_of_hex_and_needs_neither_scipy_nor_pywavelets(monkeypatch) -> None:
    # The photo Lambda package carries imagehash without scipy/PyWavelets (no room): dHash must not
    # import them (None in sys.modules makes any import of them fail).
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "pywt", None)
    gradient = Image.fromarray(np.tile(np.arange(0, 256, 4, dtype=np.uint8), (64, 1))).convert("RGB")
    value = reuse.perceptual_hash(gradient)
    assert len(value) == 16 and int(value, 16) >= 0
    assert reuse.perceptual_hash(gradient) == value  # deterministic


def test_hamming_distances_are_vectorised_popcounts() -> None:
    hashes = ["0000000000000000", "ffffffffffffffff", "8000000000000001", "00000000000000ff"]
    packed = reuse.pack_hashes(hashes)
    assert packed.dtype == np.uint64
    assert reuse.hamming_distances(0, packed).tolist() == [0, 64, 2, 8]
    assert reuse.hamming_distance("ffffffffffffffff", "7fffffffffffffff") == 1
    with pytest.raises(ValueError, match="16 hex digits"):
        reuse.hash_value("abc")


@pytest.mark.parametrize(("threshold", "bands"), [(8, None), (8, 4), (10, 4), (5, 2), (0, None)])
def test_any_hash_within_the_threshold_shares_a_probed_band_key(threshold: int, bands: int | None) -> None:
    layout = reuse.band_layout(threshold, bands)
    assert sum(layout.widths) == 64 and layout.bands == len(layout.widths)
    assert len(reuse.band_keys("0123456789abcdef", layout, probe=True)) == layout.lookups
    rng = random.Random(threshold * 100 + (bands or 0))
    for _ in range(200):
        base = rng.getrandbits(64)
        flipped = base
        for position in rng.sample(range(64), rng.randint(0, threshold)):
            flipped ^= 1 << position
        stored = set(reuse.band_keys(f"{flipped:016x}", layout, probe=False))
        probes = set(reuse.band_keys(f"{base:016x}", layout, probe=True))
        assert stored & probes, (f"{base:016x}", f"{flipped:016x}")


def test_band_keys_name_the_band_and_its_bits() -> None:
    layout = reuse.band_layout(3)  # 4 bands of 16 bits, radius 0
    assert reuse.band_keys("0123456789abcdef", layout, probe=False) == [
        "PHOTO_HASH#0#0123",
        "PHOTO_HASH#1#4567",
        "PHOTO_HASH#2#89ab",
        "PHOTO_HASH#3#cdef",
    ]


def test_only_other_vehicles_match_and_the_strongest_kind_wins() -> None:
    settings = ReuseSettings(perceptual_max_distance=4)
    query = _fingerprint("q", "VIN-A", "00000000000000ff", sha="1" * 64)
    candidates = [
        _fingerprint("same-vin", "VIN-A", "00000000000000ff", sha="1" * 64),
        _fingerprint("exact", "VIN-B", "ffffffffffffffff", sha="1" * 64),
        _fingerprint("near", "VIN-C", "000000000000000f"),  # 4 bits apart
        _fingerprint("nearer", "VIN-D", "00000000000000fe"),  # 1 bit apart
        _fingerprint("far", "VIN-E", "000000000000ffff"),  # 8 bits apart
    ]
    matches = reuse.match_candidates(query, candidates, settings)
    assert [(m.photo_id, m.kind, m.score) for m in matches] == [
        ("exact", ReuseMatchKind.EXACT, 0.0),
        ("nearer", ReuseMatchKind.PERCEPTUAL, 1.0),
        ("near", ReuseMatchKind.PERCEPTUAL, 4.0),
    ]


def test_embeddings_count_only_between_one_trained_encoder() -> None:
    settings = ReuseSettings(perceptual_max_distance=0, embedding_min_similarity=0.9)
    far = "ffffffffffffffff"
    query = _fingerprint(
        "q", "VIN-A", "0000000000000000", sha="9" * 64, encoder=TRAINED, vector=[1.0, 0.0, 0.0]
    )
    untrained = TRAINED.model_copy(update={"untrained": True})
    other_weights = TRAINED.model_copy(update={"weights_fingerprint": "cd"})
    candidates = [
        _fingerprint("similar", "VIN-B", far, encoder=TRAINED, vector=[0.99, 0.1, 0.0]),
        _fingerprint("dissimilar", "VIN-C", far, encoder=TRAINED, vector=[0.0, 1.0, 0.0]),
        _fingerprint("other-weights", "VIN-D", far, encoder=other_weights, vector=[1.0, 0.0, 0.0]),
        _fingerprint("no-vector", "VIN-E", far, encoder=TRAINED),
    ]
    [match] = reuse.match_candidates(query, candidates, settings)
    assert match.photo_id == "similar" and match.kind == ReuseMatchKind.EMBEDDING
    assert match.score == pytest.approx(0.99 / np.hypot(0.99, 0.1))
    # Random weights: never an embedding match, however similar.
    random_query = query.model_copy(update={"encoder": untrained})
    random_candidate = candidates[0].model_copy(update={"encoder": untrained})
    assert reuse.match_candidates(random_query, [random_candidate], settings) == []


def test_at_most_max_matches_are_kept_the_nearest_first() -> None:
    settings = ReuseSettings(perceptual_max_distance=8, max_matches=2)
    query = _fingerprint("q", "VIN-A", "0000000000000000", sha="9" * 64)
    candidates = [_fingerprint(f"c{bits}", f"VIN-{bits}", f"{(1 << bits) - 1:016x}") for bits in (5, 1, 3)]
    assert [m.photo_id for m in reuse.match_candidates(query, candidates, settings)] == ["c1", "c3"]
