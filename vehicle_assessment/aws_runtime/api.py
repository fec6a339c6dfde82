"""The REST API's services: open an assessment with upload URLs, read it, list a VIN's history,
regenerate a description, review a photo, edit a description, the review queue. The HTTP layer
(routes, status codes) is ``functions/api.py``.

Reviewing runs in the API function itself, not in a state machine: it rewrites every current
description (languages × styles, 2 × 1 by default) with its audio, one pair per thread
(``REVIEW_PARALLEL_DESCRIPTIONS``), so the route waits for one Bedrock call (at most
limits.API_DESCRIBER_DEADLINE_S, then the template) and one Polly call, as the regenerate route does,
whatever the number of pairs; one after another, 2 pairs would already need 2 × (18 + 8) s, past API
Gateway's 29 s (tests/services/test_review_service.py and tests/aws_runtime/test_review_api.py).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails

from vehicle_assessment import pipeline, reviewing
from vehicle_assessment.adapters.aws.s3_upload_forms import CONTENT_TYPE_FIELD, presigned_upload_form
from vehicle_assessment.aws_runtime.uploads import open_assessment
from vehicle_assessment.domain import limits, upload_keys
from vehicle_assessment.domain.content_type import ACCEPTED_IMAGE_TYPES, IMAGE_TYPE_PREFIX
from vehicle_assessment.domain.description import build_description_request
from vehicle_assessment.domain.models import (
    Assessment,
    AssessmentInputs,
    AssessmentStatus,
    AudioRecord,
    DamageType,
    Description,
    DescriptionStyle,
    EstimateUsd,
    HistoryAction,
    HistoryEntry,
    PhotoReview,
    ReviewQueueEntry,
    Severity,
    StorableFloat,
    speakable_color,
)
from vehicle_assessment.domain.review import add_history, next_version, replace_description
from vehicle_assessment.domain.rules import ValuationSettings
from vehicle_assessment.domain.vin import normalise_vin
from vehicle_assessment.ports import (
    AssessmentFilter,
    ConcurrentUpdate,
    Describer,
    MediaLinks,
    ObjectStore,
    ReferenceFeedback,
    ReviewQueue,
    Speaker,
    WorkflowRepository,
)

logger = logging.getLogger(__name__)


class Conflict(Exception):
    """The request is valid but the assessment's state does not allow it (HTTP 409)."""


class InvalidInputs(ValueError):
    """The request passed its schema, but the domain's AssessmentInputs refused it (HTTP 400)."""

    def __init__(self, errors: Sequence[ErrorDetails]) -> None:
        super().__init__("invalid request")
        # Location, message and type only: the rejected input is never echoed back.
        self.errors = [
            {"loc": ["body", *(str(p) for p in e["loc"])], "msg": e["msg"], "type": e["type"]} for e in errors
        ]


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApiRequest(ApiModel):
    # Strict: JSON types as declared ("12", true or 1.5 for an int is refused, not coerced).
    model_config = ConfigDict(extra="forbid", strict=True)


# --- requests and responses ------------------------------------------------------------------


class CreateAssessmentRequest(ApiRequest):
    vin: str = Field(min_length=1, max_length=40, description="17 characters; checked with its check digit")
    color: str | None = Field(default=None, min_length=1, max_length=limits.MAX_COLOR_CHARS)
    mileage: int | None = Field(default=None, ge=0, le=limits.MAX_MILEAGE_MILES)
    estimate_usd: EstimateUsd | None = None
    expected_photos: int | None = Field(
        default=None, ge=1, le=limits.MAX_EXPECTED_PHOTOS, description="defaults to the service's"
    )

    @field_validator("color")
    @classmethod
    def _speakable_color(cls, value: str | None) -> str | None:
        # AssessmentInputs' rule, checked here too so a bad colour is a 400, not a 500 later.
        return speakable_color(value)


class PresignedUpload(ApiModel):
    photo_number: int
    object_key: str
    url: str = Field(description="POST the form here (multipart/form-data)")
    fields: dict[str, str] = Field(
        description="send every one as given, then the client_fields, then file last; S3 refuses a form "
        "that changes or leaves out any of them"
    )


class ClientFormField(ApiModel):
    """A form field the client adds itself, because only the client knows its value."""

    name: str
    accepted_values: list[str] = Field(description="empty when the value is not a string (the file)")
    description: str


class CreateAssessmentResponse(ApiModel):
    assessment_id: str
    status: AssessmentStatus
    expected_photos: int
    upload_expires_in_s: int
    max_upload_bytes: int
    uploads: list[PresignedUpload]
    client_fields: list[ClientFormField] = Field(
        description="fields every upload form must add after its `fields`, in this order: "
        f"{CONTENT_TYPE_FIELD} (one of {', '.join(ACCEPTED_IMAGE_TYPES)}), then file (the photo)"
    )


def upload_client_fields(max_upload_bytes: int) -> list[ClientFormField]:
    return [
        ClientFormField(
            name=CONTENT_TYPE_FIELD,
            accepted_values=list(ACCEPTED_IMAGE_TYPES),
            description=f"the photo's media type. Required: S3 refuses a form without it. S3 accepts any "
            f"value starting with {IMAGE_TYPE_PREFIX!r} (a POST policy can only match a prefix), but only "
            "JPEG, PNG and WebP photos are assessed; any other upload is recorded as rejected.",
        ),
        ClientFormField(
            name="file",
            accepted_values=[],
            description=f"the photo's bytes, 1 to {max_upload_bytes} of them; the last field of the form "
            "(S3 ignores fields after it).",
        ),
    ]


class RejectedUploadView(ApiModel):
    object_key: str
    reason: str
    size_bytes: int | None = None
    content_type: str | None = None
    at: str


class AssessmentView(Assessment):
    """The assessment plus what the upload tracking knows."""

    received_photos: int
    rejected_uploads: list[RejectedUploadView] = Field(default_factory=list)
    rejected_uploads_overflow: int = Field(
        default=0,
        description=f"rejected uploads past the {limits.MAX_REJECTED_UPLOADS_PER_ASSESSMENT} listed "
        "(kept as orphan-upload records naming this assessment)",
    )


class AssessmentSummary(ApiModel):
    assessment_id: str
    status: AssessmentStatus
    created_at: datetime
    updated_at: datetime
    adjusted_value_usd: float | None = None
    needs_review: bool


class AssessmentList(ApiModel):
    vin: str
    assessments: list[AssessmentSummary]


class ListedAssessment(AssessmentSummary):
    vin: str


class AssessmentListPage(ApiModel):
    assessments: list[ListedAssessment]
    next_token: str | None = Field(
        default=None, description="ask again with next=<this> for the following page; null on the last page"
    )


class InvalidPageToken(ValueError):
    """``next`` is not a token this API issued (HTTP 400)."""


class RegenerateDescriptionRequest(ApiRequest):
    # Powertools validates the parsed JSON in Python mode, where a strict enum wants an enum
    # instance; the string is still checked against the enum's values.
    style: DescriptionStyle = Field(default=DescriptionStyle.STANDARD, strict=False)
    language: str = Field(default="en", pattern=r"^[a-z]{2}$", description="ISO 639-1 code")
    creativity: StorableFloat = Field(
        default=0.0, ge=0.0, le=1.0, allow_inf_nan=False, description="0 = plain, 1 = most varied"
    )


class RegenerateDescriptionResponse(ApiModel):
    assessment_id: str
    description: Description
    audio: AudioRecord


class PhotoMedia(ApiModel):
    photo_id: str
    url: str = Field(description="GET the photo as uploaded (the version that was counted)")


class AudioMedia(ApiModel):
    style: DescriptionStyle
    language: str
    content_type: str | None = None
    url: str


class ReferenceMedia(ApiModel):
    sha256: str
    url: str = Field(
        description="GET the reference photo's display copy (JPEG, longest side "
        f"{limits.REFERENCE_IMAGE_MAX_SIDE} px); absent from the store until an index build wrote it"
    )


class AssessmentMedia(ApiModel):
    """Short-lived links to what a page shows beside the assessment; the store itself stays private."""

    assessment_id: str
    expires_in_s: int
    photos: list[PhotoMedia]
    audio: list[AudioMedia]
    references: list[ReferenceMedia] = Field(
        description="the display copies of every neighbour of every photo, by the reference's sha256"
    )


class ReviewPhotoRequest(ApiRequest):
    """A person's decision on one photo; who decides is the caller's sign-in, never the body."""

    damaged: bool
    damage_type: DamageType = Field(strict=False, description="none when not damaged")
    severity: Severity = Field(strict=False, description="none when not damaged")
    note: str | None = Field(default=None, min_length=1, max_length=limits.MAX_REVIEW_NOTE_CHARS)
    as_reference: bool = Field(
        default=False, description="add the photo, with this label, to the reference index"
    )


class EditDescriptionRequest(ApiRequest):
    text: str = Field(
        min_length=1, max_length=limits.MAX_DESCRIPTION_CHARS, description="read aloud: no control characters"
    )


class ReviewQueueView(ApiModel):
    entries: list[ReviewQueueEntry] = Field(description="oldest first")


# --- services --------------------------------------------------------------------------------

# Description pairs rewritten at once after a review (see the module docstring); an assessment holding
# more pairs than this takes one more describer + speech round per extra batch.
REVIEW_PARALLEL_DESCRIPTIONS = 8


@dataclass(frozen=True)
class ApiServices:
    repository: WorkflowRepository
    s3_client: Any  # signs upload forms: build it with factory.build_s3_presigning_client
    objects: ObjectStore
    describer: Describer | None = None
    speaker: Speaker | None = None
    media: MediaLinks | None = None  # signs GET links: S3 presigned GETs, or the local server's
    # The review queue: the repository itself where it implements ReviewQueue (both AWS ones do).
    review_queue: ReviewQueue | None = None
    valuation: ValuationSettings = field(default_factory=ValuationSettings)
    references: ReferenceFeedback | None = None
    # Called with the reason when a reviewed photo could not join the reference index (a metric).
    on_reference_failure: Callable[[str], None] | None = None


@dataclass(frozen=True)
class UploadPolicy:
    bucket: str
    expected_photos: int
    max_upload_bytes: int
    expires_in_s: int


def upload_key(assessment_id: str, number: int) -> str:
    return upload_keys.api_upload_key(assessment_id, number)


def create_assessment(
    request: CreateAssessmentRequest, services: ApiServices, policy: UploadPolicy, now: datetime
) -> CreateAssessmentResponse:
    """Raises InvalidVin or InvalidInputs (ValueErrors) before anything is stored."""
    try:
        inputs = AssessmentInputs(
            vin=request.vin, color=request.color, mileage=request.mileage, estimate_usd=request.estimate_usd
        )
    except ValidationError as exc:
        raise InvalidInputs(exc.errors()) from None
    expected = request.expected_photos or policy.expected_photos
    assessment = open_assessment(inputs, expected, now, str(uuid.uuid4()))
    if not services.repository.create(assessment):
        raise Conflict(f"assessment {assessment.assessment_id} already exists")
    uploads = []
    for number in range(1, expected + 1):
        key = upload_key(assessment.assessment_id, number)
        # The key is fixed by the server; S3 enforces key, size and image type when the form is posted.
        form = presigned_upload_form(
            services.s3_client, policy.bucket, key, policy.max_upload_bytes, policy.expires_in_s
        )
        uploads.append(PresignedUpload(photo_number=number, object_key=key, url=form.url, fields=form.fields))
    return CreateAssessmentResponse(
        assessment_id=assessment.assessment_id,
        status=assessment.status,
        expected_photos=expected,
        upload_expires_in_s=policy.expires_in_s,
        max_upload_bytes=policy.max_upload_bytes,
        uploads=uploads,
        client_fields=upload_client_fields(policy.max_upload_bytes),
    )


def get_assessment(assessment_id: str, services: ApiServices) -> AssessmentView:
    """Raises AssessmentNotFound."""
    repository = services.repository
    assessment = repository.get(assessment_id)
    progress = repository.upload_progress(assessment_id)
    rejected = [RejectedUploadView(**vars(r)) for r in repository.rejected_uploads(assessment_id)]
    return AssessmentView(
        **assessment.model_dump(),
        received_photos=progress.received,
        rejected_uploads=rejected,
        rejected_uploads_overflow=repository.rejected_uploads_overflow(assessment_id),
    )


def list_assessments(vin: str, services: ApiServices, limit: int) -> AssessmentList:
    normalised = normalise_vin(vin)
    found = services.repository.list_by_vin(normalised, limit)
    return AssessmentList(
        vin=normalised,
        assessments=[
            AssessmentSummary(
                assessment_id=a.assessment_id,
                status=a.status,
                created_at=a.created_at,
                updated_at=a.updated_at,
                adjusted_value_usd=a.valuation.adjusted_value_usd if a.valuation else None,
                needs_review=a.needs_review,
            )
            for a in found
        ],
    )


def media_links(assessment_id: str, services: ApiServices, expires_in_s: int) -> AssessmentMedia:
    """Links to the assessment's photos, audio and neighbours' display copies. Raises AssessmentNotFound."""
    if services.media is None:
        raise RuntimeError("the API was wired without media links")
    media = services.media
    assessment = services.repository.get(assessment_id)
    references = sorted(
        {
            neighbour.sha256
            for photo in assessment.photos
            if photo.verdict is not None
            for neighbour in photo.verdict.neighbours
            if neighbour.sha256
        }
    )
    return AssessmentMedia(
        assessment_id=assessment_id,
        expires_in_s=expires_in_s,
        photos=[
            PhotoMedia(photo_id=p.photo_id, url=media.link(p.object_key, p.object_version, expires_in_s))
            for p in assessment.photos
        ],
        audio=[
            AudioMedia(
                style=a.style,
                language=a.language,
                content_type=a.content_type,
                url=media.link(a.object_key, None, expires_in_s),
            )
            for a in assessment.audio
            if a.object_key is not None
        ],
        references=[
            ReferenceMedia(
                sha256=sha, url=media.link(upload_keys.reference_image_key(sha), None, expires_in_s)
            )
            for sha in references
        ],
    )


def list_all_assessments(
    which: AssessmentFilter, services: ApiServices, limit: int, next_token: str | None
) -> AssessmentListPage:
    """Newest first, filtered, one page. Raises InvalidPageToken."""
    if which.vin is not None:
        which = AssessmentFilter(
            status=which.status, vin=normalise_vin(which.vin), needs_review=which.needs_review
        )
    try:
        page = services.repository.list_assessments(which, limit, next_token)
    except ValueError:  # the port's answer to a token it did not issue
        raise InvalidPageToken("next is not a page token this API issued: start again without it") from None
    return AssessmentListPage(
        assessments=[
            ListedAssessment(
                assessment_id=a.assessment_id,
                vin=a.vin,
                status=a.status,
                created_at=a.created_at,
                updated_at=a.updated_at,
                adjusted_value_usd=a.valuation.adjusted_value_usd if a.valuation else None,
                needs_review=a.needs_review,
            )
            for a in page.assessments
        ],
        next_token=page.next_token,
    )


def regenerate_description(
    assessment_id: str,
    request: RegenerateDescriptionRequest,
    services: ApiServices,
    now: datetime,
    requested_by: str | None = None,
) -> RegenerateDescriptionResponse:
    """A new description (and its audio) in the asked style and language, replacing that pair's as its
    next version (the replaced one is kept among the superseded, and the history says so).

    The description is written once, from one read; it is then saved with optimistic locking. When
    another writer saved first, the pair is added again to what it saved, if that still commutes:
    the assessment is still finished, says the same about the vehicle (the same description
    request), and still holds the pair this request read. Otherwise (another request replaced the
    same pair meanwhile, or the facts changed) the answer is Conflict: nothing is saved, and the
    client may read the assessment and ask again.

    Raises AssessmentNotFound, Conflict (not finished yet; a concurrent change it cannot merge with),
    UnsupportedLanguage (a ValueError).
    """
    if services.describer is None or services.speaker is None:
        raise RuntimeError("the API was wired without a describer or speaker")
    assessment = services.repository.get(assessment_id)
    _require_finished(assessment)
    described = build_description_request(assessment)
    description = services.describer.describe(described, request.style, request.language, request.creativity)
    # The pipeline's speak step, on just the new description (same key scheme, same skip rules).
    [audio] = pipeline.speak_descriptions(
        assessment.model_copy(update={"descriptions": [description]}), services.speaker, services.objects
    ).audio
    pair = (description.style, description.language)
    read_pair = _held_pair(assessment, pair)

    def add_pair(current: Assessment) -> Assessment:
        _require_finished(current)
        if build_description_request(current) != described:
            raise Conflict(
                f"assessment {assessment_id} changed while its description was being written; ask again"
            )
        if _held_pair(current, pair) != read_pair:
            raise Conflict(
                f"another request replaced the {pair[0].value}/{pair[1]} description of assessment "
                f"{assessment_id} meanwhile; read it, and ask again if a new one is still wanted"
            )
        # The one it replaces is kept (superseded), and the change is on the record.
        version = next_version(current, pair)
        entry = HistoryEntry(
            at=now,
            actor=requested_by or "api",
            action=HistoryAction.DESCRIPTION_WRITTEN,
            summary=f"{pair[0].value}/{pair[1]} description regenerated by {description.generator}",
            before=f"v{read_pair[0][0].version}" if read_pair[0] else None,
            after=f"v{version}",
        )
        stamped = description.model_copy(update={"written_by": requested_by, "written_at": now})
        replaced = replace_description(current, stamped, audio).model_copy(update={"updated_at": now})
        return add_history(replaced, entry)

    try:
        saved = pipeline.save_with_retries(services.repository, assessment, add_pair)
    except (Conflict, ConcurrentUpdate) as exc:
        # Audio objects are named by their text, so this one replaced no saved description's speech;
        # it stays in the bucket, named by no description unless one has the same words.
        logger.warning(
            "regenerated %s/%s description of assessment %s not saved (%s); audio object: %s",
            pair[0].value,
            pair[1],
            assessment_id,
            exc,
            audio.object_key or "none (speech skipped)",
        )
        if isinstance(exc, ConcurrentUpdate):
            raise Conflict(
                f"assessment {assessment_id} kept changing while its description was being saved; ask again"
            ) from exc
        raise
    [stored] = _held_pair(saved, pair)[0]
    return RegenerateDescriptionResponse(assessment_id=assessment_id, description=stored, audio=audio)


# --- the review loop -------------------------------------------------------------------------


def _review_services(services: ApiServices) -> reviewing.ReviewServices:
    if services.describer is None or services.speaker is None:
        raise RuntimeError("the API was wired without a describer or speaker")
    return reviewing.ReviewServices(
        repository=services.repository,
        objects=services.objects,
        describer=services.describer,
        speaker=services.speaker,
        valuation=services.valuation,
        references=services.references,
        on_reference_failure=services.on_reference_failure,
        parallel_descriptions=REVIEW_PARALLEL_DESCRIPTIONS,
    )


def review_photo(
    assessment_id: str,
    photo_id: str,
    request: ReviewPhotoRequest,
    reviewer: str,
    services: ApiServices,
    now: datetime,
) -> AssessmentView:
    """Record the caller's review of one photo; the updated assessment.

    Raises AssessmentNotFound, InvalidInputs (a label that contradicts itself), ReviewRefused (unknown
    or unreviewable photo; NotFinished: the assessment is not finished), Conflict (other writers kept
    saving first).
    """
    try:
        review = PhotoReview(reviewer=reviewer, reviewed_at=now, **request.model_dump())
    except ValidationError as exc:
        raise InvalidInputs(exc.errors()) from None
    try:
        reviewing.review_photo(_review_services(services), assessment_id, photo_id, review)
    except ConcurrentUpdate as exc:
        raise Conflict(
            f"assessment {assessment_id} kept changing while the review was saved; send it again"
        ) from exc
    return get_assessment(assessment_id, services)


def edit_description(
    assessment_id: str,
    language: str,
    style: DescriptionStyle,
    request: EditDescriptionRequest,
    editor: str,
    services: ApiServices,
    now: datetime,
) -> AssessmentView:
    """A person's text for one description; the updated assessment. Raises as review_photo does."""
    try:
        reviewing.edit_description(
            _review_services(services), assessment_id, style, language, request.text, editor, now
        )
    except ConcurrentUpdate as exc:
        raise Conflict(
            f"assessment {assessment_id} kept changing while the edit was saved; send it again"
        ) from exc
    return get_assessment(assessment_id, services)


def review_queue(services: ApiServices, limit: int) -> ReviewQueueView:
    if services.review_queue is None:
        raise RuntimeError("the API was wired without a review queue")
    return ReviewQueueView(entries=reviewing.review_queue(services.review_queue, limit))


def _require_finished(assessment: Assessment) -> None:
    # NEEDS_PHOTOS is finished too: its descriptions say that no photo could be assessed.
    if assessment.status not in (AssessmentStatus.COMPLETED, AssessmentStatus.NEEDS_PHOTOS):
        raise Conflict(
            f"assessment {assessment.assessment_id} is {assessment.status.value}; descriptions can be "
            "regenerated once it is COMPLETED (or NEEDS_PHOTOS)"
        )


def _pair_of(item: Description | AudioRecord) -> tuple[DescriptionStyle, str]:
    return (item.style, item.language)


def _held_pair(
    assessment: Assessment, pair: tuple[DescriptionStyle, str]
) -> tuple[list[Description], list[AudioRecord]]:
    """The description and audio an assessment holds for one (style, language)."""
    return (
        [d for d in assessment.descriptions if _pair_of(d) == pair],
        [a for a in assessment.audio if _pair_of(a) == pair],
    )
