"""Measure the reused-photo check's perceptual-hash threshold on real photos.

    python scripts/measure_reuse.py [DIR ...]    # default: sample_data/ and ../shared/data/reference

Every photo goes through the real intake (decode, EXIF transpose, auto-contrast, shrink: what the
pipeline hashes). Each photo then gets copies a reseller would make of it: re-encoded (JPEG quality
60-95), resized (50-150 %), cropped (2 and 5 % off one corner, and centred), recoloured (brightness,
contrast, saturation) and one re-encoded AND resized copy. Each copy goes through the same intake
and is hashed; its distance to the original's hash is a TRUE copy distance. Every pair of different
photos (the whole set against itself, true duplicates by sha256 excluded) gives the FALSE pair
distances. For each candidate hash it prints the distance distributions, and for each threshold the
recall on copies and the false-match rate on pairs; the chosen threshold (domain/rules.py,
ReuseSettings) is printed with both figures, and the band layout the DynamoDB registry derives
from it with its measured candidate fan-out.

The repository must work without ../shared: then only sample_data/ is measured.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import imagehash
import numpy as np
from PIL import Image, ImageEnhance, ImageOps

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vehicle_assessment.domain import reuse  # noqa: E402
from vehicle_assessment.domain.photo import PhotoRejected, intake_photo  # noqa: E402
from vehicle_assessment.domain.rules import IntakeSettings, ReuseSettings  # noqa: E402

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
HASHES: dict[str, Callable[[Image.Image], imagehash.ImageHash]] = {
    "dhash-64": lambda image: imagehash.dhash(image, hash_size=8),
    "phash-64": lambda image: imagehash.phash(image, hash_size=8),
    "ahash-64": lambda image: imagehash.average_hash(image, hash_size=8),
    "whash-64": lambda image: imagehash.whash(image, hash_size=8),
}


def _jpeg(image: Image.Image, quality: int = 90) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def _resized(image: Image.Image, scale: float) -> Image.Image:
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BICUBIC)


def _crop_corner(image: Image.Image, share: float) -> Image.Image:
    dx, dy = round(image.width * share), round(image.height * share)
    return image.crop((dx, dy, image.width, image.height))


def _crop_centre(image: Image.Image, share: float) -> Image.Image:
    dx, dy = round(image.width * share / 2), round(image.height * share / 2)
    return image.crop((dx, dy, image.width - dx, image.height - dy))


# name -> original RGB image -> the copy's bytes, as it would be uploaded
COPIES: dict[str, Callable[[Image.Image], bytes]] = {
    "jpeg q60": lambda im: _jpeg(im, 60),
    "jpeg q75": lambda im: _jpeg(im, 75),
    "jpeg q95": lambda im: _jpeg(im, 95),
    "resize 50%": lambda im: _jpeg(_resized(im, 0.5)),
    "resize 75%": lambda im: _jpeg(_resized(im, 0.75)),
    "resize 150%": lambda im: _jpeg(_resized(im, 1.5)),
    "crop 2% corner": lambda im: _jpeg(_crop_corner(im, 0.02)),
    "crop 5% corner": lambda im: _jpeg(_crop_corner(im, 0.05)),
    "crop 5% centred": lambda im: _jpeg(_crop_centre(im, 0.05)),
    "brightness 0.8": lambda im: _jpeg(ImageEnhance.Brightness(im).enhance(0.8)),
    "brightness 1.2": lambda im: _jpeg(ImageEnhance.Brightness(im).enhance(1.2)),
    "contrast 0.8": lambda im: _jpeg(ImageEnhance.Contrast(im).enhance(0.8)),
    "contrast 1.2": lambda im: _jpeg(ImageEnhance.Contrast(im).enhance(1.2)),
    "saturation 0.7": lambda im: _jpeg(ImageEnhance.Color(im).enhance(0.7)),
    "saturation 1.3": lambda im: _jpeg(ImageEnhance.Color(im).enhance(1.3)),
    "jpeg q70 + resize 70%": lambda im: _jpeg(_resized(im, 0.7), 70),
}


def find_photos(directories: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for directory in directories:
        if directory.is_dir():
            found += sorted(p for p in directory.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES)
        else:
            print(f"skipped {directory}: not a directory", file=sys.stderr)
    return found


@dataclass
class Measured:
    names: list[str]
    originals: dict[str, np.ndarray]  # hash name -> packed uint64 per distinct photo
    copies: dict[str, dict[str, np.ndarray]]  # hash name -> copy name -> distance per photo


def measure(paths: list[Path], intake: IntakeSettings) -> Measured:
    seen: set[str] = set()
    names: list[str] = []
    originals: dict[str, list[int]] = {name: [] for name in HASHES}
    copies: dict[str, dict[str, list[int]]] = {name: {copy: [] for copy in COPIES} for name in HASHES}
    for number, path in enumerate(paths, start=1):
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest in seen:  # the same photo in two directories (sample_data is a subset of shared)
            continue
        try:
            original = intake_photo(data, intake)
        except PhotoRejected as exc:
            print(f"skipped {path}: {exc}", file=sys.stderr)
            continue
        seen.add(digest)
        names.append(str(path))
        with Image.open(io.BytesIO(data)) as opened:
            source = ImageOps.exif_transpose(opened).convert("RGB")
        copied = {copy: intake_photo(make(source), intake).image for copy, make in COPIES.items()}
        for name, hash_of in HASHES.items():
            base = hash_of(original.image)
            originals[name].append(int(str(base), 16))
            for copy, image in copied.items():
                copies[name][copy].append(base - hash_of(image))
        if number % 100 == 0:
            print(f"  {number}/{len(paths)} photos", file=sys.stderr)
    return Measured(
        names,
        {name: np.array(values, dtype=np.uint64) for name, values in originals.items()},
        {name: {c: np.array(v) for c, v in per_copy.items()} for name, per_copy in copies.items()},
    )


def pair_distances(packed: np.ndarray) -> np.ndarray:
    """Hamming distance of every unordered pair, vectorised one row at a time."""
    out = [reuse.hamming_distances(int(packed[i]), packed[i + 1 :]) for i in range(len(packed) - 1)]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def report(measured: Measured, chosen: ReuseSettings) -> None:
    n = len(measured.names)
    print(f"{n} distinct photos, {n * (n - 1) // 2:,} pairs of different photos, {len(COPIES)} copies each\n")
    for name in HASHES:
        pairs = pair_distances(measured.originals[name])
        all_copies = np.concatenate(list(measured.copies[name].values()))
        print(f"== {name}")
        print("  copy distances (median / p95 / max) by kind of copy:")
        for copy, distances in measured.copies[name].items():
            p95 = np.percentile(distances, 95)
            print(f"    {copy:<24} {np.median(distances):4.0f} {p95:5.1f} {distances.max():4d}")
        print(
            f"  different-photo pairs: min {pairs.min()}, p0.1 {np.percentile(pairs, 0.1):.0f}, "
            f"median {np.median(pairs):.0f}"
        )
        print("  threshold  recall on copies  false matches on pairs (rate)")
        for t in range(0, 21):
            recall = float((all_copies <= t).mean())
            false = int((pairs <= t).sum())
            print(f"    <= {t:2d}      {recall:7.2%}          {false:6d} ({false / max(1, len(pairs)):.2e})")
        print()
    name = reuse.HASH_NAME
    pairs = pair_distances(measured.originals[name])
    t = chosen.perceptual_max_distance
    print(f"== {name}: recall per kind of copy by threshold")
    thresholds = list(range(2, 13))
    print(f"    {'':<24}" + "".join(f"{f'<={x}':>6}" for x in thresholds))
    for copy, distances in measured.copies[name].items():
        print(f"    {copy:<24}" + "".join(f"{(distances <= x).mean():6.0%}" for x in thresholds))
    print()
    print(f"== {name}: the closest pairs of different photos (true duplicates in the set count as false)")
    for distance, a, b in closest_pairs(measured, name, t)[:20]:
        print(f"    {distance:2d}  {Path(a).name}  {Path(b).name}")
    print()
    all_copies = np.concatenate(list(measured.copies[name].values()))
    print(
        f"CHOSEN: {name}, distance <= {t}: recall on copies {(all_copies <= t).mean():.2%}, "
        f"false matches {int((pairs <= t).sum())} of {len(pairs):,} pairs ({(pairs <= t).mean():.2e})"
    )
    for bands in sorted({t + 1, chosen.hash_bands} - {0}):
        layout = reuse.band_layout(t, bands)
        fan_out = band_fan_out(measured.originals[name], layout)
        print(
            f"  DynamoDB: {layout.bands} bands of {'/'.join(map(str, sorted(set(layout.widths))))} bits, "
            f"radius {layout.radius}: {layout.lookups} lookups per photo; candidates per photo "
            f"mean {fan_out.mean():.1f}, p99 {np.percentile(fan_out, 99):.0f}, max {fan_out.max()} of "
            f"{n - 1} (mean share {fan_out.mean() / max(1, n - 1):.3%})"
            + ("  <- configured" if bands == chosen.hash_bands else "")
        )


def closest_pairs(measured: Measured, name: str, threshold: int) -> list[tuple[int, str, str]]:
    packed = measured.originals[name]
    found = []
    for i in range(len(packed) - 1):
        distances = reuse.hamming_distances(int(packed[i]), packed[i + 1 :])
        for j in np.flatnonzero(distances <= threshold):
            found.append((int(distances[j]), measured.names[i], measured.names[i + 1 + j]))
    return sorted(found)


def band_fan_out(packed: np.ndarray, layout: reuse.BandLayout) -> np.ndarray:
    """How many OTHER photos share a probed band value with each photo: the DynamoDB candidates."""
    keys = [set(reuse.band_keys(format(int(h), "016x"), layout, probe=False)) for h in packed]
    counts = []
    for i, h in enumerate(packed):
        probes = set(reuse.band_keys(format(int(h), "016x"), layout, probe=True))
        counts.append(sum(1 for j, other in enumerate(keys) if j != i and probes & other))
    return np.array(counts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "directories",
        nargs="*",
        type=Path,
        default=[REPO / "sample_data", (REPO / ".." / "shared" / "data" / "reference").resolve()],
    )
    parser.add_argument("--limit", type=int, default=None, help="measure at most this many photos")
    parser.add_argument(
        "--cache", type=Path, default=None, help="an .npz of the distances: written once, then read instead"
    )
    args = parser.parse_args(argv)
    if args.cache and args.cache.is_file():
        measured = load(args.cache)
    else:
        paths = find_photos(args.directories)[: args.limit]
        if not paths:
            print("no photos found", file=sys.stderr)
            return 1
        started = time.perf_counter()
        measured = measure(paths, IntakeSettings())
        print(f"measured in {time.perf_counter() - started:.0f} s\n")
        if args.cache:
            save(measured, args.cache)
    report(measured, ReuseSettings())
    return 0


def save(measured: Measured, path: Path) -> None:
    arrays: dict[str, Any] = {"names": np.array(measured.names)}
    for name in HASHES:
        arrays[f"{name}|original"] = measured.originals[name]
        for copy, distances in measured.copies[name].items():
            arrays[f"{name}|copy|{copy}"] = distances
    np.savez_compressed(path, **arrays)


def load(path: Path) -> Measured:
    with np.load(path) as data:
        return Measured(
            [str(n) for n in data["names"]],
            {name: data[f"{name}|original"] for name in HASHES},
            {name: {copy: data[f"{name}|copy|{copy}"] for copy in COPIES} for name in HASHES},
        )


if __name__ == "__main__":
    raise SystemExit(main())
