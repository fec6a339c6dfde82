"""Build the reference index from a folder of labelled photos (labels.csv).

Batched and resumable: each batch is committed as it finishes and photos already in the index are
skipped, so an interrupted build continues where it stopped. Photos are decoded in a thread pool
while the previous batch is being embedded. Every photo not indexed is listed with its reason.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps
from pydantic import ValidationError

from vehicle_assessment.domain import limits
from vehicle_assessment.domain.models import DamageType, QualityLevel, ReferenceLabel, Severity
from vehicle_assessment.domain.photo import IntakeResult, PhotoRejected, intake_photo, too_large_reason
from vehicle_assessment.domain.rules import IntakeSettings
from vehicle_assessment.domain.upload_keys import reference_image_key
from vehicle_assessment.ports import (
    ImageEncoder,
    ObjectStore,
    PreparingEncoder,
    ReferenceItem,
    WritableReferenceIndex,
)


@dataclass(frozen=True)
class LabelledPhoto:
    source: str  # the path as written in labels.csv, relative to the photo folder
    path: Path
    label: ReferenceLabel
    # The collection it comes from: the first word of labels.csv's optional `source` column.
    origin: str | None = None


@dataclass(frozen=True)
class Skipped:
    source: str
    reason: str


@dataclass
class BuildReport:
    added: int = 0
    already_indexed: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    display_copies: int = 0  # reference display copies written by this build


# The display copy's JPEG quality: thumbnails beside a photo, not evidence.
DISPLAY_JPEG_QUALITY = 85


def display_copy(data: bytes, max_side: int = limits.REFERENCE_IMAGE_MAX_SIDE) -> bytes:
    """A reference photo as a page shows it: upright (EXIF orientation applied), RGB, the longest side at
    most ``max_side`` pixels, JPEG. Only photos the intake accepted get here."""
    with Image.open(io.BytesIO(data)) as opened:
        image = ImageOps.exif_transpose(opened).convert("RGB")
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=DISPLAY_JPEG_QUALITY, optimize=True)
    return out.getvalue()


def _store_display_copy(objects: ObjectStore, sha256: str, path: Path, data: bytes | None = None) -> bool:
    """Write the display copy under ``reference_image_key(sha256)`` unless it is there; True if written."""
    key = reference_image_key(sha256)
    if objects.exists(key):
        return False
    objects.put(key, display_copy(data if data is not None else path.read_bytes()), "image/jpeg")
    return True


def parse_label(row: dict[str, str]) -> ReferenceLabel:
    damaged_text = (row.get("damaged") or "").strip().lower()
    if damaged_text not in {"true", "false"}:
        raise ValueError(f"damaged must be true or false, got {damaged_text!r}")
    try:
        label = ReferenceLabel(
            damaged=damaged_text == "true",
            damage_type=DamageType((row.get("damage_type") or "").strip().lower()),
            severity=Severity((row.get("severity") or "").strip().lower()),
        )
    except (ValueError, ValidationError) as exc:
        raise ValueError(f"bad label: {exc}") from exc
    # A label must be self-consistent, or votes would mix "undamaged" with a severity.
    if label.damaged == (label.severity == Severity.NONE) or label.damaged == (
        label.damage_type == DamageType.NONE
    ):
        raise ValueError(
            f"inconsistent label: damaged={label.damaged}, "
            f"type={label.damage_type}, severity={label.severity}"
        )
    return label


def origin_of_labels_source(source_column: str | None) -> str | None:
    """The collection named by a labels.csv `source` entry: its first word (e.g.
    "github.com/dermotte/LIRE testdata/ferrari (Flickr photo 1)" → "github.com/dermotte/LIRE")."""
    words = (source_column or "").split()
    return words[0] if words else None


def read_labels(photo_dir: Path, labels_csv: Path) -> tuple[list[LabelledPhoto], list[Skipped]]:
    """Rows of labels.csv (columns path, damaged, damage_type, severity; optional source) resolved
    under photo_dir."""
    photos, skipped = [], []
    with labels_csv.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"path", "damaged", "damage_type", "severity"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{labels_csv} lacks the column(s) {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            source = (row.get("path") or "").strip()
            if not source:
                skipped.append(Skipped(f"{labels_csv.name}:{line}", "empty path"))
                continue
            try:
                label = parse_label(row)
            except ValueError as exc:
                skipped.append(Skipped(source, str(exc)))
                continue
            path = photo_dir / source
            if not path.is_file():
                skipped.append(Skipped(source, f"file not found under {photo_dir}"))
                continue
            origin = origin_of_labels_source(row.get("source"))
            photos.append(LabelledPhoto(source=source, path=path, label=label, origin=origin))
    return photos, skipped


@dataclass(frozen=True)
class _Ready:
    sha256: str
    result: IntakeResult
    prepared: Any  # the encoder's prepared input, when it is a PreparingEncoder


def _prepare(photo: LabelledPhoto, intake: IntakeSettings, encoder: ImageEncoder) -> _Ready | Skipped:
    """On a worker thread: read, intake and (for a PreparingEncoder) preprocess one photo. A file over
    intake's size limit is skipped on its size, never read into memory."""
    size = photo.path.stat().st_size
    if size > intake.max_bytes:
        return Skipped(photo.source, too_large_reason(size, intake.max_bytes))
    data = photo.path.read_bytes()
    try:
        result = intake_photo(data, intake)
    except PhotoRejected as exc:
        return Skipped(photo.source, str(exc))
    if result.quality.level == QualityLevel.REJECT:
        return Skipped(photo.source, "; ".join(result.quality.reasons))
    prepared = encoder.prepare(result.image) if isinstance(encoder, PreparingEncoder) else None
    return _Ready(hashlib.sha256(data).hexdigest(), result, prepared)


def _batches(items: Sequence[LabelledPhoto], size: int) -> Iterator[Sequence[LabelledPhoto]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def build_index(
    photos: Sequence[LabelledPhoto],
    encoder: ImageEncoder,
    index: WritableReferenceIndex,
    intake: IntakeSettings,
    batch_size: int = 32,
    workers: int = 2,
    progress: Callable[[int], None] | None = None,
    display_copies: ObjectStore | None = None,
) -> BuildReport:
    """``display_copies``: where each indexed photo's display copy goes (the photo object store); photos
    indexed by an earlier build get theirs too when it is missing."""
    index.bind(encoder.identity)
    report = BuildReport()
    known = index.known_sources()
    todo = [p for p in photos if p.source not in known]
    report.already_indexed = len(photos) - len(todo)
    if display_copies is not None:
        for photo in photos:
            if photo.source in known:
                data = photo.path.read_bytes()
                sha = hashlib.sha256(data).hexdigest()
                report.display_copies += _store_display_copy(display_copies, sha, photo.path, data)
    with ThreadPoolExecutor(max_workers=workers) as pool:

        def submit(batch: Sequence[LabelledPhoto]) -> list[Future]:
            return [pool.submit(_prepare, photo, intake, encoder) for photo in batch]

        batches = list(_batches(todo, batch_size))
        pending = submit(batches[0]) if batches else []
        for number, batch in enumerate(batches):
            prepared = [future.result() for future in pending]
            # Decode the next batch while this one is embedded.
            pending = submit(batches[number + 1]) if number + 1 < len(batches) else []
            ready: list[tuple[LabelledPhoto, _Ready]] = []
            for photo, outcome in zip(batch, prepared, strict=True):
                if isinstance(outcome, Skipped):
                    report.skipped.append(outcome)
                else:
                    ready.append((photo, outcome))
            if ready:
                if isinstance(encoder, PreparingEncoder):
                    vectors = encoder.embed_prepared([outcome.prepared for _, outcome in ready])
                else:
                    vectors = encoder.embed([outcome.result.image for _, outcome in ready])
                index.add(
                    [
                        ReferenceItem(
                            source=photo.source,
                            sha256=outcome.sha256,
                            label=photo.label,
                            vector=vector,
                            origin=photo.origin,
                        )
                        for (photo, outcome), vector in zip(ready, vectors, strict=True)
                    ]
                )
                report.added += len(ready)
                if display_copies is not None:
                    for photo, outcome in ready:
                        report.display_copies += _store_display_copy(
                            display_copies, outcome.sha256, photo.path
                        )
            if progress:
                progress(len(batch))
    return report
