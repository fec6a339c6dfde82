"""The reused-photo check's pure parts: the perceptual hash, Hamming distances, the DynamoDB band
layout, and the match rule every PhotoRegistry adapter applies to its candidates.

The hash is imagehash's difference hash (dHash) of 64 bits, computed on the image photo intake
produced (decoded, EXIF-transposed, auto-contrasted, shrunk): chosen by measurement over pHash, aHash and
wHash (scripts/measure_reuse.py, README "Reused photos"); it also needs nothing but numpy and Pillow,
where pHash needs scipy, which the photo Lambda package has no room for.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import combinations

import imagehash
import numpy as np
from PIL import Image

from vehicle_assessment.domain.models import EncoderIdentity, PhotoFingerprint, ReuseMatch, ReuseMatchKind
from vehicle_assessment.domain.rules import ReuseSettings

HASH_NAME = "dhash-64"  # what scripts/measure_reuse.py calls this hash
HASH_BITS = 64
HASH_HEX_CHARS = HASH_BITS // 4
# imagehash.dhash's hash_size: a (size+1) x size grey thumbnail gives size x size = 64 bits.
_DHASH_SIZE = 8


def perceptual_hash(image: Image.Image) -> str:
    """64-bit dHash of an intake image, as 16 lower-case hex digits."""
    return str(imagehash.dhash(image, hash_size=_DHASH_SIZE))


def hash_value(hex_hash: str) -> int:
    """The hash as an unsigned 64-bit integer; ValueError for anything but 16 hex digits."""
    if len(hex_hash) != HASH_HEX_CHARS:
        raise ValueError(f"a perceptual hash is {HASH_HEX_CHARS} hex digits, got {hex_hash!r}")
    return int(hex_hash, 16)


def pack_hashes(hex_hashes: Iterable[str]) -> np.ndarray:
    """Hashes as one uint64 array, for vectorised distances."""
    return np.fromiter((hash_value(h) for h in hex_hashes), dtype=np.uint64)


def hamming_distances(query: int, packed: np.ndarray) -> np.ndarray:
    """Hamming distance of ``query`` to every uint64 in ``packed``: one XOR and one popcount per row,
    in numpy (no Python loop per row)."""
    return np.bitwise_count(np.bitwise_xor(packed, np.uint64(query))).astype(np.int64)


def hamming_distance(a: str, b: str) -> int:
    return (hash_value(a) ^ hash_value(b)).bit_count()


# --- the DynamoDB registry's bands (multi-index hashing) ----------------------------------------


@dataclass(frozen=True)
class BandLayout:
    """The 64 bits cut into ``bands`` contiguous bands of ``widths`` bits. Two hashes within
    ``threshold`` bits differ in at least one band by at most ``radius = threshold // bands`` bits
    (pigeonhole: were every band ``radius + 1`` or more apart, the total would exceed the threshold).
    So each photo stores one item per band value, and a query looks up, per band, every value within
    ``radius`` of its own: ``lookups`` exact-match keys in all. ``radius`` 0 is the plain pigeonhole
    (threshold + 1 bands, one key each)."""

    bands: int
    widths: tuple[int, ...]
    radius: int

    @property
    def lookups(self) -> int:
        return sum(sum(math.comb(width, r) for r in range(self.radius + 1)) for width in self.widths)


def band_layout(threshold: int, bands: int | None = None) -> BandLayout:
    """``bands`` (default: ``threshold + 1``, radius 0) over the 64 bits, as equal as they divide."""
    count = bands if bands is not None else threshold + 1
    if not 1 <= count <= HASH_BITS:
        raise ValueError(f"bands must be between 1 and {HASH_BITS}, got {count}")
    base, extra = divmod(HASH_BITS, count)
    widths = tuple(base + 1 if i < extra else base for i in range(count))
    return BandLayout(bands=count, widths=widths, radius=threshold // count)


def _band_values(value: int, layout: BandLayout) -> Iterator[tuple[int, int, int]]:
    """(band number, width, the band's bits) from the most significant end."""
    shift = HASH_BITS
    for band, width in enumerate(layout.widths):
        shift -= width
        yield band, width, (value >> shift) & ((1 << width) - 1)


def band_keys(hex_hash: str, layout: BandLayout, probe: bool) -> list[str]:
    """``PHOTO_HASH#{band}#{bits}`` keys: a photo's own (``probe`` False, one per band) or every key a
    query must look up (``probe`` True: each band's values within ``layout.radius`` bits)."""
    keys = []
    for band, width, bits in _band_values(hash_value(hex_hash), layout):
        digits = (width + 3) // 4
        flips: Iterable[int] = [0]
        if probe:
            flips = (
                sum(1 << position for position in positions)
                for r in range(layout.radius + 1)
                for positions in combinations(range(width), r)
            )
        keys += [f"PHOTO_HASH#{band}#{bits ^ mask:0{digits}x}" for mask in flips]
    return keys


# --- the match rule ----------------------------------------------------------------------------


def embeddings_comparable(a: EncoderIdentity | None, b: EncoderIdentity | None) -> bool:
    """Embedding similarity counts only between vectors of one TRAINED encoder with recorded weights:
    random weights cluster photos by framing, not content."""
    return a is not None and b is not None and not a.untrained and a.comparable_with(b)


def match_candidates(
    query: PhotoFingerprint, candidates: Sequence[PhotoFingerprint], settings: ReuseSettings
) -> list[ReuseMatch]:
    """The candidates of ANOTHER vehicle this photo matches, best first (exact, then perceptual by
    distance, then embedding by similarity); one match per photo, the strongest kind."""
    others = [c for c in candidates if c.vin != query.vin]
    if not others:
        return []
    distances = hamming_distances(
        hash_value(query.perceptual_hash), pack_hashes(c.perceptual_hash for c in others)
    )
    similarities = _similarities(query, others)
    matches: list[ReuseMatch] = []
    for candidate, distance, similarity in zip(others, distances.tolist(), similarities, strict=True):
        if candidate.sha256 == query.sha256:
            kind, score = ReuseMatchKind.EXACT, 0.0
        elif distance <= settings.perceptual_max_distance:
            kind, score = ReuseMatchKind.PERCEPTUAL, float(distance)
        elif similarity is not None and similarity >= settings.embedding_min_similarity:
            kind, score = ReuseMatchKind.EMBEDDING, similarity
        else:
            continue
        matches.append(
            ReuseMatch(
                assessment_id=candidate.assessment_id,
                photo_id=candidate.photo_id,
                vin=candidate.vin,
                kind=kind,
                score=score,
            )
        )
    return rank_matches(matches)[: settings.max_matches]


_KIND_ORDER = {ReuseMatchKind.EXACT: 0, ReuseMatchKind.PERCEPTUAL: 1, ReuseMatchKind.EMBEDDING: 2}


def rank_matches(matches: Iterable[ReuseMatch]) -> list[ReuseMatch]:
    """Best first: exact, then perceptual (nearest first), then embedding (most similar first)."""

    def key(match: ReuseMatch) -> tuple[int, float, str, str]:
        score = -match.score if match.kind == ReuseMatchKind.EMBEDDING else match.score
        return _KIND_ORDER[match.kind], score, match.assessment_id, match.photo_id

    return sorted(matches, key=key)


def _similarities(query: PhotoFingerprint, others: Sequence[PhotoFingerprint]) -> list[float | None]:
    if query.vector is None or not embeddings_comparable(query.encoder, query.encoder):
        return [None] * len(others)
    vector = _unit(np.asarray(query.vector, dtype=np.float32))
    out: list[float | None] = []
    for other in others:
        if other.vector is None or not embeddings_comparable(query.encoder, other.encoder):
            out.append(None)
        else:
            out.append(float(vector @ _unit(np.asarray(other.vector, dtype=np.float32))))
    return out


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector
