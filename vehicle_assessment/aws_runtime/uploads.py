"""S3 upload events → counted photos → one workflow execution per assessment.

Two key layouts are accepted:

* ``uploads/{assessment_id}/{photo_name}`` — the presigned POSTs the API hands out (keys fixed by
  the server). The assessment exists already, in AWAITING_PHOTOS.
* ``incoming/{vin}/{batch}/{photo_name}`` — direct drops (e.g. a partner's S3 sync). The first photo
  of a batch creates the assessment from its S3 user metadata (``color``, ``mileage``,
  ``estimate-usd``, ``expected-photos``) under an id derived from ``vin/batch`` (UUIDv5), so
  concurrent first photos converge on one assessment; the first writer's metadata wins.

S3 notifications are at-least-once and unordered. Each photo is counted by its key with one
conditional DynamoDB update, so duplicates and reordering count once; the single delivery that
counts the last photo starts the state machine with ``name=assessment_id`` (a redelivery after a
failed start retries it; ExecutionAlreadyExists means it is already running).

Nothing is dropped silently: a rejected upload (too large, not an image, extra photo, finished
assessment) is recorded on its assessment with the reason. An upload that names no assessment
(unknown id, bad layout, invalid VIN or metadata) becomes an orphan-upload item in the table (see
``adapters/aws/dynamodb.py``), is logged, and is counted by the handler's ``UploadOrphaned`` metric;
the object itself stays in S3 for the bucket's lifecycle rule to expire.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import unquote_plus

from pydantic import BaseModel, ConfigDict, Field, ValidationError

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
# Fixed forever: changing it would split a batch that straddles a deployment into two assessments.
INCOMING_NAMESPACE = uuid.UUID("5b0f3c2e-8d4a-4f57-9a51-0c7e1d2b6a93")

_UPLOAD_KEY = re.compile(r"^uploads/(?P<assessment_id>[A-Za-z0-9][A-Za-z0-9-]{0,79})/(?P<photo>[^/]{1,200})$")
_INCOMING_KEY = re.compile(r"^incoming/(?P<vin>[^/]{1,40})/(?P<batch>[^/]{1,100})/(?P<photo>[^/]{1,200})$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


# --- the event ------------------------------------------------------------------------------


class _S3Object(BaseModel):
    model_config = ConfigDict(extra="ignore")
    key: str
    size: int = Field(default=0, ge=0)


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


def parse_s3_notification(body: str | Mapping[str, Any]) -> list[UploadedObject]:
    """The created objects an S3 notification names (none for S3's test event)."""
    notification = S3Notification.model_validate(json.loads(body) if isinstance(body, str) else body)
    return [
        # S3 URL-encodes keys in events ("uploads/a/my+photo.jpg" for "my photo.jpg").
        UploadedObject(bucket=r.s3.bucket.name, key=unquote_plus(r.s3.object.key), size=r.s3.object.size)
        for r in notification.records
        if r.event_name.startswith("ObjectCreated:")
    ]


@dataclass(frozen=True)
class UploadServices:
    repository: WorkflowRepository
    probe: ObjectProbe
    starter: WorkflowStarter


@dataclass(frozen=True)
class UploadRules:
    max_upload_bytes: int
    default_expected_photos: int


# --- the service ----------------------------------------------------------------------------


class UploadResultKind(StrEnum):
    STARTED = "started"  # this photo was the last one and the workflow was started
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"  # recorded on its assessment
    ORPHANED = "orphaned"  # no assessment to record it on: kept as an orphan-upload item


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
    """A stable id from the photo's file name; a hash suffix keeps sanitised names distinct."""
    safe = _UNSAFE.sub("_", name)[:80] or "photo"
    if safe != name:
        safe = f"{safe}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"
    return safe


def incoming_assessment_id(vin: str, batch: str) -> str:
    return str(uuid.uuid5(INCOMING_NAMESPACE, f"{vin}/{batch}"))


class _NoObjects:
    """new_assessment only stores photos it is given; an AWS assessment opens with none."""

    def put(self, key: str, data: bytes, content_type: str) -> None:
        raise AssertionError("no photo is stored when an assessment is opened")

    def get(self, key: str) -> bytes:
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


def _inputs_from_metadata(
    vin: str, metadata: Mapping[str, str], default_expected: int
) -> tuple[AssessmentInputs, int]:
    """Raises ValueError (pydantic's ValidationError is one) with a readable reason."""
    meta = {k.lower(): v.strip() for k, v in metadata.items()}
    color = meta.get("color") or meta.get("colour") or None
    mileage = meta.get("mileage") or None
    estimate = meta.get("estimate-usd") or meta.get("estimate_usd") or None
    expected_raw = meta.get("expected-photos") or meta.get("expected_photos")
    if expected_raw is not None and not expected_raw.isdigit():
        raise ValueError(f"metadata expected-photos {expected_raw!r} is not a whole number")
    expected = int(expected_raw) if expected_raw else default_expected
    if not 1 <= expected <= 20:
        raise ValueError(f"metadata expected-photos {expected} is outside 1..20")
    inputs = AssessmentInputs.model_validate(
        {"vin": vin, "color": color, "mileage": mileage, "estimate_usd": estimate}
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

    if match := _UPLOAD_KEY.match(key):
        assessment_id, photo_name, incoming = match["assessment_id"], match["photo"], None
    elif match := _INCOMING_KEY.match(key):
        vin, batch, photo_name = match["vin"].strip().upper(), match["batch"], match["photo"]
        assessment_id, incoming = incoming_assessment_id(vin, batch), vin
    else:
        return reject(
            None, "unexpected key layout: use uploads/{id}/{photo} or incoming/{vin}/{batch}/{photo}"
        )

    # Cheap checks first: the event carries the size.
    if uploaded.size > rules.max_upload_bytes:
        mb = rules.max_upload_bytes / (1024 * 1024)
        return reject(
            assessment_id,
            f"file too large: {uploaded.size / (1024 * 1024):.1f} MB exceeds {mb:.1f} MB",
        )
    try:
        head = services.probe.head(key, SNIFF_BYTES)
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

    receipt = repo.record_photo(
        assessment_id, key, size, content_type, now, photo_id=photo_id_for(photo_name), filename=photo_name
    )
    if receipt.outcome == UploadOutcome.UNKNOWN_ASSESSMENT:
        return reject(assessment_id, receipt.reason or "unknown assessment", content_type)
    if receipt.outcome == UploadOutcome.REJECTED:
        return reject(assessment_id, receipt.reason or "rejected", content_type)

    counts = {"received": receipt.received, "expected": receipt.expected}
    if receipt.completes:
        services.starter.start(assessment_id)
        return UploadResult(UploadResultKind.STARTED, key, assessment_id, **counts)
    if receipt.outcome == UploadOutcome.DUPLICATE and receipt.ready:
        # A redelivery of the last photo while the status still says AWAITING_PHOTOS: the earlier
        # start may have failed, so ask again. Step Functions answers a same-name, same-input start
        # of a running execution with that execution, so this never makes a second one.
        services.starter.start(assessment_id)
        return UploadResult(UploadResultKind.DUPLICATE, key, assessment_id, start_retried=True, **counts)
    kind = (
        UploadResultKind.ACCEPTED if receipt.outcome == UploadOutcome.ACCEPTED else UploadResultKind.DUPLICATE
    )
    return UploadResult(kind, key, assessment_id, **counts)
