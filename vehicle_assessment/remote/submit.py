"""One assessment against a deployed stack, as a yard app runs it: create, upload each photo through its
presigned form, then wait for a final status."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TextIO
from xml.etree import ElementTree

import requests

from vehicle_assessment.adapters.aws.s3_upload_forms import CONTENT_TYPE_FIELD
from vehicle_assessment.aws_runtime.api import (
    AssessmentView,
    ClientFormField,
    CreateAssessmentRequest,
    PresignedUpload,
)
from vehicle_assessment.domain import limits
from vehicle_assessment.domain.content_type import ACCEPTED_IMAGE_TYPES, sniff_content_type
from vehicle_assessment.domain.models import AssessmentStatus
from vehicle_assessment.domain.text import one_line
from vehicle_assessment.remote.client import UPLOAD_TIMEOUT_S, ApiClient
from vehicle_assessment.remote.stack import RemoteError

# Statuses after which nothing changes without a new request.
FINAL_STATUSES = frozenset(
    {
        AssessmentStatus.COMPLETED,
        AssessmentStatus.FAILED,
        AssessmentStatus.INCOMPLETE,
        AssessmentStatus.NEEDS_PHOTOS,
    }
)
# The form fields the client adds, in order, after the server's: the type, then the file (S3 ignores
# fields after the file).
CLIENT_FIELD_ORDER = (CONTENT_TYPE_FIELD, "file")


class BadPhoto(RemoteError):
    """A photo that cannot be sent: missing, a directory, not JPEG/PNG/WebP, empty or too large."""


class WaitTimedOut(RemoteError):
    def __init__(self, message: str, last: AssessmentView) -> None:
        super().__init__(message)
        self.last = last


@dataclass(frozen=True)
class PhotoFile:
    filename: str
    data: bytes
    content_type: str


def read_photo(path: Path, max_bytes: int = limits.MAX_PHOTO_BYTES) -> PhotoFile:
    """The photo's bytes and the content type its magic bytes say (what the upload trigger checks too)."""
    if path.is_dir():
        raise BadPhoto(f"photo {path} is a directory: pass the photo files")
    if not path.is_file():
        raise BadPhoto(f"photo {path} not found")
    data = path.read_bytes()
    if not data:
        raise BadPhoto(f"photo {path} is empty")
    if len(data) > max_bytes:
        raise BadPhoto(f"photo {path} is {len(data):,} bytes; at most {max_bytes:,} are accepted")
    content_type = sniff_content_type(data)
    if content_type is None:
        raise BadPhoto(f"photo {path} is not {', '.join(ACCEPTED_IMAGE_TYPES)}")
    return PhotoFile(path.name, data, content_type)


def check_client_fields(client_fields: Sequence[ClientFormField]) -> None:
    """Refuse to post forms when the API asks for fields this client does not know how to fill."""
    names = tuple(f.name for f in client_fields)
    if names != CLIENT_FIELD_ORDER:
        raise RemoteError(
            f"the API asks each upload form to add {list(names)}; this client adds "
            f"{list(CLIENT_FIELD_ORDER)}: update the client"
        )


def _s3_error(response: requests.Response) -> str:
    try:
        root = ElementTree.fromstring(response.content)
    except ElementTree.ParseError:
        return one_line(response.text or response.reason, 200)
    return one_line(f"{root.findtext('Code')}: {root.findtext('Message')}", 200)


def upload_photo(session: requests.Session, upload: PresignedUpload, photo: PhotoFile) -> None:
    """POST the presigned form: its fields as given, then Content-Type, then the file last.

    requests writes ``data`` fields before ``files``, so the file is the form's last part, as S3
    requires ("POST Object", AmazonS3/latest/API/RESTObjectPOST.html: fields after the file are ignored).
    """
    fields = [*upload.fields.items(), (CONTENT_TYPE_FIELD, photo.content_type)]
    try:
        response = session.post(
            upload.url,
            data=fields,
            files={"file": (photo.filename, photo.data, photo.content_type)},
            timeout=UPLOAD_TIMEOUT_S,
        )
    except requests.RequestException as exc:
        raise RemoteError(f"uploading photo {upload.photo_number} failed: {type(exc).__name__}") from exc
    if response.status_code not in (200, 201, 204):
        raise RemoteError(
            f"S3 refused photo {upload.photo_number} ({photo.filename}, {response.status_code}): "
            f"{_s3_error(response)}"
        )


@dataclass
class Backoff:
    """Poll delays: first, then times factor, up to most."""

    first_s: float = 1.0
    factor: float = 1.5
    most_s: float = 15.0
    _next: float = field(default=0.0, init=False)

    def next_delay(self) -> float:
        self._next = self.first_s if self._next == 0.0 else min(self.most_s, self._next * self.factor)
        return self._next


Progress = Callable[[AssessmentView, float], None]


class AssessmentReader(Protocol):
    def get_assessment(self, assessment_id: str) -> AssessmentView: ...


def wait_until_final(
    api: AssessmentReader,
    assessment_id: str,
    timeout_s: float,
    progress: Progress,
    *,
    backoff: Backoff | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> AssessmentView:
    """GET the assessment with growing pauses until its status is final; raises WaitTimedOut."""
    backoff = backoff or Backoff()
    started = clock()
    while True:
        view = api.get_assessment(assessment_id)
        elapsed = clock() - started
        progress(view, elapsed)
        if view.status in FINAL_STATUSES:
            return view
        if elapsed >= timeout_s:
            raise WaitTimedOut(
                f"assessment {assessment_id} is still {view.status.value} after {elapsed:.0f} s; "
                f"it goes on in the cloud: check it later with the API (GET /assessments/{assessment_id})",
                view,
            )
        sleep(min(backoff.next_delay(), max(0.0, timeout_s - elapsed)))


class StderrProgress:
    """One line that updates in place on a terminal; a line per change otherwise (logs, CI)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.last = ""

    def __call__(self, view: AssessmentView, elapsed_s: float) -> None:
        state = f"{view.status.value}, {view.received_photos}/{view.expected_photos} photos received"
        if self.stream.isatty():
            end = "\n" if view.status in FINAL_STATUSES else ""
            self.stream.write(f"\r\x1b[Kwaiting for {view.assessment_id}: {state} ({elapsed_s:.0f} s){end}")
        elif state != self.last:
            self.stream.write(f"{view.assessment_id}: {state} ({elapsed_s:.0f} s)\n")
        self.stream.flush()
        self.last = state

    def say(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()


def submit_assessment(
    api: ApiClient,
    upload_session: requests.Session,
    request: CreateAssessmentRequest,
    photos: Sequence[PhotoFile],
    timeout_s: float,
    progress: StderrProgress,
    *,
    backoff: Backoff | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> AssessmentView:
    """Create the assessment for ``photos``, upload them, wait for its final status."""
    if not photos:
        raise BadPhoto("give at least one photo")
    if request.expected_photos is None:
        request = request.model_copy(update={"expected_photos": len(photos)})
    elif request.expected_photos != len(photos):
        raise BadPhoto(f"{len(photos)} photos given, but expected_photos is {request.expected_photos}")
    created = api.create_assessment(request)
    check_client_fields(created.client_fields)
    if len(created.uploads) != len(photos):
        raise RemoteError(f"asked for {len(photos)} upload forms, the API gave {len(created.uploads)}")
    progress.say(f"created assessment {created.assessment_id}; uploading {len(photos)} photos")
    for upload, photo in zip(created.uploads, photos, strict=True):
        if len(photo.data) > created.max_upload_bytes:
            raise BadPhoto(f"{photo.filename} is larger than the {created.max_upload_bytes:,} bytes allowed")
        upload_photo(upload_session, upload, photo)
        progress.say(f"  photo {upload.photo_number}: {photo.filename} uploaded to {upload.object_key}")
    return wait_until_final(api, created.assessment_id, timeout_s, progress, backoff=backoff, sleep=sleep)
