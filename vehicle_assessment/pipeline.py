"""The workflow's steps as plain functions over the ports.

Each step takes the assessment (and the ports it needs) and returns the updated assessment.
The local runner calls them in order; on AWS each is one Lambda of the Step Functions workflow.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from vehicle_assessment.domain import limits
from vehicle_assessment.domain.description import build_description_request
from vehicle_assessment.domain.events import FINAL_STATUSES
from vehicle_assessment.domain.models import (
    UNTRAINED_ENCODER_WARNING,
    Assessment,
    AssessmentInputs,
    AssessmentStatus,
    AudioRecord,
    AudioStatus,
    DescriptionStyle,
    EncoderIdentity,
    HistoryAction,
    HistoryEntry,
    PhotoFingerprint,
    PhotoRecord,
    PhotoStatus,
    QualityLevel,
)
from vehicle_assessment.domain.photo_set import (
    NO_ASSESSABLE_PHOTO_REASON,
    has_assessable_photo,
    mark_duplicates,
)
from vehicle_assessment.domain.review import (
    PIPELINE_ACTOR,
    add_history,
    photos_awaiting_review,
    review_reason_lines,
    settle_review_state,
)
from vehicle_assessment.domain.rules import AssessmentRules
from vehicle_assessment.domain.text import one_line
from vehicle_assessment.domain.valuation import value_vehicle
from vehicle_assessment.domain.value import estimate_undamaged_value
from vehicle_assessment.domain.vehicle import facts_from_vin
from vehicle_assessment.domain.verdict import decide_verdict
from vehicle_assessment.domain.vin import check_vin
from vehicle_assessment.ports import (
    AssessmentRepository,
    Clock,
    ConcurrentUpdate,
    Describer,
    ImageEncoder,
    IndexMismatch,
    ObjectStore,
    PhotoRegistry,
    PhotoRegistryUnavailable,
    PreparingEncoder,
    ReferenceIndex,
    Speaker,
    SpeechUnavailable,
    StateFileUnusable,
    VinDecoder,
    VinDecoderUnavailable,
)

if TYPE_CHECKING:
    import numpy as np

    from vehicle_assessment.domain.photo import IntakeResult

logger = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class PhotoUpload:
    filename: str
    data: bytes


def photo_key(assessment_id: str, position: int, filename: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", filename.rsplit("/", 1)[-1])[:80] or "photo"
    return f"photos/{assessment_id}/{position:02d}-{safe}"


def new_assessment(
    inputs: AssessmentInputs,
    uploads: Sequence[PhotoUpload],
    objects: ObjectStore,
    now: datetime,
    assessment_id: str | None = None,
) -> Assessment:
    """Validate the VIN, keep every original photo untouched, and open the record.

    Raises InvalidVin before anything is stored; after that, nothing is dropped: each upload
    gets a PhotoRecord whatever its content.
    """
    vin_check = check_vin(inputs.vin, now.date())
    assessment_id = assessment_id or str(uuid.uuid4())
    photos = []
    for position, upload in enumerate(uploads, start=1):
        key = photo_key(assessment_id, position, upload.filename)
        objects.put(key, upload.data, "application/octet-stream")
        photos.append(
            PhotoRecord(
                photo_id=f"{position:02d}",
                filename=upload.filename,
                object_key=key,
                size_bytes=len(upload.data),
                sha256=hashlib.sha256(upload.data).hexdigest(),
                status=PhotoStatus.RECEIVED,
            )
        )
    return Assessment(
        assessment_id=assessment_id,
        vin=vin_check.vin,
        status=AssessmentStatus.PROCESSING,
        created_at=now,
        updated_at=now,
        inputs=inputs.model_copy(update={"vin": vin_check.vin}),
        vin_check=vin_check,
        photos=photos,
        warnings=list(vin_check.warnings),
    )


# --- steps ----------------------------------------------------------------------------------


def decode_vehicle(assessment: Assessment, decoder: VinDecoder, today: date) -> Assessment:
    """vPIC facts, or — when vPIC cannot answer — what the VIN itself tells."""
    vin_check = assessment.vin_check or check_vin(assessment.vin, today)
    warnings = list(assessment.warnings)
    try:
        facts = decoder.decode(vin_check.vin, vin_check.model_year)
    except VinDecoderUnavailable as exc:
        offline = facts_from_vin(vin_check)
        facts = offline.model_copy(update={"warnings": [f"{w}: {exc}" for w in offline.warnings]})
    warnings.extend(w for w in facts.warnings if w not in warnings)
    return assessment.model_copy(update={"vin_check": vin_check, "vehicle": facts, "warnings": warnings})


def intake(
    record: PhotoRecord, data: bytes, rules: AssessmentRules
) -> tuple[PhotoRecord, IntakeResult | None]:
    """Decode and quality-check one photo; a rejected photo keeps its record and the reason."""
    # Imported here: numpy and PIL cost ~0.1 s, which only the photo step should pay on a cold start.
    from vehicle_assessment.domain.photo import PhotoRejected, intake_photo

    try:
        result = intake_photo(data, rules.intake)
    except PhotoRejected as exc:
        return record.model_copy(update={"status": PhotoStatus.REJECTED, "reason": str(exc)}), None
    width, height = result.original_size
    update = {"width": width, "height": height, "quality": result.quality}
    if result.quality.level == QualityLevel.REJECT:
        update |= {"status": PhotoStatus.REJECTED, "reason": "; ".join(result.quality.reasons)}
        return record.model_copy(update=update), None
    return record.model_copy(update=update), result


@dataclass(frozen=True)
class IntakenPhoto:
    """A photo after intake, with the per-photo work its analysis needs done on the intake thread."""

    record: PhotoRecord
    result: IntakeResult | None  # None: rejected, and the record says why
    perceptual_hash: str | None = None
    prepared: Any = None  # the encoder's prepared input, when it is a PreparingEncoder


def finish_intake(
    record: PhotoRecord, result: IntakeResult | None, encoder: ImageEncoder | None = None
) -> IntakenPhoto:
    """A usable photo's perceptual hash and, for a PreparingEncoder, its prepared input."""
    # Imported here, like intake's: imagehash/numpy only for the photo step (cold starts elsewhere).
    from vehicle_assessment.domain.reuse import perceptual_hash

    if result is None:
        return IntakenPhoto(record, None)
    prepared = encoder.prepare(result.image) if isinstance(encoder, PreparingEncoder) else None
    # The hash of the image intake produced (decoded, EXIF-transposed, shrunk): no second decode.
    return IntakenPhoto(record, result, perceptual_hash(result.image), prepared)


def intake_all(
    records: Sequence[PhotoRecord],
    photo_bytes: Sequence[bytes],
    rules: AssessmentRules,
    encoder: ImageEncoder | None = None,
) -> list[IntakenPhoto]:
    """`intake`, then `finish_intake`, of each photo, in order; several photos on parallel threads.

    Intake (JPEG decoding, resizing, numpy), hashing and the encoder's per-image preprocessing were
    most of a warm local assessment's time beside the forward pass, and run in Pillow and numpy with
    the GIL released. Each photo's two parts are separate tasks, so a thread that finishes a small
    photo early picks up another photo's second part: 3 photos on 2 threads end together.
    """
    pairs = list(zip(records, photo_bytes, strict=True))
    workers = min(len(pairs), os.cpu_count() or 1)
    if workers <= 1:
        return [finish_intake(*intake(record, data, rules), encoder) for record, data in pairs]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="intake") as pool:
        intakes = {pool.submit(intake, record, data, rules): n for n, (record, data) in enumerate(pairs)}
        finishing = {}
        for done in as_completed(intakes):
            finishing[intakes[done]] = pool.submit(finish_intake, *done.result(), encoder)
        return [finishing[n].result() for n in range(len(pairs))]


# An unavailable registry's error, as recorded on the photo: one line, bounded (it is stored and shown).
_MAX_REUSE_REASON = 300


@dataclass(frozen=True)
class ReuseCheck:
    """The reused-photo check's port and whose photos these are: a match is a photo of another VIN."""

    registry: PhotoRegistry
    assessment_id: str
    vin: str
    now: datetime


def analyse_photos(
    records: Sequence[PhotoRecord],
    photo_bytes: Sequence[bytes],
    encoder: ImageEncoder,
    index: ReferenceIndex,
    rules: AssessmentRules,
    reuse: ReuseCheck | None = None,
) -> list[PhotoRecord]:
    """Intake each photo, embed the usable ones in one batch, search, and decide verdicts.

    Every analysed photo gets its perceptual hash; with ``reuse`` (and ``rules.reuse.enabled``) it is
    also remembered and checked against other vehicles' photos (``check_reuse``).
    """
    if index.identity is not None and index.identity != encoder.identity:
        raise IndexMismatch(
            f"the reference index holds {index.identity.describe()} vectors but the encoder is "
            f"{encoder.identity.describe()}; rebuild the index with the same encoder settings"
        )
    intaken = intake_all(records, photo_bytes, rules, encoder)
    usable = [(i, photo) for i, photo in enumerate(intaken) if photo.result is not None]
    results = [photo.record for photo in intaken]
    if not usable:
        return results
    if isinstance(encoder, PreparingEncoder):
        vectors = encoder.embed_prepared([photo.prepared for _, photo in usable])
    else:
        vectors = encoder.embed([photo.result.image for _, photo in usable if photo.result is not None])
    neighbour_lists = index.search(vectors, rules.verdict.k)
    for (i, photo), neighbours, vector in zip(usable, neighbour_lists, vectors, strict=True):
        analysed = results[i].model_copy(
            update={
                "status": PhotoStatus.ANALYSED,
                "verdict": decide_verdict(neighbours, rules.verdict),
                "perceptual_hash": photo.perceptual_hash,
            }
        )
        if reuse is not None and rules.reuse.enabled:
            analysed = check_reuse(analysed, vector, encoder.identity, reuse)
        results[i] = analysed
    return results


def check_reuse(
    record: PhotoRecord, vector: np.ndarray, encoder: EncoderIdentity, reuse: ReuseCheck
) -> PhotoRecord:
    """Remember an analysed photo (hash, digest, embedding and its encoder), then find other vehicles'
    photos it matches.

    Remembered BEFORE the search: two assessments of different vehicles racing with the same photo
    then always see each other in at least one of the two searches (a search is never older than its
    own write), and the photo's own row never matches it (same VIN). An unavailable registry does
    not fail the photo: the check is advisory (it sends the photo to a person, it changes no value),
    so its outage is recorded on the photo (``reuse_unchecked``, repeated in the assessment's
    warnings) and logged, and the analysis goes on.
    """
    if record.perceptual_hash is None:
        raise ValueError(f"photo {record.photo_id} has no perceptual hash: analyse it first")
    fingerprint = PhotoFingerprint(
        assessment_id=reuse.assessment_id,
        photo_id=record.photo_id,
        vin=reuse.vin,
        sha256=record.sha256,
        perceptual_hash=record.perceptual_hash,
        recorded_at=reuse.now,
        encoder=encoder,
        vector=vector.astype(float).tolist(),
    )
    problems: list[str] = []
    try:
        reuse.registry.remember(fingerprint)
    except (PhotoRegistryUnavailable, StateFileUnusable) as exc:
        problems.append(f"not remembered for later reuse checks ({one_line(exc, _MAX_REUSE_REASON)})")
    try:
        matches = reuse.registry.find_reuse(fingerprint)
    except (PhotoRegistryUnavailable, StateFileUnusable) as exc:
        problems.append(f"not checked for reuse ({one_line(exc, _MAX_REUSE_REASON)})")
        matches = []
    unchecked = "; ".join(problems) or None
    if unchecked:
        logger.warning(
            "assessment %s: photo %s %s",
            reuse.assessment_id,
            record.photo_id,
            unchecked,
            extra={"fallback": "reuse"},
        )
    for match in matches:
        logger.info(
            "assessment %s: photo %s may be reused: %s match (%s) with photo %s of assessment %s (VIN %s)",
            reuse.assessment_id,
            record.photo_id,
            match.kind.value,
            match.score,
            match.photo_id,
            match.assessment_id,
            match.vin,
        )
    return record.model_copy(update={"reuse_matches": matches, "reuse_unchecked": unchecked})


def analyse_assessment_photos(
    assessment: Assessment,
    objects: ObjectStore,
    encoder: ImageEncoder,
    index: ReferenceIndex,
    rules: AssessmentRules,
    registry: PhotoRegistry | None = None,
    now: datetime | None = None,
) -> Assessment:
    data = [objects.get(photo.object_key, photo.object_version) for photo in assessment.photos]
    reuse = None
    if registry is not None:
        reuse = ReuseCheck(registry, assessment.assessment_id, assessment.vin, now or utc_now())
    photos = analyse_photos(assessment.photos, data, encoder, index, rules, reuse)
    analysed = assessment.model_copy(update={"photos": photos, "encoder": encoder.identity})
    return note_unchecked_reuse(note_untrained_encoder(analysed))


def note_unchecked_reuse(assessment: Assessment) -> Assessment:
    """One warning per photo the reused-photo check could not cover (each once)."""
    notes = [
        f"photo {photo.photo_id} ({photo.filename}) {photo.reuse_unchecked}"
        for photo in assessment.photos
        if photo.reuse_unchecked
    ]
    new = [note for note in notes if note not in assessment.warnings]
    if not new:
        return assessment
    return assessment.model_copy(update={"warnings": [*assessment.warnings, *new]})


def note_untrained_encoder(assessment: Assessment) -> Assessment:
    """Put the untrained-encoder warning first, once, when the assessment's encoder had random weights."""
    encoder = assessment.encoder
    if encoder is None or not encoder.untrained or UNTRAINED_ENCODER_WARNING in assessment.warnings:
        return assessment
    return assessment.model_copy(update={"warnings": [UNTRAINED_ENCODER_WARNING, *assessment.warnings]})


def value_assessment(assessment: Assessment, rules: AssessmentRules, today: date) -> Assessment:
    """Resolve exact copies among the analysed photos, then value the vehicle.

    Copies are resolved here, after every photo has been analysed, in both runtimes: on AWS the
    photos are analysed one per Map iteration, concurrently, and only this step sees them all.
    """
    undamaged = estimate_undamaged_value(
        assessment.vehicle,
        assessment.inputs.mileage,
        assessment.inputs.estimate_usd,
        today,
        rules.value_curve,
    )
    photos = mark_duplicates(assessment.photos)
    for photo in photos:
        if photo.status == PhotoStatus.DUPLICATE:
            logger.info(
                "assessment %s: photo %s is a copy of photo %s; not valued again",
                assessment.assessment_id,
                photo.photo_id,
                photo.duplicate_of,
            )
    untrained = bool(assessment.encoder and assessment.encoder.untrained)
    valuation = value_vehicle(photos, undamaged, rules.valuation, untrained_encoder=untrained)
    return assessment.model_copy(update={"photos": photos, "valuation": valuation})


def describe_assessment(
    assessment: Assessment,
    describer: Describer,
    languages: Sequence[str],
    styles: Sequence[str],
    creativity: float = 0.0,
) -> Assessment:
    request = build_description_request(assessment)
    descriptions = [
        describer.describe(request, DescriptionStyle(style), language, creativity)
        for style in styles
        for language in languages
    ]
    return assessment.model_copy(update={"descriptions": descriptions})


def speak_descriptions(assessment: Assessment, speaker: Speaker, objects: ObjectStore) -> Assessment:
    """Audio for each description; when speech cannot be made, record why and go on."""
    audio = []
    for description in assessment.descriptions:
        try:
            clip = speaker.synthesize(description.text, description.language)
        except SpeechUnavailable as exc:
            audio.append(
                AudioRecord(
                    language=description.language,
                    style=description.style,
                    status=AudioStatus.SKIPPED,
                    reason=str(exc),
                )
            )
            continue
        # Named by what it says: an object never changes its speech, so a description saved after a
        # racing regeneration of the same pair still finds its own audio (never the other's).
        digest = hashlib.sha256(description.text.encode()).hexdigest()[:16]
        name = f"{description.style.value}-{description.language}-{digest}.{clip.extension}"
        key = f"audio/{assessment.assessment_id}/{name}"
        objects.put(key, clip.audio, clip.content_type)
        audio.append(
            AudioRecord(
                language=description.language,
                style=description.style,
                status=AudioStatus.GENERATED,
                object_key=key,
                content_type=clip.content_type,
            )
        )
    return assessment.model_copy(update={"audio": audio})


def review_reasons(assessment: Assessment) -> list[str]:
    """One line per photo waiting for a person and why, and the assessment-wide caveats; the rule
    lives in domain/review.py (the queue and a review use the same one)."""
    return review_reason_lines(assessment)


def complete(assessment: Assessment, now: datetime) -> Assessment:
    """COMPLETED, or NEEDS_PHOTOS when no photo could be assessed (the damage is unknown), with the
    review reasons, the review queue's waiting-since stamp and an ASSESSED history entry."""
    status = AssessmentStatus.COMPLETED
    if not has_assessable_photo(assessment.photos):
        status = AssessmentStatus.NEEDS_PHOTOS
        logger.info("assessment %s: %s", assessment.assessment_id, NO_ASSESSABLE_PHOTO_REASON)
    already = bool(
        assessment.history
        and assessment.history[-1].action == HistoryAction.ASSESSED
        and assessment.status == status
    )
    finished = settle_review_state(assessment.model_copy(update={"status": status, "updated_at": now}), now)
    if already:  # a retried Store step (Step Functions retries it): the entry is there once already
        return finished
    waiting = photos_awaiting_review(finished)
    value = finished.valuation.adjusted_value_usd if finished.valuation else None
    entry = HistoryEntry(
        at=now,
        actor=PIPELINE_ACTOR,
        action=HistoryAction.ASSESSED,
        summary=f"assessed: {status.value}, {len(assessment.photos)} photos"
        + (f", {len(waiting)} awaiting review" if waiting else ""),
        after=None if value is None else f"{value:.2f}",
    )
    return add_history(finished, entry)


class AssessmentAlreadyFinished(ValueError):
    """A failure arrived for an assessment that already reached a final status (a late report of a
    stopped workflow execution, or a retried MarkFailed): the final status stands."""

    def __init__(self, assessment: Assessment) -> None:
        super().__init__(
            f"assessment {assessment.assessment_id} is already {assessment.status.value}: not marked FAILED"
        )
        self.assessment = assessment


def mark_failed(assessment: Assessment, step: str, reason: str, now: datetime) -> Assessment:
    """FAILED with the step and reason; AssessmentAlreadyFinished for one in a final status (COMPLETED,
    NEEDS_PHOTOS, INCOMPLETE, or FAILED already), whose outcome a later failure must not overwrite."""
    if assessment.status in FINAL_STATUSES:
        raise AssessmentAlreadyFinished(assessment)
    return assessment.model_copy(
        update={
            "status": AssessmentStatus.FAILED,
            "failed_step": step,
            "failure_reason": reason,
            "updated_at": now,
        }
    )


# --- saving a changed document -------------------------------------------------------------


def save_with_retries(
    repository: AssessmentRepository, read: Assessment, change: Callable[[Assessment], Assessment]
) -> Assessment:
    """Save ``change(read)``; when another writer saved first, read again and re-apply ``change``.

    Only for a change that still holds on whatever the other writer stored (it commutes with it):
    ``change`` gets the freshest copy each time, and raises to refuse one it cannot apply to. At
    most limits.MAX_DOCUMENT_SAVE_ATTEMPTS saves; past them ConcurrentUpdate propagates. Returns
    the assessment as saved.
    """
    current = read
    for _ in range(limits.MAX_DOCUMENT_SAVE_ATTEMPTS - 1):
        try:
            return repository.save(change(current))
        except ConcurrentUpdate as exc:
            logger.warning("re-reading assessment %s to apply its change again: %s", read.assessment_id, exc)
            current = repository.get(read.assessment_id)
    return repository.save(change(current))


# --- the local runner -----------------------------------------------------------------------


@dataclass
class LocalPorts:
    objects: ObjectStore
    repository: AssessmentRepository
    vin_decoder: VinDecoder
    encoder: ImageEncoder
    index: ReferenceIndex
    describer: Describer
    speaker: Speaker
    # The reused-photo check's memory; None: photos are hashed but neither remembered nor checked.
    photo_registry: PhotoRegistry | None = None


class AssessmentRunner:
    """Runs the workflow's steps in one process.

    The record (with every original photo stored) is saved before the first step, and again when
    the last step finishes or one fails, so no assessment and no photo is ever lost.
    """

    def __init__(self, ports: LocalPorts, rules: AssessmentRules, clock: Clock = utc_now) -> None:
        self.ports = ports
        self.rules = rules
        self.clock = clock

    def assess(self, inputs: AssessmentInputs, uploads: Sequence[PhotoUpload]) -> Assessment:
        """Raises InvalidVin / ValueError for bad input before anything is stored."""
        if not uploads:
            raise ValueError("at least one photo is required")
        p, rules = self.ports, self.rules
        # Each save returns the stored revision, which the next save of this runner must carry.
        assessment = p.repository.save(new_assessment(inputs, uploads, p.objects, self.clock()))
        today = self.clock().date()
        steps: list[tuple[str, Callable[[Assessment], Assessment]]] = [
            ("decode_vehicle", lambda a: decode_vehicle(a, p.vin_decoder, today)),
            (
                "analyse_photos",
                lambda a: analyse_assessment_photos(
                    a, p.objects, p.encoder, p.index, rules, p.photo_registry, self.clock()
                ),
            ),
            ("value", lambda a: value_assessment(a, rules, today)),
            ("describe", lambda a: describe_assessment(a, p.describer, rules.languages, rules.styles)),
            ("speak", lambda a: speak_descriptions(a, p.speaker, p.objects)),
        ]
        for name, step in steps:
            try:
                assessment = step(assessment)
            except Exception as exc:  # any failure is recorded on the assessment, then reported
                logger.exception("step %s failed for assessment %s", name, assessment.assessment_id)
                failed = mark_failed(assessment, name, f"{type(exc).__name__}: {exc}", self.clock())
                return p.repository.save(failed)
        return p.repository.save(complete(assessment, self.clock()))
