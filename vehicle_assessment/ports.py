"""The ports: every outside service the pipeline uses, as a Protocol.

Local adapters (``adapters/local``) and AWS adapters (``adapters/aws``) implement these; the
domain and the pipeline only ever see these interfaces.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from vehicle_assessment.domain.events import AssessmentFinished
from vehicle_assessment.domain.models import (
    Assessment,
    AssessmentStatus,
    Description,
    DescriptionRequest,
    DescriptionStyle,
    EncoderIdentity,
    Neighbour,
    PhotoFingerprint,
    PhotoRecord,
    PhotoReview,
    ReferenceLabel,
    ReferenceProvenance,
    ReuseMatch,
    ReviewQueueEntry,
    VehicleFacts,
)

if TYPE_CHECKING:  # numpy and PIL only for annotations: Lambdas that never touch pixels skip them
    import numpy as np
    from PIL import Image


# What "now" is: injected so that tests (and replays) control time.
Clock = Callable[[], datetime]


class PortError(Exception):
    """Base of the errors adapters raise; the message is meant for people."""


class ObjectNotFound(PortError):
    pass


class ObjectTooLarge(PortError):
    """An object is larger than the caller will hold in memory; none of its body was read."""

    def __init__(self, key: str, size: int, max_bytes: int) -> None:
        super().__init__(f"{key} is {size:,} bytes, more than the {max_bytes:,} read at most")
        self.key = key
        self.size = size
        self.max_bytes = max_bytes


class AssessmentNotFound(PortError):
    pass


class ConcurrentUpdate(PortError):
    """A whole-document save lost a race: the store no longer holds the revision the caller read.

    Nothing was written. The caller re-reads and re-applies its change where that change commutes
    with others (see ``pipeline.save_with_retries``), and otherwise reports a conflict.
    """


class VinDecoderUnavailable(PortError):
    """The decoding service could not be reached or answered nonsense; fall back to the VIN."""


class EncoderUnavailable(PortError):
    """The encoder could not be loaded (e.g. pretrained weights missing)."""


class IndexMismatch(PortError):
    """The reference index was built by another encoder than the one querying it."""


class ReferenceIndexEmpty(PortError):
    """The reference index holds no photos: nothing can be assessed until they are loaded."""


class StateFileUnusable(PortError):
    """A local state file is damaged, truncated or not ours; the message names it and the remedy."""


class ReferencePhotoUnusable(PortError):
    """A reviewed photo cannot become a reference (no stored bytes, or intake refuses them); nothing
    was added. The message says why."""


class EventPublishFailed(PortError):
    """An event was not accepted; the caller retries (a workflow step by Step Functions' Retry)."""


class ObjectStore(Protocol):
    def put(self, key: str, data: bytes, content_type: str) -> None: ...

    def get(self, key: str, version_id: str | None = None, max_bytes: int | None = None) -> bytes:
        """The object's bytes: the given version's, else the current one's. Raises ObjectNotFound.

        A store that keeps no versions raises ValueError for a version id: it cannot pin evidence.
        With ``max_bytes``, an object larger than that raises ObjectTooLarge before its body is read.
        """
        ...

    def exists(self, key: str) -> bool: ...


class AssessmentRepository(Protocol):
    def save(self, assessment: Assessment) -> Assessment:
        """Write the whole document, if the store still holds ``assessment.revision``.

        Optimistic locking with a version number: the write is conditional on the stored revision
        being the one the caller read, and stores it plus one
        (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/BestPractices_OptimisticLocking.html).
        Revision 0 means "never stored": the save creates the assessment, and only if no assessment
        with that id holds a revision yet. Returns the assessment as written, at its new revision
        (save that to save again). Raises ConcurrentUpdate, having written nothing, when another
        writer saved (or created it) after the caller's read.
        """
        ...

    def get(self, assessment_id: str) -> Assessment: ...

    def list_by_vin(self, vin: str, limit: int = 50) -> list[Assessment]: ...


# --- the workflow's repository: upload counting and status moves on top of the port above -------


class UploadOutcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    UNKNOWN_ASSESSMENT = "unknown_assessment"


@dataclass(frozen=True)
class PhotoReceipt:
    outcome: UploadOutcome
    received: int
    expected: int
    status: AssessmentStatus | None
    reason: str | None = None

    @property
    def completes(self) -> bool:
        """True for exactly one delivery per assessment: the one that counted the last photo."""
        return self.outcome == UploadOutcome.ACCEPTED and self.received == self.expected

    @property
    def ready(self) -> bool:
        """All photos are in and the workflow has not moved the status on (start may be retried)."""
        return self.received >= self.expected and self.status == AssessmentStatus.AWAITING_PHOTOS

    @classmethod
    def not_counted(
        cls,
        photo_id: str,
        object_key: str,
        counted_as: str | None,
        received_photo_ids: Iterable[str],
        expected: int,
        status: AssessmentStatus,
        version_id: str | None = None,
        counted_version: str | None = None,
    ) -> PhotoReceipt:
        """Why a photo of an existing assessment was not counted: a redelivery, or a rejection.

        Photos are counted by their canonical id; `counted_as` is the object key (and
        `counted_version` the S3 version) under which this photo id was counted, if it was. The same
        object version again is a redelivery (DUPLICATE); another object for the same photo id
        (another spelling of its key) or another version of the same key (a re-upload) is a second
        object, rejected: the version that was counted is the evidence that is analysed.
        """
        received = set(received_photo_ids)
        if photo_id in received:
            if counted_as in (None, object_key):
                if version_id is None or counted_version in (None, version_id):
                    return cls(UploadOutcome.DUPLICATE, len(received), expected, status)
                reason = (
                    f"photo {photo_id!r} was already received as version {counted_version!r}; "
                    f"the re-upload (version {version_id!r}) is not used"
                )
                return cls(UploadOutcome.REJECTED, len(received), expected, status, reason)
            reason = f"photo {photo_id!r} was already received as {counted_as!r}"
            return cls(UploadOutcome.REJECTED, len(received), expected, status, reason)
        if status != AssessmentStatus.AWAITING_PHOTOS:
            reason = f"assessment is {status.value}, no longer accepting photos"
        else:
            reason = f"already has {len(received)} of {expected} photos"
        return cls(UploadOutcome.REJECTED, len(received), expected, status, reason)

    @classmethod
    def unknown(cls, assessment_id: str) -> PhotoReceipt:
        return cls(UploadOutcome.UNKNOWN_ASSESSMENT, 0, 0, None, f"no assessment with id {assessment_id!r}")


@dataclass(frozen=True)
class RejectedUpload:
    object_key: str
    reason: str
    size_bytes: int | None
    content_type: str | None
    at: str


@dataclass(frozen=True)
class AwaitingAssessment:
    assessment_id: str
    created_at: str
    received: int
    expected: int


@dataclass(frozen=True)
class AssessmentFilter:
    """Which assessments a list shows (GET /assessments); None: any."""

    status: AssessmentStatus | None = None
    vin: str | None = None
    needs_review: bool | None = None

    def matches(self, assessment: Assessment) -> bool:
        return (
            (self.status is None or assessment.status == self.status)
            and (self.vin is None or assessment.vin == self.vin)
            and (self.needs_review is None or assessment.needs_review == self.needs_review)
        )


@dataclass(frozen=True)
class AssessmentPage:
    assessments: list[Assessment]
    next_token: str | None  # None on the last page


class WorkflowRepository(AssessmentRepository, Protocol):
    """What the AWS services (uploads, workflow steps, sweeper, API) need beyond plain storage.

    Every write is conditional: a photo is counted once per object key and only while its
    assessment awaits photos; a status moves only from the states the caller names; a whole
    document is saved only at the revision it was read at (``save``).

    Which writes move the revision on: ``create`` stores revision 1; ``save`` and ``mark_status``
    add one, because both write the status (a save from a read before a status move would undo
    it). ``record_photo``, ``reject_upload`` and ``save_photo_result`` do not: each writes its own
    map entry, which ``save`` never writes and every read merges over the document
    (``adapters/upload_tracking.py``), so no save undoes them; and a workflow step that records
    photo results and then saves the document it read needs no second read. (``save_photo_result``
    also sets the document's encoder: the same one for every photo of a run, and the workflow
    saves no document while its photo Map runs.)
    """

    def create(self, assessment: Assessment) -> bool:
        """Store a new assessment; False (and nothing written) if the id already exists."""
        ...

    def exists(self, assessment_id: str) -> bool: ...

    def record_photo(
        self,
        assessment_id: str,
        object_key: str,
        size_bytes: int,
        content_type: str,
        now: datetime,
        photo_id: str,
        filename: str,
        version_id: str | None = None,
    ) -> PhotoReceipt:
        """Count one uploaded photo, exactly once, and only while the assessment awaits photos.

        ``version_id`` is the S3 object version the upload event named: it is kept with the photo
        (``PhotoRecord.object_version``) so every later read gets those bytes, not a re-upload's.
        """
        ...

    def reject_upload(
        self,
        assessment_id: str | None,
        object_key: str,
        reason: str,
        now: datetime,
        size_bytes: int | None = None,
        content_type: str | None = None,
    ) -> bool:
        """Keep a rejected upload and why: on its assessment, else as an orphan. True if on one."""
        ...

    def rejected_uploads(self, assessment_id: str) -> list[RejectedUpload]:
        """Oldest first; raises AssessmentNotFound."""
        ...

    def rejected_uploads_overflow(self, assessment_id: str) -> int:
        """Rejections past MAX_REJECTED_UPLOADS_PER_ASSESSMENT, kept as orphans naming the assessment."""
        ...

    def orphan_upload(self, object_key: str) -> RejectedUpload | None: ...

    def upload_progress(self, assessment_id: str) -> PhotoReceipt:
        """Raises AssessmentNotFound."""
        ...

    def mark_status(
        self,
        assessment_id: str,
        new_status: AssessmentStatus,
        from_statuses: Iterable[AssessmentStatus],
        now: datetime,
        only_if_photos_missing: bool = False,
    ) -> bool:
        """Move the status on only from the given ones; False when the assessment was elsewhere."""
        ...

    def awaiting_before(self, cutoff: datetime, limit: int = 100) -> list[AwaitingAssessment]:
        """Assessments still awaiting photos that were created before ``cutoff``, oldest first."""
        ...

    def save_photo_result(self, assessment_id: str, record: PhotoRecord, encoder: EncoderIdentity) -> None:
        """One analysed photo; parallel calls for other photos never overwrite it.

        Raises AssessmentNotFound.
        """
        ...

    def list_assessments(
        self, which: AssessmentFilter, limit: int, next_token: str | None = None
    ) -> AssessmentPage:
        """Newest first (creation time, then id), at most ``limit``, from an index (never a scan).

        ``next_token`` is the previous page's; raises ValueError for a token this repository did not issue.
        """
        ...


class EventPublisher(Protocol):
    def publish(self, event: AssessmentFinished) -> None:
        """Hand one event to the bus, or raise EventPublishFailed: never drop it silently.

        At-least-once: publishing the same event again is allowed; consumers dedupe on event_id.
        """
        ...


# --- the upload service's other ports ---------------------------------------------------------


@dataclass(frozen=True)
class ObjectHead:
    first_bytes: bytes
    metadata: dict[str, str]
    size: int | None
    version_id: str | None = None  # the version that was read (None: the store keeps no versions)


class MediaLinks(Protocol):
    """Short-lived links a browser can GET stored objects with (photos, audio, reference copies)."""

    def link(self, key: str, version_id: str | None, expires_in_s: int) -> str:
        """A URL that reads ``key`` (that version, when given) for ``expires_in_s`` seconds."""
        ...


class ObjectProbe(Protocol):
    def head(self, key: str, n_bytes: int, version_id: str | None = None) -> ObjectHead:
        """The first bytes and user metadata of an object (of that version, if given); raises
        ObjectNotFound."""
        ...


class WorkflowStarter(Protocol):
    def start(self, assessment_id: str) -> bool:
        """Start the workflow for an assessment (idempotent); False if it had already finished."""
        ...


class ImageEncoder(Protocol):
    @property
    def identity(self) -> EncoderIdentity: ...

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """One batch in, an (n, d) float32 array of L2-normalised rows out."""
        ...


@runtime_checkable
class PreparingEncoder(Protocol):
    """An ImageEncoder whose per-image preprocessing (resize, crop) can run ahead of its batch, on the
    caller's threads: the local pipeline and the index build prepare each photo in its intake thread, so
    only the forward pass waits for the batch. The local OpenCLIP encoder is one; a remote encoder is
    not (its preprocessing runs at the endpoint). Only methods here: isinstance() reads each member, and
    reading ``identity`` can call a remote endpoint."""

    def prepare(self, image: Image.Image) -> Any:
        """Thread-safe; the result goes to ``embed_prepared``."""
        ...

    def embed_prepared(self, prepared: Sequence[Any]) -> np.ndarray:
        """Equal to ``embed`` of the images prepared."""
        ...


@dataclass(frozen=True)
class ReferenceItem:
    source: str
    sha256: str
    label: ReferenceLabel
    vector: np.ndarray
    # Set for a photo learnt from a review (see ReferenceFeedback); None for a labelled set's photo.
    provenance: ReferenceProvenance | None = None
    # Which collection the photo comes from (e.g. the dataset named in labels.csv's `source` column,
    # or "review"): `evaluate` warns when a label class comes from one origin only. None: unrecorded.
    origin: str | None = None

    def unit_vector(self, dimension: int) -> np.ndarray:
        """The vector L2-normalised as float32, as every index stores it (cosine = dot product).

        Raises ValueError for another dimension, or a zero or non-finite vector."""
        import numpy as np  # here, not at import: Lambdas that never touch vectors skip numpy

        vector = np.asarray(self.vector, dtype=np.float32)
        if vector.shape != (dimension,):
            raise ValueError(f"{self.source}: vector shape {vector.shape} != ({dimension},)")
        norm = float(np.linalg.norm(vector))
        if not np.isfinite(norm) or norm == 0:
            raise ValueError(f"{self.source}: vector is zero or not finite")
        return (vector / norm).astype(np.float32)


class ReferenceIndex(Protocol):
    @property
    def identity(self) -> EncoderIdentity | None: ...

    def search(self, vectors: np.ndarray, k: int) -> list[list[Neighbour]]: ...

    def count(self) -> int:
        """Reference photos held; 0 means nothing can be assessed yet."""
        ...


class WritableReferenceIndex(ReferenceIndex, Protocol):
    def bind(self, identity: EncoderIdentity) -> None:
        """Record (or check) which encoder this index holds vectors of."""
        ...

    def known_sources(self) -> set[str]: ...

    def add(self, items: Sequence[ReferenceItem]) -> None: ...

    def close(self) -> None: ...


class ReplaceableReferenceIndex(WritableReferenceIndex, Protocol):
    def upsert(self, item: ReferenceItem) -> None:
        """Add `item`, replacing every reference with the same `source` (its label may change): a
        source is held at most once afterwards."""
        ...


class VinDecoder(Protocol):
    def decode(self, vin: str, model_year: int | None) -> VehicleFacts:
        """Raise VinDecoderUnavailable when the service cannot answer."""
        ...


class Describer(Protocol):
    def describe(
        self, request: DescriptionRequest, style: DescriptionStyle, language: str, creativity: float
    ) -> Description: ...


@dataclass(frozen=True)
class SpeechClip:
    audio: bytes
    content_type: str
    extension: str


class DescriptionUnavailable(PortError):
    """Neither the language model nor the template describer could write this description."""


class SpeechUnavailable(PortError):
    """No speech could be made (engine missing, language unsupported); record why and go on."""


class Speaker(Protocol):
    def synthesize(self, text: str, language: str) -> SpeechClip: ...


# --- the review loop --------------------------------------------------------------------------


class ReviewQueue(Protocol):
    """Assessments with photos awaiting a person; both repositories implement it without scans
    (DynamoDB: a sparse GSI; SQLite: an indexed column)."""

    def review_queue(self, limit: int) -> list[ReviewQueueEntry]:
        """Oldest first, at most ``limit``."""
        ...


class PhotoRegistryUnavailable(PortError):
    """The photo registry could not be read or written (a store outage, throttling past the retries)."""


class PhotoRegistry(Protocol):
    """Every analysed photo, remembered for the reused-photo check and for learning from reviews."""

    def remember(self, fingerprint: PhotoFingerprint) -> None:
        """Idempotent per (assessment_id, photo_id)."""
        ...

    def find_reuse(self, fingerprint: PhotoFingerprint) -> list[ReuseMatch]:
        """Photos of OTHER vehicles (another VIN) that this one matches, best first; thresholds are the
        adapter's settings (measured, see the README)."""
        ...

    def fingerprint(self, assessment_id: str, photo_id: str) -> PhotoFingerprint | None: ...


class ReferenceFeedback(Protocol):
    """Adds a reviewed photo to the reference index with its reviewed label and provenance."""

    def add_reviewed_photo(self, assessment: Assessment, photo: PhotoRecord, review: PhotoReview) -> str:
        """The reference's source id. Reuses the photo's stored embedding when its encoder is the
        index's, else embeds the stored photo again; never mixes encoders (raises IndexMismatch)."""
        ...
