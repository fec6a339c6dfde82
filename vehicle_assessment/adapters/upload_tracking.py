"""How a stored assessment and the upload tracking kept beside it read back as one Assessment.

Shared by the DynamoDB and the in-memory WorkflowRepository, so both read the same way.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from vehicle_assessment.domain.models import Assessment, PhotoRecord, PhotoStatus


def tracked_assessment(
    document: Mapping[str, Any],
    status: str,
    updated_at: str,
    uploads: Mapping[str, Mapping[str, Any]],
    photo_results: Mapping[str, Mapping[str, Any]],
    revision: int,
) -> Assessment:
    """The document (``Assessment.model_dump(mode="json")``) with what was written beside it.

    ``status`` and ``updated_at`` are the last status move's (the sweeper and the workflow start
    touch only those); ``uploads`` (photo id -> photo_id, object_key, filename, size_bytes, version_id; items
    written before photos were keyed by id are keyed by object key and lack it) become RECEIVED
    photos unless the document has them already; ``photo_results`` (photo_id -> PhotoRecord as
    JSON), one per analysed photo, win over both, except for the photo's ``reviews``: only a review
    (saved in the document) writes those, so the document's are kept. ``revision`` is the stored one
    (optimistic locking, ``AssessmentRepository.save``), kept beside the document, never in it.
    """
    merged = dict(document)
    merged["status"] = status
    merged["updated_at"] = updated_at
    merged["revision"] = revision
    photos: dict[str, Mapping[str, Any]] = {p["photo_id"]: p for p in merged.get("photos", [])}
    for key in sorted(uploads):
        upload = uploads[key]
        photos.setdefault(
            upload["photo_id"],
            PhotoRecord(
                photo_id=upload["photo_id"],
                filename=upload["filename"],
                object_key=upload.get("object_key", key),
                size_bytes=upload["size_bytes"],
                sha256="",  # known once the workflow has read the bytes
                status=PhotoStatus.RECEIVED,
                object_version=upload.get("version_id"),  # absent on items written before pinning
            ).model_dump(mode="json"),
        )
    for photo_id, result in photo_results.items():
        # A Map iteration never writes a person's review: the document's reviews of the photo stay.
        reviews = photos.get(photo_id, {}).get("reviews") or result.get("reviews", [])
        photos[photo_id] = {**result, "reviews": reviews}
    merged["photos"] = list(photos.values())
    return Assessment.model_validate(merged)


def encode_page_token(sort_key: str) -> str:
    """A list page's token: the last listed assessment's ``{created_at}#{id}`` (opaque to callers)."""
    return base64.urlsafe_b64encode(sort_key.encode()).decode().rstrip("=")


def decode_page_token(token: str) -> str:
    """The sort key a page token names; raises ValueError for anything else."""
    try:
        key = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, ValueError) as exc:
        raise ValueError("next is not a page token this API issued") from exc
    created, separator, assessment_id = key.partition("#")
    if not separator or not created or not assessment_id or len(key) > 200:
        raise ValueError("next is not a page token this API issued")
    return key
