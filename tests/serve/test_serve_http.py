"""`vehicle-assessment serve` over real HTTP on a free port: the API through the Lambda handler, the upload
forms checked the way S3 checks a POST policy, signed media links, the web app's files, and the token."""

from __future__ import annotations

import base64
import http.client
import json
import socket
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.serve.conftest import VIN, StartServer
from vehicle_assessment.adapters.aws.s3_upload_forms import presigned_upload_form
from vehicle_assessment.domain import upload_keys
from vehicle_assessment.serve.media import MediaRefused, check_media_key
from vehicle_assessment.serve.wiring import LOCAL_BUCKET, RunningServer, build_server

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

PHOTOS = Path(__file__).resolve().parents[1] / "data" / "photos"
JPEG = (PHOTOS / "damaged_0003_JPEG.jpg").read_bytes()


def _create(server: RunningServer, expected_photos: int = 2, **headers: str) -> dict[str, Any]:
    response = requests.post(
        f"{server.base_url}/assessments",
        json={"vin": VIN, "expected_photos": expected_photos},
        headers=headers,
        timeout=10,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _post_form(
    upload: dict[str, Any], content_type: str = "image/jpeg", photo: bytes = JPEG, **changed: str
) -> requests.Response:
    fields = [*{**upload["fields"], **changed}.items(), ("Content-Type", content_type)]
    return requests.post(
        upload["url"], data=fields, files={"file": ("front.jpg", photo, content_type)}, timeout=10
    )


def _assessment(server: RunningServer, assessment_id: str) -> dict[str, Any]:
    response = requests.get(f"{server.base_url}/assessments/{assessment_id}", timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _s3_code(response: requests.Response) -> str:
    return response.text.split("<Code>")[1].split("</Code>")[0]


def test_api_requests_reach_the_lambda_handler_and_its_errors(start_server: StartServer) -> None:
    server = start_server()
    response = requests.get(f"{server.base_url}/assessments/no-such-id", timeout=10)
    assert response.status_code == 404 and "no-such-id" in response.json()["message"]
    response = requests.post(f"{server.base_url}/assessments", json={"vin": VIN, "mileage": -1}, timeout=10)
    assert response.status_code == 400 and response.json()["message"] == "invalid request"
    response = requests.delete(f"{server.base_url}/assessments", timeout=10)
    assert response.status_code == 405 and "POST" in response.headers["Allow"]
    schema = requests.get(f"{server.base_url}/openapi.json", timeout=10).json()
    assert "/assessments/{assessment_id}/media" in schema["paths"]
    first, second = _create(server)["assessment_id"], _create(server)["assessment_id"]
    listed = requests.get(
        f"{server.base_url}/assessments", params={"status": "AWAITING_PHOTOS", "limit": "1"}, timeout=10
    ).json()
    assert [a["assessment_id"] for a in listed["assessments"]] == [second] and listed["next_token"]
    rest = requests.get(f"{server.base_url}/assessments", params={"next": listed["next_token"]}, timeout=10)
    assert [a["assessment_id"] for a in rest.json()["assessments"]] == [first]


def test_a_form_posted_as_issued_is_stored_and_counted(start_server: StartServer) -> None:
    server = start_server()
    created = _create(server)
    upload = created["uploads"][0]
    assert upload["url"] == f"{server.base_url}/{LOCAL_BUCKET}"  # the forms post to this server
    response = _post_form(upload)
    assert response.status_code == 204, response.text
    view = _assessment(server, created["assessment_id"])
    assert view["received_photos"] == 1 and view["status"] == "AWAITING_PHOTOS"
    [photo] = view["photos"]
    assert photo["object_key"] == upload["object_key"]
    media = requests.get(f"{server.base_url}/assessments/{created['assessment_id']}/media", timeout=10)
    assert media.status_code == 200, media.text
    [photo_link] = media.json()["photos"]
    fetched = requests.get(photo_link["url"], timeout=10)
    assert fetched.status_code == 200 and fetched.content == JPEG
    assert fetched.headers["Content-Type"] == "image/jpeg"
    assert fetched.headers["X-Content-Type-Options"] == "nosniff"


def test_a_re_upload_of_a_counted_photo_is_recorded_and_the_original_kept(start_server: StartServer) -> None:
    server = start_server()
    created = _create(server)
    upload = created["uploads"][0]
    assert _post_form(upload).status_code == 204
    other = (PHOTOS / "undamaged_white_6150526860_fd9cd2c04c_b.jpg").read_bytes()
    assert _post_form(upload, photo=other).status_code == 204  # S3 takes it too; the trigger refuses it
    view = _assessment(server, created["assessment_id"])
    assert view["received_photos"] == 1
    [rejected] = view["rejected_uploads"]
    assert rejected["object_key"] == upload["object_key"] and "already received" in rejected["reason"]
    stored = Path(server.server.api.objects.root, *upload["object_key"].split("/")).read_bytes()
    assert stored == JPEG


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ("tampered policy", "signature does not match"),
        ("wrong key", "'key' is"),
        ("wrong content type", "'Content-Type' is 'text/plain'"),
        ("field left out", "x-amz-date"),
    ],
)
def test_forms_s3_would_refuse_are_refused(start_server: StartServer, change: str, why: str) -> None:
    server = start_server()
    created = _create(server)
    upload = created["uploads"][0]
    fields = dict(upload["fields"])
    content_type = "image/jpeg"
    if change == "tampered policy":
        policy = json.loads(base64.b64decode(fields["policy"]))
        policy["conditions"] = [c for c in policy["conditions"] if "content-length-range" not in c]
        fields["policy"] = base64.b64encode(json.dumps(policy).encode()).decode()
    elif change == "wrong key":
        fields["key"] = upload_keys.api_upload_key(created["assessment_id"], 2)
    elif change == "wrong content type":
        content_type = "text/plain"
    else:
        del fields["x-amz-date"]
    response = _post_form({**upload, "fields": fields}, content_type=content_type)
    assert response.status_code == 403, response.text
    assert _s3_code(response) == "AccessDenied" and why in response.text
    assert _assessment(server, created["assessment_id"])["received_photos"] == 0


def _signed_form(server: RunningServer, key: str, max_bytes: int, expires_in_s: int) -> dict[str, Any]:
    """A form signed with the server's own key, with other terms than the API hands out."""
    from functions import api as api_handler

    form = presigned_upload_form(
        api_handler.get_services().s3_client, LOCAL_BUCKET, key, max_bytes, expires_in_s
    )
    return {"url": form.url, "fields": form.fields}


def test_an_expired_form_and_an_oversize_file_are_refused(start_server: StartServer) -> None:
    server = start_server()
    created = _create(server)
    key = created["uploads"][0]["object_key"]
    expired = _post_form(_signed_form(server, key, 20 * 1024 * 1024, -60))
    assert expired.status_code == 403 and "policy expired" in expired.text
    oversize = _post_form(_signed_form(server, key, 100, 300), photo=JPEG)
    assert oversize.status_code == 403 and "outside content-length-range 1..100" in oversize.text
    # A body larger than any form may carry is refused before it is read.
    with socket.create_connection(("127.0.0.1", server.server.port), timeout=10) as conn:
        conn.sendall(
            f"POST /{LOCAL_BUCKET} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; "
            "boundary=x\r\nContent-Length: 999999999\r\n\r\n".encode()
        )
        conn.shutdown(socket.SHUT_WR)
        answer = b"".join(iter(lambda: conn.recv(4096), b"")).decode()  # until the server closes
    assert answer.startswith("HTTP/1.1 400") and "EntityTooLarge" in answer
    assert _assessment(server, created["assessment_id"])["received_photos"] == 0


def _raw_get(server: RunningServer, path: str, host: str = "127.0.0.1") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.server.port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_host=True)
        conn.putheader("Host", host)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_media_links_are_checked(start_server: StartServer) -> None:
    server = start_server()
    created = _create(server)
    upload = created["uploads"][0]
    assert _post_form(upload).status_code == 204
    media = server.server.api.media
    good = media.link(upload["object_key"], None, 60).removeprefix(server.base_url)
    assert _raw_get(server, good)[0] == 200
    assert _raw_get(server, good.replace("signature=", "signature=0"))[0] == 403
    assert _raw_get(server, good.split("?")[0])[0] == 403  # unsigned
    expired = media.link(upload["object_key"], None, -1).removeprefix(server.base_url)
    assert _raw_get(server, expired)[0] == 403
    other_key = good.replace(upload["object_key"], upload_keys.api_upload_key(created["assessment_id"], 2))
    assert _raw_get(server, other_key)[0] == 403  # a signature is for one key
    for traversal in ("/media/uploads/../assessments.sqlite3", "/media/uploads/%2e%2e/assessments.sqlite3"):
        status, body = _raw_get(server, traversal + "?expires=9999999999&signature=" + "0" * 64)
        assert status == 404 and b"sqlite" not in body.lower()
    for key in ("uploads/../assessments.sqlite3", "assessments.sqlite3", "uploads//x", "uploads/.hidden"):
        with pytest.raises(MediaRefused):
            check_media_key(key)


def test_static_files_with_security_headers_and_the_page_config(
    start_server: StartServer, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<!doctype html><title>t</title>")
    (site / "app.js").write_text("console.log('x')")
    (tmp_path / "secret.txt").write_text("not served")
    (site / ".env").write_text("not served either")
    server = start_server(static_dir=site)
    page = requests.get(f"{server.base_url}/", timeout=10)
    assert page.status_code == 200 and page.text.startswith("<!doctype html>")
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    script = requests.get(f"{server.base_url}/app.js", timeout=10)
    assert script.headers["Content-Type"] == "text/javascript; charset=utf-8"
    for outside in ("/../secret.txt", "/%2e%2e/secret.txt", "/nothing.html", "/.env", "/%2eenv"):
        assert _raw_get(server, outside)[0] == 404
    config = requests.get(f"{server.base_url}/config.json", timeout=10).json()
    assert config == {"api_base_url": server.base_url, "mode": "local", "sign_in": "none"}


def test_a_loopback_server_answers_only_loopback_host_names(start_server: StartServer) -> None:
    server = start_server()
    assert _raw_get(server, "/config.json", host=f"localhost:{server.server.port}")[0] == 200
    assert _raw_get(server, "/config.json", host="attacker.example")[0] == 403  # DNS rebinding


def test_bound_beyond_localhost_a_token_is_required(start_server: StartServer, tmp_path: Path) -> None:
    from tests.serve.conftest import local_settings

    with pytest.raises(ValueError, match="needs a token"):
        build_server(local_settings(tmp_path / "d"), "0.0.0.0", 0, token=None, encoder=lambda: None)  # type: ignore[arg-type, return-value]
    server = start_server(host="0.0.0.0", token="s3cret-token")
    url = f"http://127.0.0.1:{server.server.port}/assessments/x"
    refused = requests.get(url, timeout=10)
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
    wrong = requests.get(url, headers={"Authorization": "Bearer s3cret-tokem"}, timeout=10)
    assert wrong.status_code == 401
    allowed = requests.get(url, headers={"Authorization": "Bearer s3cret-token"}, timeout=10)
    assert allowed.status_code == 404  # through to the handler: no such assessment
    config = requests.get(f"http://127.0.0.1:{server.server.port}/config.json", timeout=10).json()
    assert config["sign_in"] == "token"


def test_an_assessment_of_the_cli_is_served_with_its_photos(
    start_server: StartServer, tmp_path: Path
) -> None:
    """`assess` (and `make demo`) write the same database and object store `serve` reads."""
    from datetime import UTC, datetime

    from vehicle_assessment.adapters.local.object_store import FilesystemObjectStore
    from vehicle_assessment.adapters.local.repository import SqliteAssessmentRepository
    from vehicle_assessment.domain.models import AssessmentInputs
    from vehicle_assessment.pipeline import PhotoUpload, new_assessment

    server = start_server()
    data_dir = tmp_path / "data"
    made = new_assessment(
        AssessmentInputs(vin=VIN),
        [PhotoUpload(filename="front.jpg", data=JPEG)],
        FilesystemObjectStore(data_dir / "objects"),
        datetime.now(UTC),
    )
    SqliteAssessmentRepository(data_dir / "assessments.sqlite3").save(made)
    view = _assessment(server, made.assessment_id)
    assert view["photos"][0]["object_key"].startswith("photos/")
    listed = requests.get(f"{server.base_url}/assessments", params={"vin": VIN}, timeout=10).json()
    assert made.assessment_id in [a["assessment_id"] for a in listed["assessments"]]
    media = requests.get(f"{server.base_url}/assessments/{made.assessment_id}/media", timeout=10).json()
    [photo] = media["photos"]
    assert requests.get(photo["url"], timeout=10).content == JPEG


def test_the_handler_runs_one_invocation_at_a_time(start_server: StartServer) -> None:
    """As in one Lambda container: the Powertools resolver keeps the current event on the app object, so
    two invocations at once would read each other's requests."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    server = start_server()
    api = server.server.api
    original, active, most = api.lambda_handler, [0], [0]
    counting = threading.Lock()

    def observed(event: dict[str, Any], context: Any) -> dict[str, Any]:
        with counting:
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.02)  # long enough for another request thread to arrive meanwhile
        try:
            return original(event, context)
        finally:
            with counting:
                active[0] -= 1

    api.lambda_handler = observed

    def ask(n: int) -> tuple[int, str]:
        response = requests.get(f"{server.base_url}/assessments/id-{n}", timeout=30)
        return n, response.json()["message"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(ask, range(24)))
    assert all(f"'id-{n}'" in message for n, message in answers)
    assert most[0] == 1
