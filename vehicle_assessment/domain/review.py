"""The review loop's rules: who waits for a person and why, what a review changes, the audit trail,
and description versions. Pure: assessments in, new assessments out.

Decisions (an appraiser's):

* A review is stored beside the model's verdict, never over it; the photo's *effective* label is the
  last review's, else the verdict's.
* ANALYSED photos and REJECTED ones may be reviewed. A rejected photo's original is stored untouched,
  so a person can look at what the quality check refused (a dark but legible close-up of a dent) and
  say what it shows; their label then counts like any reviewed photo. A DUPLICATE copies another
  photo (review that one) and a photo still RECEIVED has not been analysed yet: both are refused.
* A photo waits for a person while it has no review and its verdict is unsure (low confidence), it
  matches another vehicle's photo (possible reuse), or it was rejected.
* Reviews are taken only once the assessment is finished (COMPLETED or NEEDS_PHOTOS): while the
  workflow runs, its steps would value and describe without them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from vehicle_assessment.domain import limits
from vehicle_assessment.domain.models import (
    UNTRAINED_ENCODER_WARNING,
    Assessment,
    AssessmentStatus,
    AudioRecord,
    Description,
    DescriptionStyle,
    HistoryAction,
    HistoryEntry,
    PhotoRecord,
    PhotoReview,
    PhotoStatus,
    ReferenceLabel,
    ReviewQueueEntry,
    ReviewReason,
)
from vehicle_assessment.domain.photo_set import NO_ASSESSABLE_PHOTO_REASON, has_assessable_photo

PIPELINE_ACTOR = "pipeline"
REVIEWABLE_STATUSES = (PhotoStatus.ANALYSED, PhotoStatus.REJECTED)
FINISHED_STATUSES = (AssessmentStatus.COMPLETED, AssessmentStatus.NEEDS_PHOTOS)


class ReviewRefused(ValueError):
    """The review (or edit) cannot be applied to this assessment; the message says why."""


class NotFinished(ReviewRefused):
    """The assessment is still in the workflow (or failed): nothing to review or edit yet."""


# --- effective labels and review reasons ------------------------------------------------------


def effective_label(photo: PhotoRecord) -> ReferenceLabel | None:
    """The last review's label, else the model's verdict's; None when the photo has neither."""
    if photo.review is not None and photo.status in REVIEWABLE_STATUSES:
        return photo.review.label
    if photo.status == PhotoStatus.ANALYSED and photo.verdict is not None:
        verdict = photo.verdict
        return ReferenceLabel(
            damaged=verdict.damaged, damage_type=verdict.damage_type, severity=verdict.severity
        )
    return None


def confidently_labelled(photo: PhotoRecord) -> ReferenceLabel | None:
    """The label a photo counts with: a review's, or a sure verdict on a photo not suspected of reuse;
    None while the photo waits for a person (or can never be judged)."""
    if photo_review_reasons(photo):
        return None
    return effective_label(photo)


def photo_review_reasons(photo: PhotoRecord) -> list[ReviewReason]:
    """Why this photo waits for a person; empty once it is reviewed (or never needed one)."""
    if photo.reviews or photo.status == PhotoStatus.DUPLICATE:
        return []
    reasons = []
    if photo.status == PhotoStatus.ANALYSED and photo.verdict is not None and photo.verdict.needs_review:
        reasons.append(ReviewReason.LOW_CONFIDENCE)
    if photo.reuse_matches:
        reasons.append(ReviewReason.POSSIBLE_REUSE)
    if photo.status == PhotoStatus.REJECTED:
        reasons.append(ReviewReason.REJECTED_PHOTO)
    return reasons


def photos_awaiting_review(assessment: Assessment) -> dict[str, list[ReviewReason]]:
    return {p.photo_id: reasons for p in assessment.photos if (reasons := photo_review_reasons(p))}


def judged_by_model_only(photos: Sequence[PhotoRecord]) -> bool:
    """Whether some photo's effective label is still the model's (no person has looked at it)."""
    return any(p.status == PhotoStatus.ANALYSED and p.verdict is not None and not p.reviews for p in photos)


def _reuse_text(photo: PhotoRecord) -> str:
    return ", ".join(
        f"photo {m.photo_id} of assessment {m.assessment_id} (VIN {m.vin}, {m.kind.value})"
        for m in photo.reuse_matches
    )


def review_reason_lines(assessment: Assessment) -> list[str]:
    """The assessment's review reasons for people: one line per waiting photo and reason, the
    untrained-encoder warning while a model verdict still counts, and NO_ASSESSABLE_PHOTO_REASON when no
    photo has an effective label. The one home of the rule; ``pipeline.review_reasons`` calls it."""
    lines = []
    for photo in assessment.photos:
        name = f"photo {photo.photo_id} ({photo.filename})"
        for reason in photo_review_reasons(photo):
            if reason == ReviewReason.REJECTED_PHOTO:
                lines.append(f"{name} rejected: {photo.reason}")
            elif reason == ReviewReason.LOW_CONFIDENCE and photo.verdict is not None:
                lines.append(f"{name} needs review: {photo.verdict.review_reason}")
            elif reason == ReviewReason.POSSIBLE_REUSE:
                lines.append(f"{name} possible reuse of {_reuse_text(photo)}")
    if assessment.encoder and assessment.encoder.untrained and judged_by_model_only(assessment.photos):
        lines.append(UNTRAINED_ENCODER_WARNING)
    if not has_assessable_photo(assessment.photos):
        lines.append(NO_ASSESSABLE_PHOTO_REASON)
    return lines


def queue_entry(assessment: Assessment) -> ReviewQueueEntry | None:
    """The assessment's place in the review queue; None when no photo waits (or it is not finished)."""
    waiting = photos_awaiting_review(assessment)
    if not waiting or assessment.status not in FINISHED_STATUSES:
        return None
    return ReviewQueueEntry(
        assessment_id=assessment.assessment_id,
        vin=assessment.vin,
        status=assessment.status,
        # A record finished before the stamp existed waits since its last change.
        waiting_since=assessment.review_waiting_since or assessment.updated_at,
        photos=waiting,
    )


def queue_sort_key(entry: ReviewQueueEntry) -> str:
    """Oldest first, then by id: fixed-width UTC time, so string order is time order in every store."""
    return f"{entry.waiting_since.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}#{entry.assessment_id}"


def settle_review_state(assessment: Assessment, now: datetime) -> Assessment:
    """Review reasons, the waiting-since stamp and the finished status after a change of reviews.

    A waiting assessment keeps its first waiting time (the queue is oldest first); one whose last
    waiting photo is reviewed leaves the queue. A NEEDS_PHOTOS assessment whose photo a person has
    judged is COMPLETED: its damage is known now.
    """
    waiting = bool(photos_awaiting_review(assessment))
    since = (assessment.review_waiting_since or now) if waiting else None
    status = assessment.status
    if status in FINISHED_STATUSES:
        status = (
            AssessmentStatus.COMPLETED
            if has_assessable_photo(assessment.photos)
            else AssessmentStatus.NEEDS_PHOTOS
        )
    return assessment.model_copy(
        update={
            "review_reasons": review_reason_lines(assessment),
            "review_waiting_since": since,
            "status": status,
        }
    )


# --- applying a review ------------------------------------------------------------------------


def apply_review(assessment: Assessment, photo_id: str, review: PhotoReview) -> Assessment:
    """The review appended to the photo's reviews (the verdict untouched) and a REVIEWED entry.

    Raises ReviewRefused for an unfinished assessment, an unknown photo, or one that cannot be
    reviewed (a DUPLICATE, or a photo not analysed yet).
    """
    if assessment.status not in FINISHED_STATUSES:
        raise NotFinished(
            f"assessment {assessment.assessment_id} is {assessment.status.value}; photos can be reviewed "
            "once it is COMPLETED (or NEEDS_PHOTOS)"
        )
    photo = next((p for p in assessment.photos if p.photo_id == photo_id), None)
    if photo is None:
        known = ", ".join(p.photo_id for p in assessment.photos) or "none"
        raise ReviewRefused(
            f"assessment {assessment.assessment_id} has no photo {photo_id!r} (its photos: {known})"
        )
    if photo.status not in REVIEWABLE_STATUSES:
        why = (
            f"it is a copy of photo {photo.duplicate_of}: review that one"
            if photo.status == PhotoStatus.DUPLICATE
            else f"it is {photo.status.value}, not analysed yet"
        )
        raise ReviewRefused(
            f"photo {photo_id} of assessment {assessment.assessment_id} cannot be reviewed: {why}"
        )
    before = effective_label(photo)
    reviewed = photo.model_copy(update={"reviews": [*photo.reviews, review]})
    photos = [reviewed if p.photo_id == photo_id else p for p in assessment.photos]
    entry = HistoryEntry(
        at=review.reviewed_at,
        actor=review.reviewer,
        action=HistoryAction.REVIEWED,
        summary=f"reviewed photo {photo_id}: {label_text(review.label)}"
        + (f" (note: {review.note})" if review.note else "")
        + (" — to be used as a reference" if review.as_reference else ""),
        photo_id=photo_id,
        before=label_text(before) if before else None,
        after=label_text(review.label),
    )
    return add_history(assessment.model_copy(update={"photos": photos}), entry)


def label_text(label: ReferenceLabel) -> str:
    return f"{label.severity.value} {label.damage_type.value}" if label.damaged else "undamaged"


# --- history ----------------------------------------------------------------------------------


def add_history(assessment: Assessment, *entries: HistoryEntry) -> Assessment:
    """Entries appended, oldest dropped past limits.MAX_HISTORY_ENTRIES and counted in history_dropped."""
    history = [*assessment.history, *entries]
    dropped = max(0, len(history) - limits.MAX_HISTORY_ENTRIES)
    return assessment.model_copy(
        update={"history": history[dropped:], "history_dropped": assessment.history_dropped + dropped}
    )


# --- description versions ---------------------------------------------------------------------

Pair = tuple[DescriptionStyle, str]


def pair_of(item: Description | AudioRecord) -> Pair:
    return (item.style, item.language)


def current_description(assessment: Assessment, pair: Pair) -> Description | None:
    return next((d for d in assessment.descriptions if pair_of(d) == pair), None)


def next_version(assessment: Assessment, pair: Pair) -> int:
    """One more than the highest version the pair ever had (current or superseded)."""
    versions = [
        d.version
        for d in [*assessment.descriptions, *assessment.superseded_descriptions]
        if pair_of(d) == pair
    ]
    return max(versions, default=0) + 1


def replace_description(
    assessment: Assessment, description: Description, audio: AudioRecord | None
) -> Assessment:
    """``description`` becomes the current one of its (style, language), at the next version; the one
    it replaces (and its audio) moves to the superseded lists, which keep the newest
    limits.MAX_SUPERSEDED_DESCRIPTIONS. ``audio`` None: the pair has no audio record."""
    pair = pair_of(description)
    versioned = description.model_copy(update={"version": next_version(assessment, pair)})
    old_descriptions = [d for d in assessment.descriptions if pair_of(d) == pair]
    old_audio = [a for a in assessment.audio if pair_of(a) == pair]
    superseded = [*assessment.superseded_descriptions, *old_descriptions][
        -limits.MAX_SUPERSEDED_DESCRIPTIONS :
    ]
    superseded_audio = [*assessment.superseded_audio, *old_audio][-limits.MAX_SUPERSEDED_DESCRIPTIONS :]
    return assessment.model_copy(
        update={
            "descriptions": [d for d in assessment.descriptions if pair_of(d) != pair] + [versioned],
            "audio": [a for a in assessment.audio if pair_of(a) != pair] + ([audio] if audio else []),
            "superseded_descriptions": superseded,
            "superseded_audio": superseded_audio,
        }
    )


def speakable_text(text: str) -> str:
    """A person's description: stripped, 1 to limits.MAX_DESCRIPTION_CHARS characters, and nothing a
    speech engine cannot read (control characters other than line breaks and tabs; XML 1.0 and so SSML
    forbid them). Raises ReviewRefused with the reason."""
    cleaned = text.strip()
    if not cleaned:
        raise ReviewRefused("the description text is empty")
    if len(cleaned) > limits.MAX_DESCRIPTION_CHARS:
        raise ReviewRefused(
            f"the description text has {len(cleaned)} characters; at most {limits.MAX_DESCRIPTION_CHARS}"
        )
    odd = sorted(
        {f"U+{ord(c):04X}" for c in cleaned if (ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) < 0xA0}
    )
    if odd:
        raise ReviewRefused(
            f"the description text holds control characters that cannot be spoken: {', '.join(odd)}"
        )
    return cleaned
