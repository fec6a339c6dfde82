"""Damage → depreciation → adjusted value.

Vehicle-level rule ("worst photo in full, the rest at a discount, capped"):

    combined = min(cap, 1 − (1 − r₁) · Π_{i≥2} (1 − w · rᵢ))

with r₁ ≥ r₂ ≥ … the per-photo rates of the confidently assessed photos, w the
`additional_photo_weight` (default 0.5) and cap `max_total_depreciation` (default 0.6).
Several photos often show the same damage from different angles, so summing them (the original
app: three severe photos took 120 % off) double counts; compounding keeps every term below 100 %
and the cap bounds the total. The README has a worked example.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from vehicle_assessment.domain import figures
from vehicle_assessment.domain.models import (
    PhotoDepreciation,
    PhotoRecord,
    PhotoStatus,
    Severity,
    UndamagedValue,
    Valuation,
)
from vehicle_assessment.domain.photo_set import has_assessable_photo
from vehicle_assessment.domain.rules import ValuationSettings


def review_time(moment: datetime) -> str:
    """When a review was made, as people read it in a valuation's reasons: to the minute, in UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def combine_depreciation(rates: Sequence[float], settings: ValuationSettings) -> float:
    """The bounded vehicle-level depreciation for per-photo rates (any order)."""
    if any(not 0 <= rate < 1 for rate in rates):
        raise ValueError(f"per-photo rates must be in [0, 1), got {list(rates)}")
    ordered = sorted(rates, reverse=True)
    if not ordered:
        return 0.0
    remaining = 1.0 - ordered[0]
    for rate in ordered[1:]:
        remaining *= 1.0 - settings.additional_photo_weight * rate
    return round(min(settings.max_total_depreciation, 1.0 - remaining), 6)


def rule_text(settings: ValuationSettings) -> str:
    return (
        "worst photo in full, each further photo at "
        f"{figures.percent(settings.additional_photo_weight)} of its rate, compounded, capped at "
        f"{figures.percent(settings.max_total_depreciation)}"
    )


def _uncounted(photo_id: str, reason: str) -> PhotoDepreciation:
    """A photo listed in the valuation that moves no money, with why."""
    return PhotoDepreciation(
        photo_id=photo_id, severity=Severity.NONE, rate=0.0, counted=False, reason=reason
    )


def _reuse_reason(photo: PhotoRecord) -> str:
    matches = ", ".join(
        f"photo {m.photo_id} of assessment {m.assessment_id} (VIN {m.vin})" for m in photo.reuse_matches
    )
    return f"not counted until reviewed: possible reuse of {matches}"


def value_vehicle(
    photos: Sequence[PhotoRecord],
    undamaged: UndamagedValue,
    settings: ValuationSettings,
    *,
    untrained_encoder: bool = False,
) -> Valuation:
    """Per-photo depreciation from each photo's effective label, then the bounded combination.

    A reviewed photo (ANALYSED or REJECTED) counts with the reviewer's severity, whatever the model
    said. An unreviewed photo counts with its verdict unless the verdict is unsure or the photo matches
    another vehicle's photo (possible reuse): a photo that may show another vehicle is no evidence of
    this one's condition either way (its damage is not this vehicle's; its clean panels may hide this
    vehicle's damage), so like an unsure verdict it moves no money until a person has looked. Copies
    (DUPLICATE, see `photo_set.mark_duplicates`) are listed but move no money. When no photo has an
    effective label the damage is unknown, so there is no adjusted value. The valuation is
    provisional while a photo is not counted, none is, or an untrained encoder's verdict still counts.
    """
    per_photo: list[PhotoDepreciation] = []
    notes: list[str] = []
    model_counted = False
    for photo in photos:
        verdict = photo.verdict
        review = photo.review
        if photo.status == PhotoStatus.DUPLICATE:
            per_photo.append(_uncounted(photo.photo_id, f"not counted: {photo.reason or 'duplicate'}"))
            notes.append(f"photo {photo.photo_id} is a copy of photo {photo.duplicate_of}: counted once")
            continue
        if review is not None and photo.status in (PhotoStatus.ANALYSED, PhotoStatus.REJECTED):
            model = (
                f"; the model said {verdict.severity.value} {verdict.damage_type.value}"
                if verdict is not None and verdict.damaged
                else "; the model said undamaged"
                if verdict is not None
                else ""
            )
            per_photo.append(
                PhotoDepreciation(
                    photo_id=photo.photo_id,
                    severity=review.severity,
                    rate=settings.severity_depreciation[review.severity],
                    counted=True,
                    reason=f"reviewed by {review.reviewer} at {review_time(review.reviewed_at)}{model}",
                )
            )
            continue
        if photo.status != PhotoStatus.ANALYSED or verdict is None:
            per_photo.append(
                _uncounted(photo.photo_id, f"not assessed: {photo.reason or photo.status.value}")
            )
            continue
        rate = settings.severity_depreciation[verdict.severity]
        # An uncertain verdict must not move money on its own: it is listed for a person to check.
        if verdict.needs_review:
            reason: str | None = f"needs review: {verdict.review_reason}"
        elif photo.reuse_matches:
            reason = _reuse_reason(photo)
        else:
            reason = None
        counted = reason is None
        model_counted = model_counted or counted
        per_photo.append(
            PhotoDepreciation(
                photo_id=photo.photo_id,
                severity=verdict.severity,
                rate=rate,
                counted=counted,
                reason=reason,
            )
        )

    counted_rates = [p.rate for p in per_photo if p.counted]
    uncounted = [p for p in per_photo if not p.counted]
    duplicates = {p.photo_id for p in photos if p.status == PhotoStatus.DUPLICATE}
    # A copy adds no uncertainty: the photo it copies is counted (or not) on its own.
    uncertain = [p for p in uncounted if p.photo_id not in duplicates]
    assessable = has_assessable_photo(photos)
    if not counted_rates:
        notes.append("no photo could be assessed with confidence; no damage depreciation applied")
    if uncounted:
        notes.append(f"{len(uncounted)} of {len(per_photo)} photos not counted (see their reasons)")
    reviewed = [p.photo_id for p in photos if p.review is not None and p.photo_id not in duplicates]
    if reviewed:
        notes.append(f"reviewed by a person: photo {', '.join(reviewed)} (counted with the reviewer's label)")
    # Once every counted photo is a person's call, the encoder's weights no longer matter.
    untrained_counts = untrained_encoder and model_counted
    if untrained_counts:
        notes.append("provisional: the photos were judged by an untrained encoder")
    combined = combine_depreciation(counted_rates, settings)
    if not assessable:
        adjusted = None
        notes.append("no adjusted value: no photo could be assessed, so the damage is unknown")
    elif undamaged.amount_usd is None:
        adjusted = None
        notes.append(f"no adjusted value: {undamaged.reason}")
    else:
        adjusted = round(undamaged.amount_usd * (1.0 - combined), 2)
    return Valuation(
        undamaged=undamaged,
        photos=per_photo,
        combined_depreciation=combined,
        adjusted_value_usd=adjusted,
        rule=rule_text(settings),
        provisional=bool(uncertain) or not counted_rates or untrained_counts,
        notes=notes,
    )
