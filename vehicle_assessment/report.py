"""Human-readable rendering of assessments for the CLI."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vehicle_assessment.domain import figures
from vehicle_assessment.domain.description import display_make
from vehicle_assessment.domain.models import (
    UNTRAINED_ENCODER_WARNING,
    Assessment,
    AssessmentStatus,
    AudioStatus,
    PhotoRecord,
    PhotoStatus,
    ReviewQueueEntry,
)
from vehicle_assessment.domain.photo_set import NO_ASSESSABLE_PHOTO_REASON
from vehicle_assessment.domain.review import label_text

_BANNER = "!" * 78


def _money(amount: float | None) -> str:
    return "unknown" if amount is None else figures.usd(amount)


def _vehicle_lines(a: Assessment) -> list[str]:
    v = a.vehicle
    if v is None:
        return [f"  VIN {a.vin} (not decoded)"]
    name = " ".join(
        str(x) for x in [v.model_year, display_make(v.make) or v.manufacturer, v.model, v.trim] if x
    )
    source = "NHTSA vPIC" if v.source == "vpic" else "the VIN alone (offline)"
    lines = [f"  VIN {a.vin}: {name or 'unknown vehicle'}   [decoded from {source}]"]
    details = {
        "body": v.body_class,
        "drive": v.drive_type,
        "fuel": " / ".join(f for f in [v.fuel_type_primary, v.fuel_type_secondary] if f) or None,
        "engine": (
            " ".join(
                x
                for x in [
                    f"{v.engine_displacement_l:g} L" if v.engine_displacement_l else "",
                    f"{v.engine_cylinders} cyl" if v.engine_cylinders else "",
                ]
                if x
            )
            or None
        ),
        "electrified": "hybrid" if v.is_hybrid else ("electric" if v.is_electric else None),
        "color": a.inputs.color,
        "mileage": f"{a.inputs.mileage:,} mi" if a.inputs.mileage is not None else None,
    }
    known = [f"{k}: {val}" for k, val in details.items() if val]
    if known:
        lines.append("  " + "; ".join(known))
    return lines


def _photo_lines(photo: PhotoRecord) -> list[str]:
    head = f"  [{photo.photo_id}] {photo.filename} ({photo.size_bytes:,} bytes"
    head += f", {photo.width}x{photo.height})" if photo.width else ")"
    if photo.status == PhotoStatus.REJECTED:
        return [head, f"       REJECTED: {photo.reason}"]
    if photo.status == PhotoStatus.DUPLICATE:
        return [head, f"       DUPLICATE: {photo.reason}; not valued again"]
    if photo.status != PhotoStatus.ANALYSED or photo.verdict is None:
        return [head, f"       {photo.status.value}: {photo.reason or 'not analysed'}"]
    v = photo.verdict
    call = f"DAMAGED: {v.severity.value} {v.damage_type.value}" if v.damaged else "no damage found"
    if v.needs_review:
        # The reason states the confidence as precisely as its comparison needs; repeating it
        # here at two places would show the same figure rounded two ways ("0.70" and "0.695").
        lines = [head, f"       {call}", f"       NEEDS REVIEW: {v.review_reason}"]
    else:
        shares = f"confidence {figures.ratio(v.confidence)}, damaged share {figures.ratio(v.damaged_share)}"
        lines = [head, f"       {call}  ({shares})"]
    if photo.quality and photo.quality.reasons:
        lines.append(f"       quality {photo.quality.level.value}: {'; '.join(photo.quality.reasons)}")
    for n in v.neighbours[:3]:
        label = f"{n.label.severity.value} {n.label.damage_type.value}" if n.label.damaged else "undamaged"
        lines.append(f"       ~ {figures.ratio(n.similarity, 3)}  {label:<18} {n.source}")
    return lines


def _review_lines(photo: PhotoRecord) -> list[str]:
    """Reuse flags and the people's reviews of one photo (the last review is the one that counts)."""
    lines = [
        f"       POSSIBLE REUSE: matches photo {m.photo_id} of assessment {m.assessment_id} "
        f"(VIN {m.vin}; {m.kind.value}, score {m.score:g})"
        for m in photo.reuse_matches
    ]
    for number, review in enumerate(photo.reviews, start=1):
        current = " (counts)" if number == len(photo.reviews) else " (superseded)"
        line = (
            f"       REVIEWED by {review.reviewer} at {review.reviewed_at:%Y-%m-%d %H:%M:%S}: "
            f"{label_text(review.label)}{current}"
        )
        if review.as_reference:
            line += ", as a reference"
        lines.append(line)
        if review.note:
            lines.append(f"         note: {review.note}")
    return lines


def render_assessment(a: Assessment, objects_dir: Path | None = None) -> str:
    untrained = bool(a.encoder and a.encoder.untrained)
    out: list[str] = []
    if untrained:
        out += [_BANNER, f"!!! {UNTRAINED_ENCODER_WARNING.upper()}", _BANNER]
    out.append(
        f"Assessment {a.assessment_id}  {a.status.value}  (updated {a.updated_at:%Y-%m-%d %H:%M:%S} UTC)"
    )
    if a.failure_reason:
        out.append(f"  FAILED in step {a.failed_step}: {a.failure_reason}")
    if a.status == AssessmentStatus.NEEDS_PHOTOS:
        out.append(f"  NEEDS PHOTOS: {NO_ASSESSABLE_PHOTO_REASON}; the damage and adjusted value are unknown")
    out += ["", "Vehicle", *_vehicle_lines(a)]
    if a.encoder:
        out.append(f"  encoder: {a.encoder.describe()}")
    out += ["", f"Photos ({len(a.photos)})"]
    for photo in a.photos:
        out += _photo_lines(photo) + _review_lines(photo)
    if a.valuation:
        val = a.valuation
        out += [
            "",
            "Valuation" + ("  (PROVISIONAL)" if val.provisional else ""),
            f"  undamaged value: {_money(val.undamaged.amount_usd)}"
            f"  ({val.undamaged.method.value}: {val.undamaged.reason})",
            "  per photo: "
            + ", ".join(
                f"{p.photo_id} {p.severity.value} {figures.percent(p.rate)}"
                + ("" if p.counted else " (not counted)")
                for p in val.photos
            ),
            f"  combined depreciation: {figures.percent(val.combined_depreciation)}  ({val.rule})",
            f"  adjusted value: {_money(val.adjusted_value_usd)}",
            *[f"  note: {n}" for n in val.notes],
        ]
    if a.descriptions:
        out += ["", "Descriptions"]
        for d in a.descriptions:
            by = f", by {d.written_by}" if d.written_by else ""
            out.append(f"  [{d.style.value}/{d.language} v{d.version}, {d.generator}{by}] {d.text}")
    if a.superseded_descriptions:
        out += ["", f"Earlier descriptions ({len(a.superseded_descriptions)}, oldest first)"]
        for d in a.superseded_descriptions:
            out.append(f"  [{d.style.value}/{d.language} v{d.version}, {d.generator}] {d.text}")
    if a.audio:
        out += ["", "Audio"]
        for clip in a.audio:
            where = (objects_dir / clip.object_key) if (objects_dir and clip.object_key) else clip.object_key
            detail = f"{where}" if clip.status == AudioStatus.GENERATED else f"skipped: {clip.reason}"
            out.append(f"  [{clip.style.value}/{clip.language}] {detail}")
    notes = [w for w in a.warnings if w != UNTRAINED_ENCODER_WARNING]
    if notes:
        out += ["", "Warnings", *[f"  - {w}" for w in notes]]
    if a.review_reasons:
        out += ["", "Needs review", *[f"  - {r}" for r in a.review_reasons]]
    if a.history:
        out += ["", "History (oldest first)"]
        if a.history_dropped:
            out.append(f"  ({a.history_dropped} older entries dropped)")
        for entry in a.history:
            change = (
                f"  [{entry.before or '-'} -> {entry.after or '-'}]" if entry.before or entry.after else ""
            )
            out.append(f"  {entry.at:%Y-%m-%d %H:%M:%S}  {entry.actor}: {entry.summary}{change}")
    if untrained:
        out += ["", _BANNER, f"!!! {UNTRAINED_ENCODER_WARNING.upper()}", _BANNER]
    return "\n".join(out)


def render_list(assessments: Sequence[Assessment]) -> str:
    if not assessments:
        return "no assessments for this VIN"
    rows = []
    for a in assessments:
        value = _money(a.valuation.adjusted_value_usd) if a.valuation else "-"
        flag = " needs review" if a.needs_review else ""
        rows.append(
            f"{a.assessment_id}  {a.created_at:%Y-%m-%d %H:%M}  {a.status.value:<12} {value:>10}{flag}"
        )
    return "\n".join(rows)


def render_queue(entries: Sequence[ReviewQueueEntry]) -> str:
    if not entries:
        return "no photo awaits review"
    rows = []
    for entry in entries:
        photos = "; ".join(
            f"photo {photo_id}: {', '.join(r.value for r in reasons)}"
            for photo_id, reasons in entry.photos.items()
        )
        since = f"{entry.waiting_since:%Y-%m-%d %H:%M}"
        rows.append(f"{entry.assessment_id}  {entry.vin}  waiting since {since}  {photos}")
    return "\n".join(rows)
