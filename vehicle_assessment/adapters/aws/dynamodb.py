"""DynamoDB assessment repository: the WorkflowRepository port (storage plus upload tracking).

Single-table design (one item per assessment, plus orphan-upload items)::

    item            PK                       SK       GSI1PK / GSI1SK                GSI2PK / GSI2SK
    assessment      ASSESSMENT#{id}          META     VIN#{vin} / {created_at}#{id}  AWAITING_PHOTOS /
                                                                                     {created_at}#{id}
                                                      GSI3PK / GSI3SK: NEEDS_REVIEW / {waiting_since}#{id}
                                                      GSI4PK / GSI4SK: STATUS#{status} / {created_at}#{id}
    orphan upload   ORPHAN_UPLOAD#{s3 key}   UPLOAD   -                              -

Assessment item attributes:

* ``assessment_id``, ``vin``, ``status``, ``created_at``, ``updated_at`` (ISO-8601 UTC, fixed width so
  strings sort in time order), ``expected_photos`` (N).
* ``received_photo_keys`` (SS): the canonical photo ids (``domain/upload_keys.py``) counted towards
  ``expected_photos``. Absent until the first photo (DynamoDB has no empty sets). Upload events are
  at-least-once and unordered, so the count is the size of this set, never a counter.
* ``uploads`` (M): photo id -> {photo_id, object_key, filename, size_bytes, content_type, received_at,
  version_id}: the same identity as the counter, so every counted photo is one photo of the document;
  ``version_id`` is the S3 version the upload event named (NULL if none), the one the workflow reads.
* ``rejected_uploads`` (M): S3 key -> {reason, size_bytes, content_type, at}: nothing is lost silently.
  At most ``limits.MAX_REJECTED_UPLOADS_PER_ASSESSMENT`` entries, so the item stays far below 400 KB;
  later rejections are orphan-upload items naming the assessment, counted in
  ``rejected_uploads_overflow`` (N).
* ``photo_results`` (M): photo_id -> PhotoRecord, written by one Map iteration each. One document path per
  photo, so parallel iterations never overwrite each other.
* ``document`` (M): the Assessment itself (``model_dump(mode="json")``) with floats stored as DynamoDB
  numbers (``Decimal(str(x))``) and turned back into int/float on read. On read the top-level status and
  updated_at win over the document's, and ``uploads`` / ``photo_results`` are merged into ``photos``.
* ``revision`` (N): optimistic locking on the whole document
  (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/BestPractices_OptimisticLocking.html).
  ``create`` writes 1; ``save`` writes only under ``revision = :read`` and adds one, and so does
  ``mark_status`` (both write ``status``). The upload-tracking writes (``uploads``,
  ``received_photo_keys``, ``rejected_uploads``, ``photo_results``) leave it alone: ``save`` never
  writes those attributes, so it cannot undo them. An item written before revisions existed has
  none and reads as revision 0, which a save expects as ``attribute_not_exists(revision)``.
* ``expires_at`` (N, epoch seconds): optional TTL, set only when the repository is given ``ttl_days``.

Indexes (both projection ALL, so a query answers without further reads):

* GSI1 — history per VIN: ``GSI1PK = VIN#{vin}``, newest first by ``GSI1SK``.
* GSI2 — a *sparse* index of assessments still awaiting photos: ``GSI2PK``/``GSI2SK`` exist only while the
  status is AWAITING_PHOTOS. The sweeper queries ``GSI2SK < cutoff`` instead of scanning the table, so its
  cost follows the number of open uploads, not the table's size. (All open uploads share one partition
  key; at thousands of concurrent uploads per second, shard it as ``AWAITING_PHOTOS#{n}``.)

* GSI3 — a *sparse* index of the review queue: ``GSI3PK = NEEDS_REVIEW`` and ``GSI3SK =
  {waiting_since}#{id}`` exist only while photos of a finished assessment wait for a person (every
  ``save`` writes or removes them with ``review_entry``, the queue entry as a map). It projects only
  ``review_entry`` (INCLUDE), so a queue page reads a few hundred bytes per assessment, not documents.
  Items finished before GSI3 existed are not in it until their next save (backfilling would scan).

* GSI4 — assessments by status, newest first: ``GSI4PK = STATUS#{status}`` (``save`` and ``mark_status``
  both write it, as they write ``status``), ``GSI4SK = {created_at}#{id}``. The list route
  (``list_assessments``) queries one status's partition, or each status's and merges them newest first
  for "any status"; with a VIN it queries GSI1 instead. ``needs_review`` (BOOL) beside it is a filter
  only. A query never scans; items written before GSI4 existed join it at their next save or status move.
  (Every assessment of one status shares a partition key; at thousands of writes per second per status,
  shard it as ``STATUS#{status}#{n}``.)

Orphan uploads (a key under ``uploads/`` naming no known assessment, a bad key layout, an invalid VIN)
get their own small item so they are queryable and can expire with a TTL; they never create an
assessment.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from vehicle_assessment.adapters.aws.errors import error_code
from vehicle_assessment.adapters.upload_tracking import (
    decode_page_token,
    encode_page_token,
    tracked_assessment,
)
from vehicle_assessment.domain import limits
from vehicle_assessment.domain.models import (
    Assessment,
    AssessmentStatus,
    EncoderIdentity,
    PhotoRecord,
    ReviewQueueEntry,
    significant_digits,
)
from vehicle_assessment.domain.review import queue_entry, queue_sort_key
from vehicle_assessment.ports import (
    AssessmentFilter,
    AssessmentNotFound,
    AssessmentPage,
    AwaitingAssessment,
    ConcurrentUpdate,
    PhotoReceipt,
    RejectedUpload,
    UploadOutcome,
)

META = "META"
GSI1 = "GSI1"
GSI2 = "GSI2"
GSI3 = "GSI3"
REVIEW_PARTITION = "NEEDS_REVIEW"
REVIEW_ENTRY = "review_entry"
_REVIEW_ATTRIBUTES = ("GSI3PK", "GSI3SK", REVIEW_ENTRY)
GSI4 = "GSI4"  # by status (GSI3 is the review queue's)
AWAITING_PARTITION = AssessmentStatus.AWAITING_PHOTOS.value
_CONDITION_FAILED = "ConditionalCheckFailedException"


def table_definition(table_name: str) -> dict[str, Any]:
    """``create_table`` arguments for this design: used by tests; the CDK stack must match it."""
    keys = ["PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK", "GSI3PK", "GSI3SK", "GSI4PK", "GSI4SK"]
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": k, "AttributeType": "S"} for k in keys],
        "KeySchema": [
            {"AttributeName": "PK", "KeyType": "HASH"},
            {"AttributeName": "SK", "KeyType": "RANGE"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": name,
                "KeySchema": [
                    {"AttributeName": f"{name}PK", "KeyType": "HASH"},
                    {"AttributeName": f"{name}SK", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
            for name in (GSI1, GSI2, GSI4)
        ]
        + [
            {
                "IndexName": GSI3,
                "KeySchema": [
                    {"AttributeName": "GSI3PK", "KeyType": "HASH"},
                    {"AttributeName": "GSI3SK", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": [REVIEW_ENTRY]},
            }
        ],
    }


@dataclass(frozen=True)
class TableAccess:
    """The DynamoDB actions one function's code calls, and the indexes it queries."""

    actions: tuple[str, ...]
    indexes: tuple[str, ...] = ()


# THE list of what each function does to the assessment table, read off the repository below
# (get_item → GetItem, put_item → PutItem, update_item → UpdateItem, query → Query) and the services
# that call it; infra/constructs/lambdas.py grants exactly these. No code scans, deletes or
# batch-writes items, so no role may (CDK's grant_read_write_data would add Scan, DeleteItem,
# BatchWriteItem and more). Checked against the synthesized template and this module's calls
# (tests/infra/test_least_privilege.py), and enforced in every handler test on moto
# (tests/aws_runtime/conftest.py: a call outside the list fails as AccessDenied would).
_READ_UPDATE = ("dynamodb:GetItem", "dynamodb:UpdateItem")
TABLE_ACCESS: Mapping[str, TableAccess] = {
    # create (PutItem, conditional), exists/progress (GetItem), record_photo / reject_upload
    # (UpdateItem; an orphan or overflow rejection is a PutItem).
    "upload_trigger": TableAccess(("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem")),
    # awaiting_before queries the sparse GSI2; mark_status is an UpdateItem. It never scans.
    # GetItem: after marking an assessment INCOMPLETE, it reads it to publish the finished event.
    "sweeper": TableAccess(("dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"), indexes=(GSI2,)),
    # Every workflow step: get (GetItem), save / mark_status / save_photo_result (UpdateItem).
    "workflow_step": TableAccess(_READ_UPDATE),
    # create (PutItem), get / rejected uploads / progress (GetItem), save of a regenerated or edited
    # description and of a review (UpdateItem), a VIN's history (Query on GSI1), the review queue
    # (Query on GSI3), the list by status (Query on GSI4).
    "api": TableAccess(
        ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"),
        indexes=(GSI1, GSI3, GSI4),
    ),
}


def status_partition(status: AssessmentStatus) -> str:
    return f"STATUS#{status.value}"


def assessment_pk(assessment_id: str) -> str:
    return f"ASSESSMENT#{assessment_id}"


def iso(moment: datetime) -> str:
    """Fixed-width UTC timestamp: string order is time order (the GSI sort keys rely on it)."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- number conversion ----------------------------------------------------------------------


def to_dynamo(value: Any) -> Any:
    """JSON-like data to what boto3's serializer accepts: floats become Decimal numbers."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, Decimal)):
        return _storable(Decimal(value), value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"DynamoDB cannot store the number {value!r}")
        # str() gives the shortest repr that round-trips; Decimal(float) would carry binary noise.
        return _storable(Decimal(str(value)), value)
    if isinstance(value, Mapping):
        return {str(k): to_dynamo(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_dynamo(v) for v in value]
    raise TypeError(f"cannot store {type(value).__name__} in DynamoDB")


def _storable(number: Decimal, original: Any) -> Any:
    """The number, if DynamoDB can hold it (limits.MAX_STORED_*); a ValueError here, not a
    ValidationException from the service after the request was built."""
    if not number.is_finite():
        raise ValueError(f"DynamoDB cannot store the number {original!r}")
    magnitude = abs(number)
    if number != 0 and (
        significant_digits(number) > limits.MAX_STORED_SIGNIFICANT_DIGITS
        or not limits.MIN_STORED_MAGNITUDE <= magnitude <= limits.MAX_STORED_MAGNITUDE
    ):
        raise ValueError(f"DynamoDB cannot store the number {original!r}")
    return number if isinstance(original, float) else original


def from_dynamo(value: Any) -> Any:
    """The inverse: Decimal numbers back to int (when integral as stored) or float; sets to lists."""
    if isinstance(value, Decimal):
        # DynamoDB normalises numbers (1.0 comes back as 1); pydantic turns an int into a float field.
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {k: from_dynamo(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted(from_dynamo(v) for v in value)
    if isinstance(value, list):
        return [from_dynamo(v) for v in value]
    return value


def _old_item(exc: Exception) -> dict[str, Any] | None:
    """The item as it was when a condition failed (ReturnValuesOnConditionCheckFailure=ALL_OLD)."""
    raw = getattr(exc, "response", {}).get("Item")
    if not raw:
        return None
    # The error response is not run through the resource's deserializer: values arrive typed.
    from boto3.dynamodb.types import TypeDeserializer  # only on this unhappy path: keeps imports cheap

    deserializer = TypeDeserializer()
    return {k: deserializer.deserialize(v) for k, v in raw.items()}


# --- the repository -------------------------------------------------------------------------


class DynamoAssessmentRepository:
    """Implements WorkflowRepository on a boto3 ``Table`` resource (injected)."""

    def __init__(self, table: Any, ttl_days: int | None = None) -> None:
        self.table = table
        self.ttl_days = ttl_days

    # -- port ------------------------------------------------------------------------------

    def create(self, assessment: Assessment) -> bool:
        """Store a new assessment; False (and nothing written) if the id already exists."""
        item = {
            "PK": assessment_pk(assessment.assessment_id),
            "SK": META,
            "entity": "assessment",
            "uploads": {},
            "rejected_uploads": {},
            "photo_results": {},
            "revision": 1,
            **self._document_attributes(assessment),
        }
        if self.ttl_days:
            item["expires_at"] = int(assessment.created_at.timestamp()) + self.ttl_days * 86_400
        try:
            self.table.put_item(Item=item, ConditionExpression="attribute_not_exists(PK)")
        except Exception as exc:
            if error_code(exc) == _CONDITION_FAILED:
                return False
            raise
        return True

    def save(self, assessment: Assessment) -> Assessment:
        """The document and status, only at the revision read (0: a new one), which it moves on.

        One UpdateItem conditional on the stored revision: of two saves from the same read, DynamoDB
        applies one and refuses the other with ConditionalCheckFailedException, so neither
        overwrites the other unseen. Upload tracking attributes are never overwritten.
        """
        attributes = self._document_attributes(assessment)
        names = {f"#{k}": k for k in attributes}
        values = {f":{k}": v for k, v in attributes.items()}
        sets = [f"#{k} = :{k}" for k in attributes]
        names["#revision"] = "revision"
        sets.append("#revision = :next_revision")
        values[":next_revision"] = assessment.revision + 1
        if assessment.revision == 0:
            condition = "attribute_not_exists(#revision)"  # absent, or stored before revisions
        else:
            condition = "#revision = :read_revision"
            values[":read_revision"] = assessment.revision
        for name in ("uploads", "rejected_uploads", "photo_results"):
            names[f"#{name}"] = name
            sets.append(f"#{name} = if_not_exists(#{name}, :empty)")
        values[":empty"] = {}
        expression = "SET " + ", ".join(sets)
        removed = [] if "GSI2PK" in attributes else ["GSI2PK", "GSI2SK"]
        removed += [] if "GSI3PK" in attributes else list(_REVIEW_ATTRIBUTES)
        if removed:
            names |= {f"#{name}": name for name in removed}
            expression += " REMOVE " + ", ".join(f"#{name}" for name in removed)
        try:
            self.table.update_item(
                Key=self._key(assessment.assessment_id),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except Exception as exc:
            if error_code(exc) != _CONDITION_FAILED:
                raise
            old = _old_item(exc) or {}
            raise ConcurrentUpdate(
                f"assessment {assessment.assessment_id} was read at revision {assessment.revision} "
                f"but is at {int(old.get('revision', 0))}"
            ) from None
        return assessment.model_copy(update={"revision": assessment.revision + 1})

    def get(self, assessment_id: str) -> Assessment:
        item = self._get_item(assessment_id)
        if item is None:
            raise AssessmentNotFound(f"no assessment with id {assessment_id!r}")
        return self._assessment(item)

    def exists(self, assessment_id: str) -> bool:
        return self._get_item(assessment_id) is not None

    def list_by_vin(self, vin: str, limit: int = 50) -> list[Assessment]:
        response = self.table.query(
            IndexName=GSI1,
            KeyConditionExpression="GSI1PK = :pk",
            ExpressionAttributeValues={":pk": f"VIN#{vin}"},
            ScanIndexForward=False,  # newest first
            Limit=limit,
        )
        return [self._assessment(item) for item in response.get("Items", [])]

    # -- upload tracking -------------------------------------------------------------------

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

        One conditional UpdateItem: DynamoDB applies writes to an item one at a time, so of two
        deliveries racing for the last slot exactly one passes ``size < expected`` and sees
        ``received == expected`` in its ALL_NEW answer; that one starts the workflow.
        """
        upload = {
            "photo_id": photo_id,
            "object_key": object_key,
            "filename": filename,
            "size_bytes": size_bytes,
            "content_type": content_type,
            "received_at": iso(now),
            "version_id": version_id,  # the S3 version the workflow reads (NULL when none)
        }
        try:
            response = self.table.update_item(
                Key=self._key(assessment_id),
                # Counted and recorded by the photo's canonical id, never by the S3 key: two spellings
                # of one photo (upper/lower-case VIN segment, 1.JPG / 1.jpg) are one photo to both
                # the counter and the document, so every counted photo is analysed.
                UpdateExpression=(
                    "ADD received_photo_keys :idset SET #uploads.#pid = :upload, updated_at = :now"
                ),
                ConditionExpression=(
                    "attribute_exists(PK) AND #status = :awaiting"
                    " AND (attribute_not_exists(received_photo_keys)"
                    " OR (NOT contains(received_photo_keys, :pid)"
                    " AND size(received_photo_keys) < expected_photos))"
                ),
                ExpressionAttributeNames={"#uploads": "uploads", "#pid": photo_id, "#status": "status"},
                ExpressionAttributeValues={
                    ":idset": {photo_id},
                    ":pid": photo_id,
                    ":upload": upload,
                    ":now": iso(now),
                    ":awaiting": AssessmentStatus.AWAITING_PHOTOS.value,
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except Exception as exc:
            if error_code(exc) != _CONDITION_FAILED:
                raise
            return self._why_not_counted(assessment_id, object_key, photo_id, version_id, _old_item(exc))
        new = response["Attributes"]
        return PhotoReceipt(
            outcome=UploadOutcome.ACCEPTED,
            received=len(new.get("received_photo_keys", ())),
            expected=int(new["expected_photos"]),
            status=AssessmentStatus(new["status"]),
        )

    def _why_not_counted(
        self,
        assessment_id: str,
        object_key: str,
        photo_id: str,
        version_id: str | None,
        old: dict[str, Any] | None,
    ) -> PhotoReceipt:
        if old is None:
            # Either the item does not exist, or the answer lacked it: read once to be sure.
            old = self._get_item(assessment_id)
        if old is None:
            return PhotoReceipt.unknown(assessment_id)
        counted = old.get("uploads", {}).get(photo_id, {})
        return PhotoReceipt.not_counted(
            photo_id,
            object_key,
            counted.get("object_key"),
            old.get("received_photo_keys", ()),
            int(old["expected_photos"]),
            AssessmentStatus(old["status"]),
            version_id,
            counted.get("version_id"),
        )

    def reject_upload(
        self,
        assessment_id: str | None,
        object_key: str,
        reason: str,
        now: datetime,
        size_bytes: int | None = None,
        content_type: str | None = None,
    ) -> bool:
        """Keep a rejected upload and why: on its assessment, else as an orphan item. True if on one.

        An assessment item keeps at most MAX_REJECTED_UPLOADS_PER_ASSESSMENT rejections; any further
        one becomes an orphan item naming the assessment, counted in ``rejected_uploads_overflow``.
        An item may not exceed 400 KB, and every later write to a full one fails
        (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html#limits-items).
        """
        entry = {"reason": reason, "size_bytes": size_bytes, "content_type": content_type, "at": iso(now)}
        overflow = False
        if assessment_id is not None:
            try:
                self.table.update_item(
                    Key=self._key(assessment_id),
                    UpdateExpression="SET #rejected.#key = :entry",
                    # size() of a map is its number of entries; a redelivery replaces its own entry.
                    ConditionExpression=(
                        "attribute_exists(PK)"
                        " AND (attribute_exists(#rejected.#key) OR size(#rejected) < :cap)"
                    ),
                    ExpressionAttributeNames={"#rejected": "rejected_uploads", "#key": object_key},
                    ExpressionAttributeValues={
                        ":entry": entry,
                        ":cap": limits.MAX_REJECTED_UPLOADS_PER_ASSESSMENT,
                    },
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
                return True
            except Exception as exc:
                if error_code(exc) != _CONDITION_FAILED:
                    raise
                overflow = _old_item(exc) is not None or self._get_item(assessment_id) is not None
        orphan = {
            "PK": f"ORPHAN_UPLOAD#{object_key}",
            "SK": "UPLOAD",
            "entity": "orphan_upload",
            "object_key": object_key,
            "assessment_id": assessment_id,
            **entry,
        }
        if self.ttl_days:
            orphan["expires_at"] = int(now.timestamp()) + self.ttl_days * 86_400
        if not overflow or assessment_id is None:
            self.table.put_item(Item=orphan)
            return False
        try:
            # Only a new overflow item is counted, so a redelivered rejection counts once.
            self.table.put_item(Item=orphan, ConditionExpression="attribute_not_exists(PK)")
        except Exception as exc:
            if error_code(exc) != _CONDITION_FAILED:
                raise
            return False
        self.table.update_item(
            Key=self._key(assessment_id),
            UpdateExpression="ADD rejected_uploads_overflow :one",
            ConditionExpression="attribute_exists(PK)",
            ExpressionAttributeValues={":one": 1},
        )
        return False

    def rejected_uploads_overflow(self, assessment_id: str) -> int:
        """How many of the assessment's rejections are kept as orphan items (past the per-item cap)."""
        item = self._get_item(assessment_id)
        if item is None:
            raise AssessmentNotFound(f"no assessment with id {assessment_id!r}")
        return int(item.get("rejected_uploads_overflow", 0))

    def rejected_uploads(self, assessment_id: str) -> list[RejectedUpload]:
        item = self._get_item(assessment_id)
        if item is None:
            raise AssessmentNotFound(f"no assessment with id {assessment_id!r}")
        return self._rejected(item)

    def orphan_upload(self, object_key: str) -> RejectedUpload | None:
        item = self.table.get_item(
            Key={"PK": f"ORPHAN_UPLOAD#{object_key}", "SK": "UPLOAD"}, ConsistentRead=True
        ).get("Item")
        if item is None:
            return None
        return RejectedUpload(
            object_key=object_key,
            reason=item["reason"],
            size_bytes=from_dynamo(item.get("size_bytes")),
            content_type=item.get("content_type"),
            at=item["at"],
        )

    def upload_progress(self, assessment_id: str) -> PhotoReceipt:
        item = self._get_item(assessment_id)
        if item is None:
            raise AssessmentNotFound(f"no assessment with id {assessment_id!r}")
        return PhotoReceipt(
            outcome=UploadOutcome.ACCEPTED,
            received=len(item.get("received_photo_keys", ())),
            expected=int(item["expected_photos"]),
            status=AssessmentStatus(item["status"]),
        )

    def mark_status(
        self,
        assessment_id: str,
        new_status: AssessmentStatus,
        from_statuses: Iterable[AssessmentStatus],
        now: datetime,
        only_if_photos_missing: bool = False,
    ) -> bool:
        """Move the status on only from the given ones; False when the item was elsewhere."""
        allowed = sorted({s.value for s in from_statuses})
        values: dict[str, Any] = {":new": new_status.value, ":now": iso(now)}
        values |= {f":from{i}": s for i, s in enumerate(allowed)}
        condition = (
            f"attribute_exists(PK) AND #status IN ({', '.join(f':from{i}' for i in range(len(allowed)))})"
        )
        if only_if_photos_missing:
            # An assessment with all its photos is about to start: the sweeper must leave it alone.
            condition += (
                " AND (attribute_not_exists(received_photo_keys)"
                " OR size(received_photo_keys) < expected_photos)"
            )
        # The revision moves on: a document save from a read before this move would undo it.
        expression = (
            "SET #status = :new, updated_at = :now, #revision = if_not_exists(#revision, :zero) + :one,"
            " GSI4PK = :status_partition"
        )
        names = {"#status": "status", "#revision": "revision"}
        values |= {":zero": 0, ":one": 1, ":status_partition": status_partition(new_status)}
        if new_status != AssessmentStatus.AWAITING_PHOTOS:
            expression += " REMOVE GSI2PK, GSI2SK"
        try:
            self.table.update_item(
                Key=self._key(assessment_id),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except Exception as exc:
            if error_code(exc) == _CONDITION_FAILED:
                return False
            raise
        return True

    def awaiting_before(self, cutoff: datetime, limit: int = 100) -> list[AwaitingAssessment]:
        """Assessments still awaiting photos that were created before ``cutoff`` (sparse GSI2)."""
        found: list[AwaitingAssessment] = []
        kwargs: dict[str, Any] = {
            "IndexName": GSI2,
            "KeyConditionExpression": "GSI2PK = :pk AND GSI2SK < :cutoff",
            "ExpressionAttributeValues": {":pk": AWAITING_PARTITION, ":cutoff": iso(cutoff)},
        }
        while len(found) < limit:
            response = self.table.query(Limit=limit - len(found), **kwargs)
            found.extend(
                AwaitingAssessment(
                    assessment_id=item["assessment_id"],
                    created_at=item["created_at"],
                    received=len(item.get("received_photo_keys", ())),
                    expected=int(item["expected_photos"]),
                )
                for item in response.get("Items", [])
            )
            if "LastEvaluatedKey" not in response:
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return found

    def review_queue(self, limit: int) -> list[ReviewQueueEntry]:
        """Assessments with photos awaiting a person, oldest first: a Query of the sparse GSI3, never a
        scan. GSI reads are eventually consistent: a review just saved may leave the queue a moment later.
        (One partition holds the whole queue: far below a partition's 3,000 reads per second, as a queue
        is read by people; shard it as NEEDS_REVIEW#{n} if that ever changes.)"""
        found: list[ReviewQueueEntry] = []
        kwargs: dict[str, Any] = {
            "IndexName": GSI3,
            "KeyConditionExpression": "GSI3PK = :pk",
            "ExpressionAttributeValues": {":pk": REVIEW_PARTITION},
            "ScanIndexForward": True,  # oldest first
        }
        while len(found) < limit:
            response = self.table.query(Limit=limit - len(found), **kwargs)
            found.extend(
                ReviewQueueEntry.model_validate(from_dynamo(item[REVIEW_ENTRY]))
                for item in response.get("Items", [])
            )
            if "LastEvaluatedKey" not in response:
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return found

    def save_photo_result(self, assessment_id: str, record: PhotoRecord, encoder: EncoderIdentity) -> None:
        """One analysed photo from one Map iteration: its own path, so iterations never collide."""
        try:
            self._update_photo_result(assessment_id, record, encoder)
        except Exception as exc:
            if error_code(exc) == _CONDITION_FAILED:
                raise AssessmentNotFound(f"no assessment with id {assessment_id!r}") from exc
            raise

    def _update_photo_result(self, assessment_id: str, record: PhotoRecord, encoder: EncoderIdentity) -> None:
        self.table.update_item(
            Key=self._key(assessment_id),
            UpdateExpression="SET #results.#pid = :record, #document.#encoder = :encoder",
            ConditionExpression="attribute_exists(PK)",
            ExpressionAttributeNames={
                "#results": "photo_results",
                "#pid": record.photo_id,
                "#document": "document",
                "#encoder": "encoder",
            },
            ExpressionAttributeValues={
                ":record": to_dynamo(record.model_dump(mode="json")),
                ":encoder": to_dynamo(encoder.model_dump(mode="json")),
            },
        )

    def list_assessments(
        self, which: AssessmentFilter, limit: int, next_token: str | None = None
    ) -> AssessmentPage:
        """Newest first from GSI1 (a VIN) or GSI4 (a status; each status's, merged, for any)."""
        after = decode_page_token(next_token) if next_token else None
        if which.vin is not None:
            partitions = [(GSI1, f"VIN#{which.vin}")]
        else:
            statuses = [which.status] if which.status is not None else list(AssessmentStatus)
            partitions = [(GSI4, status_partition(status)) for status in statuses]
        found: list[tuple[str, dict[str, Any]]] = []
        for index, partition in partitions:
            found += self._newest(index, partition, which, after, limit + 1)
        found.sort(key=lambda entry: entry[0], reverse=True)
        page = found[:limit]
        token = encode_page_token(page[-1][0]) if len(found) > limit else None
        return AssessmentPage([self._assessment(item) for _, item in page], token)

    def _newest(
        self, index: str, partition: str, which: AssessmentFilter, after: str | None, wanted: int
    ) -> list[tuple[str, dict[str, Any]]]:
        """Up to ``wanted`` matching items of one index partition, newest first, before ``after``."""
        condition = f"{index}PK = :pk" + (f" AND {index}SK < :after" if after else "")
        values: dict[str, Any] = {":pk": partition}
        if after:
            values[":after"] = after
        names: dict[str, str] = {}
        filters: list[str] = []
        if which.status is not None and index != GSI4:
            filters.append("#status = :status")
            names["#status"] = "status"
            values[":status"] = which.status.value
        if which.needs_review is not None:
            # Items written before the attribute existed read as not needing review.
            filters.append(
                "needs_review = :needs_review"
                if which.needs_review
                else "(attribute_not_exists(needs_review) OR needs_review = :needs_review)"
            )
            values[":needs_review"] = which.needs_review
        kwargs: dict[str, Any] = {
            "IndexName": index,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
            # A filter applies after Limit: ask for more than wanted, and follow pages until enough match.
            "Limit": max(wanted, 25),
        }
        if filters:
            kwargs["FilterExpression"] = " AND ".join(filters)
        if names:
            kwargs["ExpressionAttributeNames"] = names
        matched: list[tuple[str, dict[str, Any]]] = []
        while True:
            response = self.table.query(**kwargs)
            matched += [(str(item[f"{index}SK"]), item) for item in response.get("Items", [])]
            if len(matched) >= wanted or "LastEvaluatedKey" not in response:
                return matched[:wanted]
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _key(assessment_id: str) -> dict[str, str]:
        return {"PK": assessment_pk(assessment_id), "SK": META}

    def _get_item(self, assessment_id: str) -> dict[str, Any] | None:
        # Strongly consistent: a step reads right after the previous step's write.
        response = self.table.get_item(Key=self._key(assessment_id), ConsistentRead=True)
        return response.get("Item")

    @staticmethod
    def _document_attributes(assessment: Assessment) -> dict[str, Any]:
        created = iso(assessment.created_at)
        attributes: dict[str, Any] = {
            "assessment_id": assessment.assessment_id,
            "vin": assessment.vin,
            "status": assessment.status.value,
            "created_at": created,
            "updated_at": iso(assessment.updated_at),
            "expected_photos": assessment.expected_photos,
            "document": to_dynamo(assessment.model_dump(mode="json", exclude={"revision"})),
            "GSI1PK": f"VIN#{assessment.vin}",
            "GSI1SK": f"{created}#{assessment.assessment_id}",
            "GSI4PK": status_partition(assessment.status),
            "GSI4SK": f"{created}#{assessment.assessment_id}",
            "needs_review": assessment.needs_review,
        }
        if assessment.status == AssessmentStatus.AWAITING_PHOTOS:
            attributes |= {"GSI2PK": AWAITING_PARTITION, "GSI2SK": f"{created}#{assessment.assessment_id}"}
        entry = queue_entry(assessment)
        if entry is not None:
            attributes |= {
                "GSI3PK": REVIEW_PARTITION,
                "GSI3SK": queue_sort_key(entry),
                REVIEW_ENTRY: to_dynamo(entry.model_dump(mode="json")),
            }
        return attributes

    @staticmethod
    def _rejected(item: Mapping[str, Any]) -> list[RejectedUpload]:
        entries = from_dynamo(item.get("rejected_uploads", {}))
        return sorted(
            (
                RejectedUpload(
                    object_key=key,
                    reason=entry["reason"],
                    size_bytes=entry.get("size_bytes"),
                    content_type=entry.get("content_type"),
                    at=entry["at"],
                )
                for key, entry in entries.items()
            ),
            key=lambda r: (r.at, r.object_key),
        )

    @staticmethod
    def _assessment(item: Mapping[str, Any]) -> Assessment:
        # Status transitions (sweeper, workflow start) touch only the top-level attributes.
        return tracked_assessment(
            from_dynamo(item["document"]),
            item["status"],
            item["updated_at"],
            from_dynamo(item.get("uploads", {})),
            from_dynamo(item.get("photo_results", {})),
            int(item.get("revision", 0)),
        )
