"""The review loop's application services, over the ports: record a person's review of a photo, edit a
description's text. The CLI and the API (both runtimes) call these; the rules are domain/review.py's.

A review is read, applied, revalued, its descriptions and audio regenerated, and saved with optimistic
locking. When another writer saved first (another review of another photo, an edit), the review is
applied again to what that writer saved, and the descriptions are rewritten if what they may say
changed: both reviews are kept, and the descriptions say what both decided.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from vehicle_assessment import pipeline
from vehicle_assessment.domain import limits
from vehicle_assessment.domain.description import build_description_request
from vehicle_assessment.domain.models import (
    Assessment,
    AudioRecord,
    Description,
    DescriptionStyle,
    HistoryAction,
    HistoryEntry,
    PhotoReview,
    ReviewQueueEntry,
)
from vehicle_assessment.domain.review import (
    FINISHED_STATUSES,
    NotFinished,
    Pair,
    ReviewRefused,
    add_history,
    apply_review,
    current_description,
    label_text,
    next_version,
    pair_of,
    replace_description,
    settle_review_state,
    speakable_text,
)
from vehicle_assessment.domain.rules import ValuationSettings
from vehicle_assessment.domain.valuation import value_vehicle
from vehicle_assessment.ports import (
    AssessmentRepository,
    Describer,
    DescriptionUnavailable,
    ObjectStore,
    ReferenceFeedback,
    ReviewQueue,
    Speaker,
)

logger = logging.getLogger(__name__)

EDITED_GENERATOR = "edited"


@dataclass(frozen=True)
class ReviewServices:
    repository: AssessmentRepository
    objects: ObjectStore
    describer: Describer
    speaker: Speaker
    valuation: ValuationSettings
    # Wired where a reference index can learn (the `learn` work); None: an as-reference review is
    # recorded as not added, with why.
    references: ReferenceFeedback | None = None
    # Called with the reason when a reviewed photo could not join the reference index (AWS: a metric).
    on_reference_failure: Callable[[str], None] | None = None
    # Descriptions rewritten at once. The API sets one per (style, language) pair so that the route's
    # worst case is one describer call plus one speech call, whatever the number of pairs (see README).
    parallel_descriptions: int = 1


# --- a review ---------------------------------------------------------------------------------


def review_photo(
    services: ReviewServices, assessment_id: str, photo_id: str, review: PhotoReview
) -> Assessment:
    """Record ``review`` on the photo; returns the assessment as saved.

    Raises AssessmentNotFound, ReviewRefused (unfinished assessment, unknown or unreviewable photo),
    ConcurrentUpdate (other writers kept saving first, limits.MAX_DOCUMENT_SAVE_ATTEMPTS times).
    """
    read = services.repository.get(assessment_id)
    written: dict[tuple[str, Pair], tuple[Description, AudioRecord]] = {}

    def reviewed(current: Assessment) -> Assessment:
        changed = revalue(apply_review(current, photo_id, review), services.valuation, review)
        return rewrite_descriptions(changed, services, written, review.reviewed_at, review.reviewer)

    saved = pipeline.save_with_retries(services.repository, read, reviewed)
    logger.info("assessment %s: photo %s reviewed by %s", assessment_id, photo_id, review.reviewer)
    if review.as_reference:
        saved = _add_reference(services, saved, photo_id, review)
    return saved


def revalue(assessment: Assessment, settings: ValuationSettings, review: PhotoReview) -> Assessment:
    """The valuation again from the photos' effective labels (the undamaged value as first estimated),
    the review state settled, and a REVALUED entry with the adjusted value before and after."""
    before = assessment.valuation
    if before is None:
        raise ReviewRefused(f"assessment {assessment.assessment_id} has no valuation to revise")
    untrained = bool(assessment.encoder and assessment.encoder.untrained)
    valuation = value_vehicle(assessment.photos, before.undamaged, settings, untrained_encoder=untrained)
    changed = settle_review_state(
        assessment.model_copy(update={"valuation": valuation, "updated_at": review.reviewed_at}),
        review.reviewed_at,
    )
    provisional = "provisional" if valuation.provisional else "final"
    entry = HistoryEntry(
        at=review.reviewed_at,
        actor=review.reviewer,
        action=HistoryAction.REVALUED,
        summary=f"revalued after the review: adjusted value {_money(valuation.adjusted_value_usd)} "
        f"({provisional}), depreciation {valuation.combined_depreciation:.1%}",
        before=_money(before.adjusted_value_usd),
        after=_money(valuation.adjusted_value_usd),
    )
    return add_history(changed, entry)


def _money(amount: float | None) -> str:
    return "unknown" if amount is None else f"{amount:.2f}"


def rewrite_descriptions(
    assessment: Assessment,
    services: ReviewServices,
    written: dict[tuple[str, Pair], tuple[Description, AudioRecord]],
    now: datetime,
    actor: str,
) -> Assessment:
    """Every current (style, language) description written again for what the assessment now says,
    with its audio, as a new version; ``written`` keeps what was written per request, so a re-applied
    change (another writer saved first) calls the describer only when the facts changed.

    A pair the describer cannot write (DescriptionUnavailable) keeps its current text; the history
    says so and a warning is logged: the review stands either way.
    """
    request = build_description_request(assessment)
    facts = request.model_dump_json()  # what the descriptions may say: the key of what was written
    pairs = [pair_of(d) for d in assessment.descriptions]
    missing = [pair for pair in pairs if (facts, pair) not in written]

    def write(pair: Pair) -> tuple[Pair, tuple[Description, AudioRecord] | DescriptionUnavailable]:
        current = current_description(assessment, pair)
        creativity = current.creativity if current and current.generator != EDITED_GENERATOR else 0.0
        try:
            description = services.describer.describe(request, pair[0], pair[1], creativity)
        except DescriptionUnavailable as exc:
            return pair, exc
        [audio] = pipeline.speak_descriptions(
            assessment.model_copy(update={"descriptions": [description]}), services.speaker, services.objects
        ).audio
        return pair, (description, audio)

    workers = max(1, min(services.parallel_descriptions, len(missing)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(write, missing))
    entries = []
    for pair, result in results:
        if isinstance(result, DescriptionUnavailable):
            logger.warning(
                "assessment %s: %s/%s description not rewritten after the review: %s",
                assessment.assessment_id,
                pair[0].value,
                pair[1],
                result,
            )
            entries.append(
                HistoryEntry(
                    at=now,
                    actor=actor,
                    action=HistoryAction.DESCRIPTION_WRITTEN,
                    summary=f"{pair[0].value}/{pair[1]} description NOT rewritten (the current one is out "
                    f"of date): {result}",
                )
            )
        else:
            written[(facts, pair)] = result
    for pair in pairs:
        if (facts, pair) not in written:
            continue
        description, audio = written[(facts, pair)]
        before = current_description(assessment, pair)
        version = next_version(assessment, pair)
        stamped = description.model_copy(update={"written_at": now})
        assessment = replace_description(assessment, stamped, audio)
        entries.append(
            HistoryEntry(
                at=now,
                actor=actor,
                action=HistoryAction.DESCRIPTION_WRITTEN,
                summary=f"{pair[0].value}/{pair[1]} description rewritten by {description.generator}",
                before=f"v{before.version}" if before else None,
                after=f"v{version}",
            )
        )
    return add_history(assessment, *entries)


def _add_reference(
    services: ReviewServices, saved: Assessment, photo_id: str, review: PhotoReview
) -> Assessment:
    """Offer the reviewed photo to the reference index; the outcome joins the history either way."""
    photo = next(p for p in saved.photos if p.photo_id == photo_id)
    label = label_text(review.label)
    try:
        if services.references is None:
            raise RuntimeError("no reference index is wired to learn from reviews here")
        source = services.references.add_reviewed_photo(saved, photo, review)
    except Exception as exc:  # any failure: the review is saved already and stands; record why
        reason = f"{type(exc).__name__}: {exc}"
        logger.warning(
            "assessment %s photo %s not added as a reference: %s", saved.assessment_id, photo_id, reason
        )
        if services.on_reference_failure is not None:
            services.on_reference_failure(reason)
        entry = HistoryEntry(
            at=review.reviewed_at,
            actor=review.reviewer,
            action=HistoryAction.REFERENCE_FAILED,
            summary=f"photo {photo_id} NOT added to the reference index as {label}: {reason}",
            photo_id=photo_id,
        )
    else:
        entry = HistoryEntry(
            at=review.reviewed_at,
            actor=review.reviewer,
            action=HistoryAction.REFERENCE_ADDED,
            summary=f"photo {photo_id} added to the reference index as {label}",
            photo_id=photo_id,
            after=source,
        )
    return pipeline.save_with_retries(services.repository, saved, lambda current: add_history(current, entry))


# --- a person's description -------------------------------------------------------------------


def edit_description(
    services: ReviewServices,
    assessment_id: str,
    style: DescriptionStyle,
    language: str,
    text: str,
    editor: str,
    now: datetime,
) -> Assessment:
    """A person's text becomes the (style, language) description's next version, with its audio.

    Raises AssessmentNotFound, ReviewRefused (unfinished, no such description, empty, too long or
    unspeakable text, a bad editor name), ConcurrentUpdate.
    """
    cleaned = speakable_text(text)
    if not 1 <= len(editor) <= limits.MAX_REVIEWER_CHARS:
        raise ReviewRefused(f"the editor's name must have 1 to {limits.MAX_REVIEWER_CHARS} characters")
    pair = (style, language.lower())
    read = services.repository.get(assessment_id)
    _require_description(read, pair)
    description = Description(
        style=style,
        language=pair[1],
        text=cleaned,
        generator=EDITED_GENERATOR,
        written_by=editor,
        written_at=now,
    )
    [audio] = pipeline.speak_descriptions(
        read.model_copy(update={"descriptions": [description]}), services.speaker, services.objects
    ).audio

    def edited(current: Assessment) -> Assessment:
        before = _require_description(current, pair)
        version = next_version(current, pair)
        changed = replace_description(current, description, audio).model_copy(update={"updated_at": now})
        entry = HistoryEntry(
            at=now,
            actor=editor,
            action=HistoryAction.DESCRIPTION_EDITED,
            summary=f"{style.value}/{pair[1]} description edited by hand"
            + ("" if audio.object_key else f" (audio skipped: {audio.reason})"),
            before=f"v{before.version}",
            after=f"v{version}",
        )
        return add_history(changed, entry)

    return pipeline.save_with_retries(services.repository, read, edited)


def _require_description(assessment: Assessment, pair: Pair) -> Description:
    if assessment.status not in FINISHED_STATUSES:
        raise NotFinished(
            f"assessment {assessment.assessment_id} is {assessment.status.value}; descriptions can be "
            "edited once it is COMPLETED (or NEEDS_PHOTOS)"
        )
    current = current_description(assessment, pair)
    if current is None:
        held = ", ".join(f"{s.value}/{lang}" for s, lang in map(pair_of, assessment.descriptions)) or "none"
        raise ReviewRefused(
            f"assessment {assessment.assessment_id} has no {pair[0].value}/{pair[1]} description to edit "
            f"(it has: {held})"
        )
    return current


# --- the queue --------------------------------------------------------------------------------


def review_queue(
    queue: ReviewQueue, limit: int = limits.DEFAULT_REVIEW_QUEUE_LIMIT
) -> list[ReviewQueueEntry]:
    """Assessments with photos awaiting a person, oldest first; ValueError for a limit out of bounds."""
    if not 1 <= limit <= limits.MAX_REVIEW_QUEUE_LIMIT:
        raise ValueError(f"the queue limit must be 1 to {limits.MAX_REVIEW_QUEUE_LIMIT}, got {limit}")
    return queue.review_queue(limit)
