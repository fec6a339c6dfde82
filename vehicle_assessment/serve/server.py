"""The local HTTP server: each API request becomes the API Gateway REST proxy event the Lambda handler
(``functions/api.py``) already answers, so local and AWS share one set of routes, models and errors.

Besides the API it plays the other AWS parts a client meets:

* **S3's POST upload** at ``/{bucket}`` (path style): the form is checked the way S3 checks a POST policy
  (``adapters/local/s3_post_policy.py``: signature, expiry, bucket, exact key, content-length-range,
  content-type prefix, every field named by the policy, file last), the original is stored in the local
  object store, and the upload trigger's own service (``aws_runtime/uploads.handle_upload``) counts it and,
  on the last photo, starts the workflow in the background worker (``worker.py``). Errors answer in S3's
  XML (``<Error><Code>...``), success ``204 No Content``, as S3 does.
* **Presigned GETs**: ``/media/{key}?expires=&signature=`` (``media.py``).
* **The web app**: the files of a directory at ``/`` with security headers, and ``/config.json`` telling
  the page where the API is and that local mode needs no sign-in (or a token).

Authorization: the API routes are called with Cognito-like claims of one local user who is in every group
``authz.ROUTES`` names. Bound to a loopback address, no token is needed, and requests whose Host is not a
loopback name are refused (a web page cannot reach the API through DNS rebinding). Bound elsewhere, every
API request needs ``Authorization: Bearer <token>`` (compared in constant time); uploads and media carry
their own signatures, as on AWS.
"""

from __future__ import annotations

import base64
import email.message
import hmac
import ipaddress
import json
import logging
import mimetypes
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

from vehicle_assessment.adapters.local.object_store import FilesystemObjectStore
from vehicle_assessment.adapters.local.s3_post_policy import (
    Credentials,
    PostedForm,
    path_style_bucket,
    violations,
)
from vehicle_assessment.aws_runtime import authz
from vehicle_assessment.aws_runtime.uploads import (
    UploadedObject,
    UploadResultKind,
    UploadRules,
    UploadServices,
    handle_upload,
)
from vehicle_assessment.domain import upload_keys
from vehicle_assessment.ports import AssessmentNotFound, ObjectNotFound, WorkflowRepository
from vehicle_assessment.serve.media import MEDIA_PATH, MediaRefused, SignedMediaLinks

logger = logging.getLogger(__name__)

# Each header the server sends with every answer. The page is same-origin with the API and the media
# links, so 'self' is all it needs; blob: for previews of photos chosen for upload.
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
# The web app's file types (mimetypes alone reads the platform's tables, which differ).
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".webp": "image/webp",
}
# An API request body is a few hundred bytes (the handler refuses more than 64 KiB); read at most this.
MAX_API_BODY_BYTES = 1024 * 1024
# A form's fields besides the file: a few kilobytes.
FORM_OVERHEAD_BYTES = 64 * 1024
LOCAL_USER = "local"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def local_claims() -> dict[str, str]:
    """The Cognito access-token claims of the one local user: every group the route table knows."""
    groups = sorted({group.value for access in authz.ROUTES.values() for group in access.groups})
    return {"sub": f"{LOCAL_USER}-user", "username": LOCAL_USER, "cognito:groups": ",".join(groups)}


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_prefixes() -> frozenset[str]:
    """The first path segments of the API's routes ("assessments", "vehicles", ...)."""
    return frozenset(key.split(" ", 1)[1].split("/")[1] for key in authz.ROUTES)


@dataclass(frozen=True)
class LambdaContextStandIn:
    """What the Powertools decorators read from a Lambda context."""

    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_name: str = "vehicle-assessment-serve"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 0
    invoked_function_arn: str = "arn:aws:lambda:local:000000000000:function:vehicle-assessment-serve"
    log_group_name: str = "local"
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


def proxy_event(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, list[str]],
    body: bytes,
    claims: Mapping[str, str],
    source_ip: str,
) -> dict[str, Any]:
    """The API Gateway REST (v1) proxy integration event for one HTTP request."""
    multi_query = parse_qs(query, keep_blank_values=True)
    try:
        text: str | None = body.decode("utf-8") if body else None
        encoded = False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode("ascii"), True
    request_id = str(uuid.uuid4())
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": {name: values[-1] for name, values in headers.items()},
        "multiValueHeaders": {name: list(values) for name, values in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": path,
            "httpMethod": method,
            "path": path,
            "stage": "local",
            "requestId": request_id,
            "accountId": "000000000000",
            "apiId": "local",
            "protocol": "HTTP/1.1",
            "identity": {"sourceIp": source_ip, "userAgent": headers.get("User-Agent", [""])[-1]},
            "requestTimeEpoch": int(datetime.now(UTC).timestamp() * 1000),
            "authorizer": {"claims": dict(claims)},
        },
        "body": text,
        "isBase64Encoded": encoded,
    }


@dataclass(frozen=True)
class UploadEndpoint:
    """The local bucket's POST endpoint: the forms' signing credentials and what the trigger needs."""

    bucket: str
    region: str
    credentials: Credentials
    max_expires_in_s: int
    max_upload_bytes: int
    services: UploadServices
    rules: UploadRules
    objects: FilesystemObjectStore


@dataclass
class LocalApi:
    """Everything a request may need; one per server."""

    lambda_handler: Callable[[dict[str, Any], Any], dict[str, Any]]
    openapi_json: Callable[[], str]
    repository: WorkflowRepository
    uploads: UploadEndpoint
    media: SignedMediaLinks
    objects: FilesystemObjectStore
    base_url: str
    token: str | None  # None: no token needed (bound to a loopback address)
    bound_host: str
    static_dir: Path | None
    prefixes: frozenset[str] = field(default_factory=api_prefixes)
    claims: dict[str, str] = field(default_factory=local_claims)
    # One invocation at a time, as one Lambda container runs them: the Powertools resolver keeps the
    # current event on the app object, so two requests in two threads would read each other's.
    invocation_lock: threading.Lock = field(default_factory=threading.Lock)


class ApiRequestHandler(BaseHTTPRequestHandler):
    server: LocalServer
    protocol_version = "HTTP/1.1"
    server_version = "vehicle-assessment-serve"
    sys_version = ""

    # -- dispatch ------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_OPTIONS(self) -> None:
        self._dispatch()

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        logger.info("%s %s", self.address_string(), format % args)

    def _dispatch(self) -> None:
        api = self.server.api
        try:
            if not self._host_allowed():
                self._send_json(403, {"message": "this server answers only to localhost names"})
                return
            parts = urlsplit(self.path)
            path = parts.path
            segments = path.split("/")
            first = segments[1] if len(segments) > 1 else ""
            if self.command == "POST" and path.rstrip("/") == f"/{api.uploads.bucket}":
                self._upload(path)
            elif path.startswith(MEDIA_PATH) and self.command in ("GET", "HEAD"):
                self._media(path, parts.query)
            elif path == "/config.json" and self.command in ("GET", "HEAD"):
                self._send_json(200, self._page_config())
            elif first in api.prefixes or path == "/openapi.json":
                if self._token_refused():
                    return
                if path == "/openapi.json" and self.command in ("GET", "HEAD"):
                    self._send(200, api.openapi_json().encode(), "application/json")
                else:
                    self._api(path, parts.query)
            elif self.command in ("GET", "HEAD"):
                self._static(path)
            else:
                self._send_json(404, {"message": "no such resource"})
        except Exception:  # the stack trace goes to the log, never to the caller
            logger.exception("unhandled error answering %s %s", self.command, self.path)
            self.close_connection = True
            self._send_json(500, {"message": "internal error"})

    # -- checks --------------------------------------------------------------------------------

    def _host_allowed(self) -> bool:
        """Bound to loopback: only loopback Host names (no DNS rebinding from a web page)."""
        api = self.server.api
        if not is_loopback(api.bound_host):
            return True
        host = urlsplit(f"//{self.headers.get('Host', '')}").hostname or ""
        return is_loopback(host)

    def _token_refused(self) -> bool:
        """401 (and True) when a token is needed and the request does not carry it."""
        token = self.server.api.token
        if token is None:
            return False
        scheme, _, given = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
            return False
        self._drain()
        self._send_json(
            401,
            {"message": "send the server's token as 'Authorization: Bearer <token>'"},
            {"WWW-Authenticate": "Bearer"},
        )
        return True

    def _body(self, limit: int) -> bytes | None:
        """The request body, or None (and the connection closed) when it is larger than ``limit``."""
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return b""
        if not length_text.isdigit():
            self.close_connection = True
            return None
        length = int(length_text)
        if length > limit:
            self.close_connection = True  # the rest of the body is never read
            return None
        return self.rfile.read(length)

    def _drain(self) -> None:
        length_text = self.headers.get("Content-Length", "0")
        if not length_text.isdigit() or int(length_text) > MAX_API_BODY_BYTES:
            self.close_connection = True
        elif int(length_text):
            self.rfile.read(int(length_text))

    # -- the API -------------------------------------------------------------------------------

    def _api(self, path: str, query: str) -> None:
        api = self.server.api
        body = self._body(MAX_API_BODY_BYTES)
        if body is None:
            self._send_json(413, {"message": "request body too large"})
            return
        headers = {name: self.headers.get_all(name) or [] for name in set(self.headers.keys())}
        event = proxy_event(self.command, path, query, headers, body, api.claims, self.client_address[0])
        with api.invocation_lock:
            response = api.lambda_handler(event, LambdaContextStandIn())
        multi = response.get("multiValueHeaders") or {}
        single = response.get("headers") or {}
        out_headers: list[tuple[str, str]] = [(k, v) for k, values in multi.items() for v in values]
        out_headers += [(k, str(v)) for k, v in single.items() if k not in multi]
        raw = response.get("body") or ""
        data = base64.b64decode(raw) if response.get("isBase64Encoded") else str(raw).encode("utf-8")
        self._send_raw(int(response["statusCode"]), data, out_headers)

    def _page_config(self) -> dict[str, Any]:
        api = self.server.api
        return {
            "api_base_url": api.base_url,
            "mode": "local",
            # "none": the page calls the API as is; "token": it asks for the server's token once.
            "sign_in": "token" if api.token is not None else "none",
        }

    # -- S3's POST upload ----------------------------------------------------------------------

    def _upload(self, path: str) -> None:
        endpoint = self.server.api.uploads
        media_type, boundary = _multipart_boundary(self.headers.get("Content-Type", ""))
        if media_type != "multipart/form-data" or boundary is None:
            self._drain()
            self._send_s3_error(
                412, "PreconditionFailed", "Bucket POST must be of the enclosure-type multipart/form-data"
            )
            return
        body = self._body(endpoint.max_upload_bytes + FORM_OVERHEAD_BYTES)
        if body is None:
            self._send_s3_error(
                400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size"
            )
            return
        try:
            fields = parse_multipart(body, boundary)
        except ValueError as exc:
            self._send_s3_error(400, "MalformedPOSTRequest", str(exc))
            return
        now = datetime.now(UTC)
        posted = PostedForm(url=f"{self.server.api.base_url}{path}", fields=fields)
        problems = violations(
            posted,
            endpoint.region,
            endpoint.credentials,
            now,
            endpoint.max_expires_in_s,
            path_style_bucket(self.server.api.base_url),
        )
        if problems:
            logger.info("upload refused: %s", "; ".join(problems))
            self._send_s3_error(403, "AccessDenied", "Invalid according to Policy: " + "; ".join(problems))
            return
        form = {name.lower(): value for name, value in fields}
        key, data = str(form["key"]), form["file"]
        assert isinstance(data, bytes)  # parse_multipart keeps the file as bytes
        content_type = str(form.get("content-type") or "application/octet-stream")
        if self._already_counted(key):
            # S3 would keep the re-upload as a new version that the trigger then refuses; the local store
            # keeps one version per key, so the counted original stays and the re-upload is recorded only.
            self._reject_reupload(key, len(data), content_type, now)
        else:
            endpoint.objects.put(key, data, content_type)
            uploaded = UploadedObject(bucket=endpoint.bucket, key=key, size=len(data))
            result = handle_upload(uploaded, endpoint.services, endpoint.rules, now)
            level = (
                logging.WARNING
                if result.kind in (UploadResultKind.REJECTED, UploadResultKind.ORPHANED)
                else logging.INFO
            )
            logger.log(
                level,
                "upload %s: %s%s",
                key,
                result.kind.value,
                f" ({result.reason})" if result.reason else "",
            )
        self._send_raw(204, b"", [])

    def _already_counted(self, key: str) -> bool:
        try:
            parsed = upload_keys.parse_upload_key(key)
            photos = self.server.api.repository.get(parsed.assessment_id).photos
        except (upload_keys.InvalidUploadKey, AssessmentNotFound):
            return False
        return any(photo.object_key == key for photo in photos)

    def _reject_reupload(self, key: str, size: int, content_type: str, now: datetime) -> None:
        parsed = upload_keys.parse_upload_key(key)
        reason = (
            f"photo {parsed.photo_id!r} was already received as {key!r}; the re-upload is not used "
            "(the counted original is the evidence)"
        )
        self.server.api.repository.reject_upload(parsed.assessment_id, key, reason, now, size, content_type)
        logger.warning("upload %s: rejected (%s)", key, reason)

    # -- media and static files ----------------------------------------------------------------

    def _media(self, path: str, query: str) -> None:
        api = self.server.api
        params = parse_qs(query)
        key = unquote(path.removeprefix(MEDIA_PATH))
        try:
            api.media.verify(key, _first(params, "expires"), _first(params, "signature"))
            data = api.objects.get(key)
        except MediaRefused as exc:
            self._send_json(exc.status, {"message": str(exc)})
            return
        except (ObjectNotFound, ValueError):
            self._send_json(404, {"message": "no such media"})
            return
        content_type = CONTENT_TYPES.get(Path(key).suffix.lower()) or "application/octet-stream"
        self._send(200, data, content_type, {"Cache-Control": "private, max-age=300"})

    def _static(self, path: str) -> None:
        root = self.server.api.static_dir
        if root is None:
            self._send_json(404, {"message": "no web app is served: no such resource"})
            return
        relative = unquote(path).lstrip("/")
        parts = relative.split("/")
        if parts[-1] == "":  # a folder: its index.html
            parts = parts[:-1]
        # No hidden files, no empty or parent segments, no backslashes (resolve() then checks the root).
        if any(not part or part.startswith(".") or "\\" in part for part in parts):
            self._send_json(404, {"message": "no such resource"})
            return
        base = root.resolve()
        target = (base / relative).resolve()
        if target.is_dir():
            target = target / "index.html"
        if not target.is_relative_to(base) or not target.is_file():
            self._send_json(404, {"message": "no such resource"})
            return
        content_type = (
            CONTENT_TYPES.get(target.suffix.lower())
            or mimetypes.guess_type(target.name)[0]
            or "application/octet-stream"
        )
        self._send(200, target.read_bytes(), content_type, {"Cache-Control": "no-cache"})

    # -- answers -------------------------------------------------------------------------------

    def _send_json(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        self._send(status, json.dumps(body).encode(), "application/json", headers)

    def _send_s3_error(self, status: int, code: str, message: str) -> None:
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
        )
        self._send(status, xml.encode(), "application/xml")

    def _send(
        self, status: int, data: bytes, content_type: str, headers: Mapping[str, str] | None = None
    ) -> None:
        self._send_raw(status, data, [("Content-Type", content_type), *(headers or {}).items()])

    def _send_raw(self, status: int, data: bytes, headers: list[tuple[str, str]]) -> None:
        self.send_response(status)
        sent = {name.lower() for name, _ in headers}
        for name, value in headers:
            if name.lower() not in ("content-length", "connection"):
                self.send_header(name, value)
        for name, value in SECURITY_HEADERS.items():
            if name.lower() not in sent:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(data)


def _first(params: Mapping[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


def _multipart_boundary(content_type: str) -> tuple[str, bytes | None]:
    header = email.message.Message()
    header["Content-Type"] = content_type
    boundary = header.get_param("boundary")
    media_type = header.get_content_type()
    return media_type, (boundary.encode("latin-1") if isinstance(boundary, str) and boundary else None)


def parse_multipart(body: bytes, boundary: bytes) -> list[tuple[str, str | bytes]]:
    """A multipart/form-data body's fields in order: ``file`` (any part with a filename) as bytes, the
    others as text. Raises ValueError for a body that is not one."""
    delimiter = b"\r\n--" + boundary
    chunks = (b"\r\n" + body).split(delimiter)
    if len(chunks) < 2 or not chunks[-1].startswith(b"--"):
        raise ValueError("the body is not multipart/form-data with the declared boundary")
    fields: list[tuple[str, str | bytes]] = []
    for chunk in chunks[1:-1]:
        head, separator, content = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not separator:
            raise ValueError("a form part has no header")
        part = email.message.Message()
        for line in head.decode("latin-1").split("\r\n"):
            header, colon, value = line.partition(":")
            if colon:
                part[header.strip()] = value.strip()
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or not name:
            raise ValueError("a form part has no name")
        if part.get_param("filename", header="content-disposition") is not None:
            fields.append((name, content))
        else:
            try:
                fields.append((name, content.decode("utf-8")))
            except UnicodeDecodeError as exc:
                raise ValueError(f"form field {name!r} is not UTF-8 text") from exc
    return fields


class LocalServer(ThreadingHTTPServer):
    """One thread per connection; the pipeline runs in the worker, never in a request thread."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], api: LocalApi | None = None) -> None:
        super().__init__(address, ApiRequestHandler)
        self._api = api

    @property
    def api(self) -> LocalApi:
        if self._api is None:
            raise RuntimeError("the server was started before its API was attached")
        return self._api

    def attach(self, api: LocalApi) -> None:
        self._api = api

    @property
    def port(self) -> int:
        return int(self.server_address[1])
