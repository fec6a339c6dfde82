"""The one grammar of photo upload keys: checked once, when an upload event arrives, and used to
build the keys the API hands out, so what is built always parses.

    uploads/{assessment_id}/{n}.{ext}      the API's presigned POSTs; n is the photo number
                                           (1..MAX_EXPECTED_PHOTOS, no leading zero), ext is
                                           jpg, jpeg, png or webp in any case
    incoming/{vin}/{batch}/{name}          direct drops; vin is letters and digits (judged by the VIN
                                           check later), batch is [A-Za-z0-9][A-Za-z0-9._-]*,
                                           name is printable, has no "/" and does not start with "."

A photo's identity (its ``photo_id``) is ONE canonical form of its name, so two spellings of one photo
count once: ``uploads/a/1.JPG`` and ``uploads/a/1.jpeg`` are photo ``01``; ``incoming/1ftmw…/b/Front.JPG``
and ``incoming/1FTMW…/b/front.jpg`` are one assessment (the VIN is upper-cased) and one photo
(names are NFKC-normalised and case-folded). The batch is case-sensitive: it names the assessment.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import uuid
from dataclasses import dataclass

from vehicle_assessment.domain import limits

API_PREFIX = "uploads/"
INCOMING_PREFIX = "incoming/"
PHOTO_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
# Fixed forever: changing it would split a batch that straddles a deployment into two assessments.
INCOMING_NAMESPACE = uuid.UUID("5b0f3c2e-8d4a-4f57-9a51-0c7e1d2b6a93")

LAYOUTS = "uploads/{assessment_id}/{n}.jpg or incoming/{vin}/{batch}/{photo}"

_ASSESSMENT_ID = re.compile(rf"[A-Za-z0-9][A-Za-z0-9-]{{0,{limits.MAX_ASSESSMENT_ID_CHARS - 1}}}")
_PHOTO_NUMBER = re.compile(rf"(?P<n>[1-9][0-9]*)\.(?P<ext>{'|'.join(PHOTO_EXTENSIONS)})", re.IGNORECASE)
_VIN_SEGMENT = re.compile(rf"[A-Za-z0-9]{{1,{limits.MAX_VIN_SEGMENT_CHARS}}}")
_BATCH = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{limits.MAX_BATCH_CHARS - 1}}}")
# A canonical name that is already a safe id is its own id; any other gets a hash suffix after "~",
# a character no safe id contains, so a hashed id can never equal an unhashed one.
_SAFE_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,79}")
_UNSAFE_RUN = re.compile(r"[^a-z0-9._-]+")
# Unicode categories that are not printable text: controls, surrogates, private use, unassigned.
_NOT_TEXT = frozenset({"Cc", "Cs", "Co", "Cn"})


class InvalidUploadKey(ValueError):
    """The key fits no upload layout; the message says why. ``assessment_id`` is set when the key
    still names one (so the rejection can be recorded on it)."""

    def __init__(self, reason: str, assessment_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.assessment_id = assessment_id


@dataclass(frozen=True)
class ApiUploadKey:
    assessment_id: str
    photo_number: int
    name: str

    @property
    def photo_id(self) -> str:
        return f"{self.photo_number:02d}"


@dataclass(frozen=True)
class IncomingUploadKey:
    vin: str  # upper-cased
    batch: str
    name: str

    @property
    def assessment_id(self) -> str:
        return incoming_assessment_id(self.vin, self.batch)

    @property
    def photo_id(self) -> str:
        return photo_id_for(self.name)


UploadKey = ApiUploadKey | IncomingUploadKey


def incoming_assessment_id(vin: str, batch: str) -> str:
    """The id every photo of one direct-drop batch converges on (the VIN is upper-cased first)."""
    return str(uuid.uuid5(INCOMING_NAMESPACE, f"{vin.upper()}/{batch}"))


def photo_id_for(name: str) -> str:
    """The canonical id of a photo name: NFKC, case-folded; a hash suffix when characters were replaced."""
    canonical = unicodedata.normalize("NFKC", name).casefold()
    if _SAFE_ID.fullmatch(canonical):
        return canonical
    safe = _UNSAFE_RUN.sub("_", canonical)[:60].strip("_.") or "photo"
    return f"{safe}~{hashlib.sha256(canonical.encode()).hexdigest()[:12]}"


def _check_assessment_id(assessment_id: str) -> str:
    if not _ASSESSMENT_ID.fullmatch(assessment_id):
        raise InvalidUploadKey(
            f"assessment id must be 1-{limits.MAX_ASSESSMENT_ID_CHARS} letters, digits or '-'"
        )
    return assessment_id


def _check_photo_name(name: str) -> str:
    if not 1 <= len(name) <= limits.MAX_PHOTO_NAME_CHARS:
        raise InvalidUploadKey(f"photo name must be 1-{limits.MAX_PHOTO_NAME_CHARS} characters")
    if name.startswith("."):
        raise InvalidUploadKey("photo name must not start with '.'")
    if name != name.strip():
        raise InvalidUploadKey("photo name must not start or end with spaces")
    if any(unicodedata.category(c) in _NOT_TEXT for c in name):
        raise InvalidUploadKey("photo name contains control or unassigned characters")
    return name


def api_upload_key(assessment_id: str, photo_number: int) -> str:
    """The key of photo ``photo_number`` of an API-opened assessment."""
    _check_assessment_id(assessment_id)
    if not 1 <= photo_number <= limits.MAX_EXPECTED_PHOTOS:
        raise ValueError(f"photo number must be 1..{limits.MAX_EXPECTED_PHOTOS}")
    return f"{API_PREFIX}{assessment_id}/{photo_number}.jpg"


def incoming_upload_key(vin: str, batch: str, name: str) -> str:
    """The key of a direct drop; raises InvalidUploadKey for segments the trigger would refuse."""
    key = f"{INCOMING_PREFIX}{vin}/{batch}/{name}"
    parse_upload_key(key)
    return key


def parse_upload_key(key: str) -> UploadKey:
    """The upload a key names; raises InvalidUploadKey with the reason."""
    if key.startswith(API_PREFIX):
        parts = key[len(API_PREFIX) :].split("/")
        if len(parts) != 2:
            raise InvalidUploadKey(f"unexpected key layout: use {LAYOUTS}")
        assessment_id, name = _check_assessment_id(parts[0]), parts[1]
        match = _PHOTO_NUMBER.fullmatch(name)
        if match is None or int(match["n"]) > limits.MAX_EXPECTED_PHOTOS:
            raise InvalidUploadKey(
                f"photo name must be {{n}}.jpg with n 1..{limits.MAX_EXPECTED_PHOTOS}", assessment_id
            )
        return ApiUploadKey(assessment_id, int(match["n"]), name)
    if key.startswith(INCOMING_PREFIX):
        parts = key[len(INCOMING_PREFIX) :].split("/")
        if len(parts) != 3:
            raise InvalidUploadKey(f"unexpected key layout: use {LAYOUTS}")
        vin, batch, name = parts
        if not _VIN_SEGMENT.fullmatch(vin):
            raise InvalidUploadKey(f"VIN segment must be 1-{limits.MAX_VIN_SEGMENT_CHARS} letters or digits")
        if not _BATCH.fullmatch(batch):
            raise InvalidUploadKey(
                f"batch must be 1-{limits.MAX_BATCH_CHARS} of A-Z a-z 0-9 . _ -, starting with a letter "
                "or digit"
            )
        try:
            _check_photo_name(name)
        except InvalidUploadKey as exc:
            raise InvalidUploadKey(exc.reason, incoming_assessment_id(vin, batch)) from None
        return IncomingUploadKey(vin.upper(), batch, name)
    raise InvalidUploadKey(f"unexpected key layout: use {LAYOUTS}")


REFERENCE_IMAGE_PREFIX = "references/"


def reference_image_key(sha256: str) -> str:
    """Where a reference photo's display copy (a JPEG no larger than limits.REFERENCE_IMAGE_MAX_SIDE)
    is stored, in the same bucket/object store as the assessment photos, by content: written by both
    index builds, read through short-lived links by the review page."""
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return f"{REFERENCE_IMAGE_PREFIX}{sha256}.jpg"
