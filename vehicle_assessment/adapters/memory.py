"""In-memory adapters: the WorkflowRepository, an ObjectStore and an EventPublisher held in memory.

For fast tests of the AWS services without moto, and for a single-process local mode that wants
the upload-counting workflow without DynamoDB. The repository keeps the DynamoDB adapter's
semantics (``adapters/aws/dynamodb.py``), checked by one contract test run against both:

* every conditional write checks and writes under one lock, as DynamoDB applies writes to an item
  one at a time: of two photos racing for the last slot exactly one is counted;
* photos are counted by their canonical photo id (a set), never by a counter, so redeliveries and
  other spellings of one photo's key count once;
* an assessment keeps at most MAX_REJECTED_UPLOADS_PER_ASSESSMENT rejections; further ones become
  orphans naming it, counted in ``rejected_uploads_overflow``;
* the stored assessment goes through JSON like the DynamoDB document, so what is read back is a
  copy, never the caller's object;
* on read, the status and ``updated_at`` of the last status move win over the document's, and the
  uploads and photo results are merged into ``photos``;
* ``save`` is optimistic locking on a revision: ``create`` stores 1, ``save`` and ``mark_status``
  add one, and a save carrying another revision than the stored one raises ConcurrentUpdate.

Not kept: the TTL (nothing expires) and durability (a process's lifetime).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from vehicle_assessment.adapters.upload_tracking import (
    decode_page_token,
    encode_page_token,
    tracked_assessment,
)
from vehicle_assessment.domain import limits
from vehicle_assessment.domain.events import AssessmentFinished
from vehicle_assessment.domain.models import (
    Assessment,
    AssessmentStatus,
    EncoderIdentity,
    PhotoFingerprint,
    PhotoRecord,
    ReuseMatch,
    ReviewQueueEntry,
)
from vehicle_assessment.domain.reuse import match_candidates
from vehicle_assessment.domain.review import queue_entry, queue_sort_key
from vehicle_assessment.domain.rules import ReuseSettings
from vehicle_assessment.ports import (
    AssessmentFilter,
    AssessmentNotFound,
    AssessmentPage,
    AwaitingAssessment,
    ConcurrentUpdate,
    EventPublishFailed,
    ObjectNotFound,
    ObjectTooLarge,
    PhotoReceipt,
    PhotoRegistryUnavailable,
    RejectedUpload,
    UploadOutcome,
)


def _iso(moment: datetime) -> str:
    """The DynamoDB adapter's fixed-width UTC form: string order is time order."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class _Item:
    """One assessment as the DynamoDB item holds it: the document plus upload tracking."""

    document: dict[str, Any]  # Assessment.model_dump(mode="json")
    status: AssessmentStatus
    updated_at: str
    created_at: str
    expected_photos: int
    received_photo_keys: set[str] = field(default_factory=set)  # canonical photo ids, as DynamoDB's
    uploads: dict[str, dict[str, Any]] = field(default_factory=dict)  # photo id -> the upload
    rejected_uploads: dict[str, RejectedUpload] = field(default_factory=dict)
    rejected_uploads_overflow: int = 0
    photo_results: dict[str, dict[str, Any]] = field(default_factory=dict)
    revision: int = 1  # as DynamoDB's item: created at 1, one more per save or status move

    def store(self, assessment: Assessment) -> None:
        self.document = assessment.model_dump(mode="json", exclude={"revision"})
        self.status = assessment.status
        self.updated_at = _iso(assessment.updated_at)
        self.created_at = _iso(assessment.created_at)
        self.expected_photos = assessment.expected_photos

    @property
    def index_key(self) -> str:
        """The GSI sort key: creation time, then id."""
        return f"{self.created_at}#{self.document['assessment_id']}"


class InMemoryAssessmentRepository:
    """Implements WorkflowRepository in a dict; safe to share between threads."""

    def __init__(self) -> None:
        self._items: dict[str, _Item] = {}
        self._orphans: dict[str, RejectedUpload] = {}
        self._lock = threading.Lock()

    # -- AssessmentRepository ----------------------------------------------------------------

    def create(self, assessment: Assessment) -> bool:
        with self._lock:
            if assessment.assessment_id in self._items:
                return False
            self._items[assessment.assessment_id] = self._new_item(assessment)
            return True

    def save(self, assessment: Assessment) -> Assessment:
        """The document and status, at the revision read (0: a new one); upload tracking is kept."""
        with self._lock:
            item = self._items.get(assessment.assessment_id)
            stored = 0 if item is None else item.revision
            if assessment.revision != stored:
                raise ConcurrentUpdate(
                    f"assessment {assessment.assessment_id} was read at revision {assessment.revision} "
                    f"but is at {stored}"
                )
            if item is None:
                item = self._items[assessment.assessment_id] = self._new_item(assessment)
            else:
                item.store(assessment)
                item.revision += 1
            return assessment.model_copy(update={"revision": item.revision})

    def get(self, assessment_id: str) -> Assessment:
        with self._lock:
            return self._assessment(self._item(assessment_id))

    def review_queue(self, limit: int) -> list[ReviewQueueEntry]:
        """Oldest first (the DynamoDB adapter's sparse GSI3 order); in memory, every item is looked at."""
        with self._lock:
            entries = [e for item in self._items.values() if (e := queue_entry(self._assessment(item)))]
        return sorted(entries, key=queue_sort_key)[:limit]

    def exists(self, assessment_id: str) -> bool:
        with self._lock:
            return assessment_id in self._items

    def list_by_vin(self, vin: str, limit: int = 50) -> list[Assessment]:
        with self._lock:
            found = sorted(
                (item for item in self._items.values() if item.document["vin"] == vin),
                key=lambda item: item.index_key,
                reverse=True,  # newest first
            )
            return [self._assessment(item) for item in found[:limit]]

    # -- upload tracking ---------------------------------------------------------------------

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
        with self._lock:
            item = self._items.get(assessment_id)
            if item is None:
                return PhotoReceipt.unknown(assessment_id)
            received = item.received_photo_keys
            countable = item.status == AssessmentStatus.AWAITING_PHOTOS and (
                not received or (photo_id not in received and len(received) < item.expected_photos)
            )
            if not countable:
                counted = item.uploads.get(photo_id, {})
                return PhotoReceipt.not_counted(
                    photo_id,
                    object_key,
                    counted.get("object_key"),
                    received,
                    item.expected_photos,
                    item.status,
                    version_id,
                    counted.get("version_id"),
                )
            received.add(photo_id)
            item.uploads[photo_id] = {
                "photo_id": photo_id,
                "object_key": object_key,
                "filename": filename,
                "size_bytes": size_bytes,
                "content_type": content_type,
                "received_at": _iso(now),
                "version_id": version_id,
            }
            item.updated_at = _iso(now)
            return PhotoReceipt(UploadOutcome.ACCEPTED, len(received), item.expected_photos, item.status)

    def reject_upload(
        self,
        assessment_id: str | None,
        object_key: str,
        reason: str,
        now: datetime,
        size_bytes: int | None = None,
        content_type: str | None = None,
    ) -> bool:
        rejected = RejectedUpload(object_key, reason, size_bytes, content_type, _iso(now))
        with self._lock:
            item = self._items.get(assessment_id) if assessment_id is not None else None
            if item is None:
                self._orphans[object_key] = rejected
                return False
            kept = item.rejected_uploads
            if object_key in kept or len(kept) < limits.MAX_REJECTED_UPLOADS_PER_ASSESSMENT:
                kept[object_key] = rejected
                return True
            if object_key not in self._orphans:  # a redelivered rejection counts once
                item.rejected_uploads_overflow += 1
            self._orphans[object_key] = rejected
            return False

    def rejected_uploads_overflow(self, assessment_id: str) -> int:
        with self._lock:
            return self._item(assessment_id).rejected_uploads_overflow

    def rejected_uploads(self, assessment_id: str) -> list[RejectedUpload]:
        with self._lock:
            entries = self._item(assessment_id).rejected_uploads.values()
            return sorted(entries, key=lambda r: (r.at, r.object_key))

    def orphan_upload(self, object_key: str) -> RejectedUpload | None:
        with self._lock:
            return self._orphans.get(object_key)

    def upload_progress(self, assessment_id: str) -> PhotoReceipt:
        with self._lock:
            item = self._item(assessment_id)
            return PhotoReceipt(
                UploadOutcome.ACCEPTED, len(item.received_photo_keys), item.expected_photos, item.status
            )

    def mark_status(
        self,
        assessment_id: str,
        new_status: AssessmentStatus,
        from_statuses: Iterable[AssessmentStatus],
        now: datetime,
        only_if_photos_missing: bool = False,
    ) -> bool:
        with self._lock:
            item = self._items.get(assessment_id)
            if item is None or item.status not in set(from_statuses):
                return False
            if only_if_photos_missing and len(item.received_photo_keys) >= item.expected_photos:
                return False
            item.status = new_status
            item.updated_at = _iso(now)
            item.revision += 1
            return True

    def awaiting_before(self, cutoff: datetime, limit: int = 100) -> list[AwaitingAssessment]:
        bound = _iso(cutoff)
        with self._lock:
            awaiting = sorted(
                (
                    item
                    for item in self._items.values()
                    if item.status == AssessmentStatus.AWAITING_PHOTOS and item.index_key < bound
                ),
                key=lambda item: item.index_key,
            )
            return [
                AwaitingAssessment(
                    assessment_id=item.document["assessment_id"],
                    created_at=item.created_at,
                    received=len(item.received_photo_keys),
                    expected=item.expected_photos,
                )
                for item in awaiting[:limit]
            ]

    def save_photo_result(self, assessment_id: str, record: PhotoRecord, encoder: EncoderIdentity) -> None:
        with self._lock:
            item = self._item(assessment_id)
            item.photo_results[record.photo_id] = record.model_dump(mode="json")
            item.document["encoder"] = encoder.model_dump(mode="json")

    def list_assessments(
        self, which: AssessmentFilter, limit: int, next_token: str | None = None
    ) -> AssessmentPage:
        after = decode_page_token(next_token) if next_token else None
        with self._lock:
            newest_first = sorted(self._items.values(), key=lambda item: item.index_key, reverse=True)
            found: list[tuple[str, Assessment]] = []
            for item in newest_first:
                if after is not None and item.index_key >= after:
                    continue
                assessment = self._assessment(item)
                if which.matches(assessment):
                    found.append((item.index_key, assessment))
                if len(found) > limit:
                    break
        page = found[:limit]
        token = encode_page_token(page[-1][0]) if len(found) > limit else None
        return AssessmentPage([assessment for _, assessment in page], token)

    # -- helpers -----------------------------------------------------------------------------

    @staticmethod
    def _new_item(assessment: Assessment) -> _Item:
        item = _Item(document={}, status=assessment.status, updated_at="", created_at="", expected_photos=0)
        item.store(assessment)
        return item

    def _item(self, assessment_id: str) -> _Item:
        item = self._items.get(assessment_id)
        if item is None:
            raise AssessmentNotFound(f"no assessment with id {assessment_id!r}")
        return item

    @staticmethod
    def _assessment(item: _Item) -> Assessment:
        return tracked_assessment(
            item.document, item.status.value, item.updated_at, item.uploads, item.photo_results, item.revision
        )


class InMemoryObjectStore:
    """Implements ObjectStore in a dict, versioned like the upload bucket: every put is a new version
    (ids "1", "2", ... per key) and a read names one or gets the current (last) one."""

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, str]] = {}  # the current version
        self.versions: dict[str, list[bytes]] = {}

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.objects[key] = (bytes(data), content_type)
        self.versions.setdefault(key, []).append(bytes(data))

    def current_version(self, key: str) -> str:
        """The version id the last put of ``key`` got (what an S3 event would name)."""
        if key not in self.versions:
            raise ObjectNotFound(f"no object at {key!r}")
        return str(len(self.versions[key]))

    def get(self, key: str, version_id: str | None = None, max_bytes: int | None = None) -> bytes:
        if version_id is None:
            try:
                data = self.objects[key][0]
            except KeyError:
                raise ObjectNotFound(f"no object at {key!r}") from None
        else:
            versions = self.versions.get(key, [])
            if not version_id.isdigit() or not 1 <= int(version_id) <= len(versions):
                raise ObjectNotFound(f"no object at {key!r} version {version_id!r}")
            data = versions[int(version_id) - 1]
        if max_bytes is not None and len(data) > max_bytes:
            raise ObjectTooLarge(repr(key), len(data), max_bytes)
        return data

    def exists(self, key: str) -> bool:
        return key in self.objects


class InMemoryEventPublisher:
    """EventPublisher keeping what it was given, in order; ``failures`` makes the next publishes raise.

    Re-publications are kept too (at-least-once, as EventBridge): ``events`` is what a bus received.
    """

    def __init__(self, failures: int = 0) -> None:
        self.events: list[AssessmentFinished] = []
        self.failures = failures
        self._lock = threading.Lock()

    def publish(self, event: AssessmentFinished) -> None:
        with self._lock:
            if self.failures > 0:
                self.failures -= 1
                raise EventPublishFailed(f"the in-memory bus refused {event.event_id} (failure injected)")
            self.events.append(event.model_copy())


class InMemoryPhotoRegistry:
    """PhotoRegistry in a dict: every fingerprint is a candidate, judged by the same match rule as the
    SQLite and DynamoDB registries (domain/reuse.py). ``failures`` makes the next calls raise, as an
    unreachable registry would."""

    def __init__(self, settings: ReuseSettings | None = None, failures: int = 0) -> None:
        self.settings = settings or ReuseSettings()
        self.fingerprints: dict[tuple[str, str], PhotoFingerprint] = {}
        self.failures = failures
        self._lock = threading.Lock()

    def _maybe_fail(self) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise PhotoRegistryUnavailable("the in-memory photo registry refused (failure injected)")

    def remember(self, fingerprint: PhotoFingerprint) -> None:
        with self._lock:
            self._maybe_fail()
            self.fingerprints[(fingerprint.assessment_id, fingerprint.photo_id)] = fingerprint.model_copy()

    def find_reuse(self, fingerprint: PhotoFingerprint) -> list[ReuseMatch]:
        with self._lock:
            self._maybe_fail()
            candidates = list(self.fingerprints.values())
        return match_candidates(fingerprint, candidates, self.settings)

    def fingerprint(self, assessment_id: str, photo_id: str) -> PhotoFingerprint | None:
        with self._lock:
            return self.fingerprints.get((assessment_id, photo_id))
