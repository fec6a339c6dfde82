"""Measure the intake quality metrics over a directory of photos, to calibrate IntakeSettings.

Runs `intake_photo` on every JPEG/PNG/WebP under DIR (recursively) and prints the
distribution of sharpness (variance of the Laplacian) and exposure (mean luminance), and how
many photos would WARN or be REJECTED by each check under the default IntakeSettings.

    python scripts/measure_photo_quality.py [DIR]     # default: ../shared/data/reference
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

# Runnable from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vehicle_assessment.domain.models import QualityLevel
from vehicle_assessment.domain.photo import PhotoRejected, intake_photo
from vehicle_assessment.domain.rules import IntakeSettings

_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
_PERCENTILES = (("min", 0), ("p1", 1), ("p5", 5), ("p25", 25), ("median", 50), ("p95", 95), ("max", 100))


def _summary(name: str, values: list[float]) -> str:
    if not values:
        return f"{name:<10} (no values)"
    array = np.asarray(values)
    parts = [f"{label}={np.percentile(array, q):.1f}" for label, q in _PERCENTILES]
    return f"{name:<10} n={len(values)}  " + "  ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_dir = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "reference").resolve()
    parser.add_argument("directory", nargs="?", type=Path, default=default_dir)
    args = parser.parse_args(argv)

    paths = sorted(p for p in args.directory.rglob("*") if p.suffix.lower() in _SUFFIXES and p.is_file())
    if not paths:
        print(f"no photos under {args.directory}", file=sys.stderr)
        return 1

    settings = IntakeSettings()
    sharpness: list[float] = []
    exposure: list[float] = []
    levels: Counter[tuple[str, str]] = Counter()
    overall: Counter[str] = Counter()
    rejected_examples: list[str] = []
    refused: list[str] = []
    for path in paths:
        try:
            result = intake_photo(path.read_bytes(), settings)
        except PhotoRejected as exc:
            refused.append(f"{path}: {exc}")
            continue
        overall[result.quality.level.value] += 1
        for check in result.quality.checks:
            levels[(check.name, check.level.value)] += 1
            if check.name == "sharpness":
                sharpness.append(check.value)
            elif check.name == "exposure":
                exposure.append(check.value)
            if check.level == QualityLevel.REJECT and len(rejected_examples) < 20:
                rejected_examples.append(f"{path.relative_to(args.directory)}: {check.reason}")

    decoded = len(paths) - len(refused)
    print(f"{len(paths)} photos under {args.directory}; {decoded} decoded, {len(refused)} refused")
    print(
        f"thresholds: blur reject<{settings.blur_reject:g} warn<{settings.blur_warn:g}; "
        f"exposure reject<{settings.dark_reject:g} or >{settings.bright_reject:g}, "
        f"warn<{settings.dark_warn:g} or >{settings.bright_warn:g}"
    )
    print(_summary("sharpness", sharpness))
    print(_summary("exposure", exposure))
    for name in ("resolution", "aspect_ratio", "sharpness", "exposure"):
        warn, reject = levels[(name, "warn")], levels[(name, "reject")]
        share = 100 * reject / decoded if decoded else 0.0
        print(f"{name:<13} warn={warn:<4} reject={reject:<4} ({share:.1f}% rejected)")
    print("overall       " + "  ".join(f"{level}={overall[level.value]}" for level in QualityLevel))
    for line in refused:
        print(f"REFUSED {line}")
    for line in rejected_examples:
        print(f"REJECT  {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
