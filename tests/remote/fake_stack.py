"""A deployed stack played on 127.0.0.1: the API and the Cognito token endpoint in one stdlib HTTP server,
S3 (and Cognito's InitiateAuth) in moto's server. The upload forms are real presigned POST forms on the
moto server's bucket, so the client's multipart upload is a real one."""

from __future__ import annotations

import base64
import json
import re
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import boto3
from botocore.config import Config
from pydantic import ValidationError

from vehicle_assessment.adapters.aws.s3_upload_forms import presigned_upload_form
from vehicle_assessment.aws_runtime.api import (
    AssessmentView,
    CreateAssessmentRequest,
    CreateAssessmentResponse,
    PresignedUpload,
    upload_client_fields,
)
from vehicle_assessment.aws_runtime.uploads import open_assessment
from vehicle_assessment.domain.models import (
    AssessmentInputs,
    AssessmentStatus,
    AudioRecord,
    AudioStatus,
    Description,
    DescriptionStyle,
)

REGION = "us-east-1"
BUCKET = "vda-uploads"
MAX_UPLOAD_BYTES = 15 * 1024 * 1024
SYSTEM_CLIENT_ID = "integration-client"
SYSTEM_CLIENT_SECRET = "s3cr3t-never-printed"
SYSTEM_TOKEN = "system-access-token-never-printed"
BEDROCK_GENERATOR = "bedrock:anthropic.claude-3-haiku-20240307-v1:0"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@contextmanager
def moto_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def completed(view: AssessmentView) -> AssessmentView:
    """What the workflow leaves: COMPLETED, a Bedrock description and its audio."""
    return view.model_copy(
        update={
            "status": AssessmentStatus.COMPLETED,
            "descriptions": [
                Description(
                    style=DescriptionStyle.STANDARD,
                    language="en",
                    text="A silver sedan.",
                    generator=BEDROCK_GENERATOR,
                )
            ],
            "audio": [
                AudioRecord(
                    language="en",
                    style=DescriptionStyle.STANDARD,
                    status=AudioStatus.GENERATED,
                    object_key=f"audio/{view.assessment_id}/standard-en.mp3",
                    content_type="audio/mpeg",
                )
            ],
        }
    )


@dataclass
class FakeStack:
    s3_url: str
    # The status a finished assessment takes: what the workflow would have decided.
    finish: Callable[[AssessmentView], AssessmentView] = completed
    accepts_token: Callable[[str], bool] = lambda token: token == SYSTEM_TOKEN
    requests: list[tuple[str, str]] = field(default_factory=list)
    tokens_seen: list[str] = field(default_factory=list)
    posted_forms: list[list[str]] = field(default_factory=list)
    assessments: dict[str, AssessmentView] = field(default_factory=dict)
    polls: dict[str, int] = field(default_factory=dict)
    # (method, status) answered to the next matching API requests before any is routed: a flaky gateway.
    flaky: list[tuple[str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.s3 = boto3.client(
            "s3",
            region_name=REGION,
            endpoint_url=self.s3_url,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )
        self.s3.create_bucket(Bucket=BUCKET)

    # --- routes ---

    def token(self, headers: Any, body: bytes) -> tuple[int, dict[str, Any]]:
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        expected = "Basic " + base64.b64encode(f"{SYSTEM_CLIENT_ID}:{SYSTEM_CLIENT_SECRET}".encode()).decode()
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        if headers.get("Authorization") != expected:
            return 400, {"error": "invalid_client"}
        return 200, {"access_token": SYSTEM_TOKEN, "token_type": "Bearer", "expires_in": 3600}

    def create(self, body: bytes) -> tuple[int, dict[str, Any]]:
        try:
            request = CreateAssessmentRequest.model_validate_json(body)
            inputs = AssessmentInputs(vin=request.vin, color=request.color, mileage=request.mileage)
        except (ValidationError, ValueError) as exc:
            return 400, {"message": "invalid request", "detail": str(exc)[:100]}
        expected = request.expected_photos or 3
        assessment = open_assessment(inputs, expected, datetime.now(UTC))
        uploads = []
        for number in range(1, expected + 1):
            key = f"uploads/{assessment.assessment_id}/{number}.jpg"
            form = presigned_upload_form(self.s3, BUCKET, key, MAX_UPLOAD_BYTES, 900)
            uploads.append(
                PresignedUpload(photo_number=number, object_key=key, url=form.url, fields=form.fields)
            )
        self.assessments[assessment.assessment_id] = AssessmentView(
            **assessment.model_dump(), received_photos=0
        )
        response = CreateAssessmentResponse(
            assessment_id=assessment.assessment_id,
            status=assessment.status,
            expected_photos=expected,
            upload_expires_in_s=900,
            max_upload_bytes=MAX_UPLOAD_BYTES,
            uploads=uploads,
            client_fields=upload_client_fields(MAX_UPLOAD_BYTES),
        )
        return 201, response.model_dump(mode="json")

    def get(self, assessment_id: str) -> tuple[int, dict[str, Any]]:
        view = self.assessments.get(assessment_id)
        if view is None:
            return 404, {"message": f"assessment {assessment_id} not found"}
        if view.status not in (AssessmentStatus.AWAITING_PHOTOS, AssessmentStatus.PROCESSING):
            return 200, view.model_dump(mode="json")
        listed = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=f"uploads/{assessment_id}/")
        received = listed.get("KeyCount", 0)
        if received < view.expected_photos:
            view = view.model_copy(update={"received_photos": received})
        elif view.status == AssessmentStatus.AWAITING_PHOTOS:  # one poll sees it PROCESSING
            view = view.model_copy(
                update={"received_photos": received, "status": AssessmentStatus.PROCESSING}
            )
        else:
            view = self.finish(view)
        self.assessments[assessment_id] = view
        return 200, view.model_dump(mode="json")

    def route(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, dict[str, Any]]:
        self.requests.append((method, path))
        if method == "POST" and path == "/oauth2/token":
            return self.token(headers, body)
        if method == "POST" and path == "/form-echo":  # records a multipart form's field order
            names = re.findall(rb'Content-Disposition: form-data; name="([^"]+)"', body)
            self.posted_forms.append([name.decode() for name in names])
            return 204, {}
        if self.flaky and self.flaky[0][0] == method and path.startswith("/prod/"):
            return self.flaky.pop(0)[1], {"message": "Service Unavailable"}
        bearer = str(headers.get("Authorization", "")).removeprefix("Bearer ")
        self.tokens_seen.append(bearer)
        if not self.accepts_token(bearer):
            return 401, {"message": "Unauthorized"}
        if method == "POST" and path == "/prod/assessments":
            return self.create(body)
        match = re.fullmatch(r"/prod/assessments/([0-9a-f-]+)", path)
        if method == "GET" and match:
            return self.get(match.group(1))
        return 404, {"message": "no such route"}


@contextmanager
def serve(stack: FakeStack) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, payload = stack.route(self.command, self.path, self.headers, body)
            raw = json.dumps(payload).encode() if status != 204 else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
