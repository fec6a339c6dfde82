"""S3 upload events → counted photos → one workflow execution per assessment.

Two key layouts are accepted (the grammar, and the photo identity, are ``domain/upload_keys.py``;
a key that fits neither is refused here, before anything is read, so the workflow never meets a key
the object store refuses):

* ``uploads/{assessment_id}/{n}.jpg`` — the presigned POSTs the API hands out (keys fixed by
  the server). The assessment exists already, in AWAITING_PHOTOS.
* ``incoming/{vin}/{batch}/{photo_name}`` — direct drops (e.g. a partner's S3 sync). The first photo
  of a batch creates the assessment from its S3 user metadata (``color``, ``mileage``,
  ``estimate-usd``, ``expected-photos``) under an id derived from ``vin/batch`` (UUIDv5), so
  concurrent first photos converge on one assessment; the first writer's metadata wins.

S3 notifications are at-least-once and unordered. Each photo is counted by its canonical photo id
with one conditional DynamoDB update, so duplicates, reordering and two spellings of one photo count
once; the single delivery that counts the last photo starts the state machine with
``name=assessment_id`` (a redelivery after a failed start retries it; ExecutionAlreadyExists means it
is already running).

Nothing is dropped silently: a rejected upload (too large, not an image, extra photo, a second object
for a photo already counted, finished assessment) is recorded on its assessment with the reason. An
upload that names no assessment (unknown id, bad layout, invalid VIN or metadata) becomes an
orphan-upload item in the table (see ``adapters/aws/dynamodb.py``), is logged, and is counted by the
handler's ``UploadOrphaned`` metric; the object itself stays in S3 for the bucket's lifecycle rule to
expire. Events for any bucket but the upload bucket are refused (logged and counted only).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import unquote_plus

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vehicle_assessment.domain import limits, upload_keys
from vehicle_assessment.domain.content_type import sniff_content_type
from vehicle_assessment.domain.models import Assessment, AssessmentInputs, AssessmentStatus
from vehicle_assessment.domain.vin import InvalidVin
from vehicle_assessment.pipeline import new_assessment
from vehicle_assessment.ports import (
    ObjectNotFound,
    ObjectProbe,
    UploadOutcome,
    WorkflowRepository,
    WorkflowStarter,
)

# Enough bytes for every signature sniff_content_type knows (WebP needs 12).
SNIFF_BYTES = 16
# Re-exported: the key grammar and the photo identity live in domain/upload_keys.py.
INCOMING_NAMESPACE = upload_keys.INCOMING_NAMESPACE
# S3 user metadata is always text: numbers are read from plain decimal notation only, so "1e400",
# "nan", "inf", "true" or "٣" never become numbers.
_WHOLE_NUMBER = re.compile(r"[0-9]{1,15}")
_DECIMAL_NUMBER = re.compile(r"[0-9]{1,15}(\.[0-9]{1,15})?")


# --- the event ------------------------------------------------------------------------------


class _S3Object(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    key: str
    size: int = Field(default=0, ge=0)
    # "The object version if bucket is versioning-enabled, otherwise null" (ours is versioned):
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html
    version_id: str | None = Field(default=None, alias="versionId", min_length=1, max_length=1024)


class _S3Bucket(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str


class _S3Entity(BaseModel):
    model_config = ConfigDict(extra="ignore")
    bucket: _S3Bucket
    object: _S3Object


class _S3Record(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    event_name: str = Field(alias="eventName")
    s3: _S3Entity


class S3Notification(BaseModel):
    """An S3 event notification as it arrives in an SQS message body."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    records: list[_S3Record] = Field(default_factory=list, alias="Records")
    event: str | None = Field(default=None, alias="Event")  # "s3:TestEvent" when the queue is wired


class UploadedObject(BaseModel):
    model_config = ConfigDict(frozen=True)
    bucket: str
    key: str  # decoded
    size: int
    version_id: str | None = None  # the S3 version the event names; pinned when the photo is counted


@dataclass(frozen=True)
class QueueMessage:
    """What one queue message carries: the created objects, and why anything else was not used."""

    uploads: list[UploadedObject]
    ignored: list[str]  # one reason per message or record that is no object creation
    test_event: bool = False  # S3's "s3:TestEvent", sent once when the notification is configured


def read_queue_message(body: str | Mapping[str, Any]) -> QueueMessage:
    """Read an S3 event notification, raw or in an SNS envelope. Raises ValueError only for a body
    that is not JSON at all (the queue retries it, then keeps it in the dead-letter queue)."""
    too_deep = QueueMessage([], ["not an S3 event notification: JSON nested too deeply to read"])
    try:
        data: Any = json.loads(body) if isinstance(body, str) else body
    except RecursionError:
        return too_deep
    # S3 → SNS → SQS without raw message delivery: the S3 event is the JSON text in "Message".
    if (
        isinstance(data, Mapping)
        and data.get("Type") == "Notification"
        and isinstance(data.get("Message"), str)
    ):
        try:
            data = json.loads(data["Message"])
        except ValueError:
            return QueueMessage([], ["SNS notification whose Message is not JSON"])
        except RecursionError:
            return too_deep
    if not isinstance(data, Mapping):
        return QueueMessage([], [f"not an S3 event notification: a JSON {type(data).__name__}"])
    if data.get("Event") == "s3:TestEvent":
        return QueueMessage([], [], test_event=True)
    records = data.get("Records")
    if not isinstance(records, list) or not records:
        return QueueMessage([], ["not an S3 event notification: no Records"])
    created: list[UploadedObject] = []
    ignored: list[str] = []
    for number, raw in enumerate(records):
        try:
            record = _S3Record.model_validate(raw)
        except ValidationError:
            ignored.append(f"record {number} is not an S3 event record")
            continue
        if not record.event_name.startswith("ObjectCreated:"):
            ignored.append(f"record {number} is {record.event_name[:60]!r}, not an object creation")
            continue
        # S3 URL-encodes keys in events ("uploads/a/my+photo.jpg" for "my photo.jpg").
        key = unquote_plus(record.s3.object.key)
        created.append(
            UploadedObject(
                bucket=record.s3.bucket.name,
                key=key,
                size=record.s3.object.size,
                version_id=record.s3.object.version_id,
            )
        )
    return QueueMessage(created, ignored)


def parse_s3_notification(body: str | Mapping[str, Any]) -> list[UploadedObject]:
    """The created objects an S3 notification names (none for S3's test event)."""
    return read_queue_message(body).uploads


@dataclass(frozen=True)
class UploadServices:
    repository: WorkflowRepository
    probe: ObjectProbe
    starter: WorkflowStarter


@dataclass(frozen=True)
class UploadRules:
    max_upload_bytes: int
    default_expected_photos: int
    # Events naming any other bucket are refused (None: tests that drive handle_upload directly).
    upload_bucket: str | None = None


# --- the service ----------------------------------------------------------------------------


class UploadResultKind(StrEnum):
    STARTED = "started"  # this photo was the last one and the workflow was started
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"  # recorded on its assessment
    ORPHANED = "orphaned"  # no assessment to record it on: kept as an orphan-upload item
    FOREIGN_BUCKET = "foreign_bucket"  # not the upload bucket: refused, logged and counted only


@dataclass(frozen=True)
class UploadResult:
    kind: UploadResultKind
    object_key: str
    assessment_id: str | None = None
    reason: str | None = None
    received: int = 0
    expected: int = 0
    start_retried: bool = False


def photo_id_for(name: str) -> str:
    """The canonical id of a photo name (see ``domain/upload_keys.py``)."""
    return upload_keys.photo_id_for(name)


def incoming_assessment_id(vin: str, batch: str) -> str:
    return upload_keys.incoming_assessment_id(vin, batch)


class _NoObjects:
    """new_assessment only stores photos it is given; an AWS assessment opens with none."""

    def put(self, key: str, data: bytes, content_type: str) -> None:
        raise AssertionError("no photo is stored when an assessment is opened")

    def get(self, key: str, version_id: str | None = None, max_bytes: int | None = None) -> bytes:
        raise AssertionError("no photo is read when an assessment is opened")

    def exists(self, key: str) -> bool:
        return False


def open_assessment(
    inputs: AssessmentInputs, expected_photos: int, now: datetime, assessment_id: str | None = None
) -> Assessment:
    """A new assessment awaiting its photos. Raises InvalidVin before anything is stored."""
    opened = new_assessment(inputs, (), _NoObjects(), now, assessment_id)
    return opened.model_copy(
        update={"status": AssessmentStatus.AWAITING_PHOTOS, "expected_photos": expected_photos}
    )


def _metadata_number(meta: Mapping[str, str], names: tuple[str, ...], grammar: re.Pattern[str]) -> str | None:
    """The first of ``names`` that is set, checked against ``grammar``; raises ValueError."""
    for name in names:
        raw = meta.get(name)
        if raw:
            if not grammar.fullmatch(raw):
                kind = "whole number" if grammar is _WHOLE_NUMBER else "plain decimal number"
                raise ValueError(f"{name} {raw[:40]!r} is not a {kind}")
            return raw
    return None


def _inputs_from_metadata(
    vin: str, metadata: Mapping[str, str], default_expected: int
) -> tuple[AssessmentInputs, int]:
    """Raises ValueError (pydantic's ValidationError is one) with a readable reason."""
    meta = {k.lower(): v.strip() for k, v in metadata.items()}
    color = meta.get("color") or meta.get("colour") or None
    mileage = _metadata_number(meta, ("mileage",), _WHOLE_NUMBER)
    estimate = _metadata_number(meta, ("estimate-usd", "estimate_usd"), _DECIMAL_NUMBER)
    expected_raw = _metadata_number(meta, ("expected-photos", "expected_photos"), _WHOLE_NUMBER)
    expected = int(expected_raw) if expected_raw else default_expected
    if not 1 <= expected <= limits.MAX_EXPECTED_PHOTOS:
        raise ValueError(f"expected-photos {expected} is outside 1..{limits.MAX_EXPECTED_PHOTOS}")
    # The strings are plain numerals now; AssessmentInputs applies the bounds every entry path shares.
    inputs = AssessmentInputs.model_validate(
        {
            "vin": vin,
            "color": color,
            "mileage": int(mileage) if mileage is not None else None,
            "estimate_usd": float(estimate) if estimate is not None else None,
        }
    )
    return inputs, expected


def _validation_reason(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())


def _open_incoming(
    repo: WorkflowRepository,
    assessment_id: str,
    vin: str,
    metadata: Mapping[str, str],
    rules: UploadRules,
    now: datetime,
) -> str | None:
    """Create the batch's assessment unless it exists; the reason it cannot be created, if any."""
    try:
        inputs, expected = _inputs_from_metadata(vin, metadata, rules.default_expected_photos)
        # created_at is the first photo's arrival; a writer that loses the race changes nothing.
        repo.create(open_assessment(inputs, expected, now, assessment_id))
    except InvalidVin as exc:
        problem = str(exc)  # "invalid VIN ...: why"
    except ValidationError as exc:
        problem = f"invalid metadata: {_validation_reason(exc)}"
    except ValueError as exc:
        problem = f"invalid metadata: {exc}"
    else:
        return None
    # Only the first writer's metadata matters: a later photo's odd metadata is no reason to refuse it.
    return None if repo.exists(assessment_id) else problem


def handle_upload(
    uploaded: UploadedObject, services: UploadServices, rules: UploadRules, now: datetime
) -> UploadResult:
    """Validate one uploaded object, count it, and start the workflow on the last photo.

    Raises only for transient trouble (AWS errors), so the message is retried; every
    rejection is recorded and returned.
    """
    repo = services.repository
    key = uploaded.key

    def reject(assessment_id: str | None, reason: str, content_type: str | None = None) -> UploadResult:
        # Recorded on the assessment when it exists, else as an orphan-upload item.
        on_assessment = repo.reject_upload(assessment_id, key, reason, now, uploaded.size, content_type)
        kind = UploadResultKind.REJECTED if on_assessment else UploadResultKind.ORPHANED
        return UploadResult(kind, key, assessment_id, reason)

    if rules.upload_bucket is not None and uploaded.bucket != rules.upload_bucket:
        # Another bucket's events on our queue: nothing of ours to record them on, and no object of
        # that bucket is ever read or counted (the handler logs and counts them).
        return UploadResult(UploadResultKind.FOREIGN_BUCKET, key, reason=f"bucket {uploaded.bucket!r}")

    # The one key grammar, checked here at the door: what passes is a key the object store accepts.
    try:
        parsed = upload_keys.parse_upload_key(key)
    except upload_keys.InvalidUploadKey as exc:
        return reject(exc.assessment_id, exc.reason)
    assessment_id, photo_name = parsed.assessment_id, parsed.name
    incoming = parsed.vin if isinstance(parsed, upload_keys.IncomingUploadKey) else None

    # Cheap checks first: the event carries the size.
    if uploaded.size > rules.max_upload_bytes:
        mb = rules.max_upload_bytes / (1024 * 1024)
        return reject(
            assessment_id,
            f"file too large: {uploaded.size / (1024 * 1024):.1f} MB exceeds {mb:.1f} MB",
        )
    try:
        head = services.probe.head(key, SNIFF_BYTES, uploaded.version_id)
    except ObjectNotFound:
        return reject(assessment_id, "object was deleted before it was checked")

    if incoming is not None:
        problem = _open_incoming(repo, assessment_id, incoming, head.metadata, rules, now)
        if problem is not None:
            return reject(assessment_id, problem)

    size = head.size if head.size is not None else uploaded.size
    if size == 0:
        return reject(assessment_id, "empty file (0 bytes)")
    if size > rules.max_upload_bytes:
        return reject(assessment_id, f"file too large: {size / (1024 * 1024):.1f} MB")
    content_type = sniff_content_type(head.first_bytes)
    if content_type is None:
        return reject(assessment_id, "not an image: content is not JPEG, PNG or WebP")

    # The version that was checked is the evidence: every later read asks for it by id.
    receipt = repo.record_photo(
        assessment_id,
        key,
        size,
        content_type,
        now,
        photo_id=parsed.photo_id,
        filename=photo_name,
        version_id=uploaded.version_id or head.version_id,
    )
    if receipt.outcome == UploadOutcome.UNKNOWN_ASSESSMENT:
        return reject(assessment_id, receipt.reason or "unknown assessment", content_type)
    if receipt.outcome == UploadOutcome.REJECTED:
        return reject(assessment_id, receipt.reason or "rejected", content_type)

    received, expected = receipt.received, receipt.expected
    if receipt.completes:
        services.starter.start(assessment_id)
        return UploadResult(UploadResultKind.STARTED, key, assessment_id, None, received, expected)
    if receipt.outcome == UploadOutcome.DUPLICATE and receipt.ready:
        # A redelivery of the last photo while the status still says AWAITING_PHOTOS: the earlier
        # start may have failed, so ask again. Step Functions answers a same-name, same-input start
        # of a running execution with that execution, so this never makes a second one.
        services.starter.start(assessment_id)
        return UploadResult(
            UploadResultKind.DUPLICATE, key, assessment_id, None, received, expected, start_retried=True
        )
    kind = (
        UploadResultKind.ACCEPTED if receipt.outcome == UploadOutcome.ACCEPTED else UploadResultKind.DUPLICATE
    )
    return UploadResult(kind, key, assessment_id, None, received, expected)
