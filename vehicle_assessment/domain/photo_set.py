"""Rules over an assessment's photos taken together: exact copies, and whether any photo was assessed.

Pure: the records in, new records (or a yes/no) out. Both runtimes call these after every photo has
been analysed (locally in one process, on AWS in the Value step after the Map), so the outcome does
not depend on the order in which photos were uploaded or analysed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from vehicle_assessment.domain.models import PhotoRecord, PhotoStatus

_DIGITS = re.compile(r"(\d+)")

# Why an assessment ends NEEDS_PHOTOS; recorded among its review reasons.
NO_ASSESSABLE_PHOTO_REASON = "no photo could be assessed (all rejected or copies): new photos are needed"


def photo_order_key(photo_id: str) -> tuple[tuple[int, int | str], ...]:
    """Photo number order: "2" before "10", "02" before "10"; non-numeric parts compare as text."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in _DIGITS.split(photo_id) if part)


def duplicate_reason(original: PhotoRecord) -> str:
    return f"duplicate of photo {original.photo_id} (identical file, sha256 {original.sha256[:12]}…)"


def mark_duplicates(photos: Sequence[PhotoRecord]) -> list[PhotoRecord]:
    """Every photo whose bytes (sha256) equal an earlier photo's becomes DUPLICATE of that photo.

    "Earlier" is photo number order (`photo_order_key`), never list or arrival order, so the first
    copy wins deterministically. The copy keeps its record (nothing is dropped) with `duplicate_of`
    and a reason; a photo whose digest is not known yet (empty sha256) is never a duplicate.
    Idempotent: running it again changes nothing. The list order is kept.
    """
    first_by_digest: dict[str, PhotoRecord] = {}
    for photo in sorted(photos, key=lambda p: photo_order_key(p.photo_id)):
        if photo.sha256:
            first_by_digest.setdefault(photo.sha256, photo)
    marked = []
    for photo in photos:
        original = first_by_digest.get(photo.sha256) if photo.sha256 else None
        if original is None or original.photo_id == photo.photo_id:
            marked.append(photo)
            continue
        marked.append(
            photo.model_copy(
                update={
                    "status": PhotoStatus.DUPLICATE,
                    "duplicate_of": original.photo_id,
                    "reason": duplicate_reason(original),
                }
            )
        )
    return marked


def has_assessable_photo(photos: Sequence[PhotoRecord]) -> bool:
    """Whether any photo has a damage call: a verdict, or a person's review of an analysed or rejected
    photo (see domain/review.py); without one the vehicle's damage is unknown."""
    return any(
        (p.status == PhotoStatus.ANALYSED and p.verdict is not None)
        or (p.reviews and p.status in (PhotoStatus.ANALYSED, PhotoStatus.REJECTED))
        for p in photos
    )
