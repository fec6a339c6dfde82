"""The upload form the API returns, end to end: built by the handler's own wiring, checked against
S3's SigV4 POST rules, and posted over real HTTP (multipart) to an S3-compatible server."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
import requests

from functions import api as api_handler
from tests.aws_runtime.conftest import PHOTOS, REGION, VIN, Aws, FakeSpeaker, rest_event
from vehicle_assessment.adapters.local.s3_post_policy import Credentials, PostedForm, violations
from vehicle_assessment.aws_runtime import factory
from vehicle_assessment.domain.description import TemplateDescriber

EXPIRES_IN_S = 900  # ApiConfig's default presigned_post_expires_s


@pytest.fixture(autouse=True)
def fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factory, "build_describer", lambda config, **_: TemplateDescriber())
    monkeypatch.setattr(factory, "build_speaker", lambda config: FakeSpeaker())


def _create(lambda_context: Any, expected_photos: int) -> dict[str, Any]:
    response = api_handler.handler(
        rest_event("POST", "/assessments", {"vin": VIN, "expected_photos": expected_photos}), lambda_context
    )
    assert response["statusCode"] == 201, response["body"]
    body: dict[str, Any] = json.loads(response["body"])
    return body


def _signing_credentials() -> Credentials:
    # The credentials the handler's session resolved (mock_aws swaps in its own fakes; the session keeps
    # whichever it resolved first).
    frozen = factory.boto3_session().get_credentials().get_frozen_credentials()
    return Credentials(frozen.access_key, frozen.secret_key, frozen.token)


def _client_form(body: dict[str, Any], upload: dict[str, Any], content_type: str, photo: bytes) -> PostedForm:
    chosen: dict[str, str | bytes] = {"Content-Type": content_type, "file": photo}
    assert [f["name"] for f in body["client_fields"]] == list(chosen)
    return PostedForm(upload["url"], [*upload["fields"].items(), *((n, chosen[n]) for n in chosen)])


def test_the_handler_hands_out_forms_s3_accepts(aws: Aws, lambda_context: Any) -> None:
    # Through functions/api.py's wiring (factory.build_s3_presigning_client), not a client the test built.
    body = _create(lambda_context, expected_photos=2)
    now = datetime.now(UTC)
    credentials = _signing_credentials()
    for upload in body["uploads"]:
        form = _client_form(body, upload, "image/jpeg", b"\xff\xd8\xff" + b"\0" * 100)
        assert violations(form, REGION, credentials, now, EXPIRES_IN_S) == []


@pytest.fixture
def s3_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:  # a free port for the server
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.mark.allow_hosts(["127.0.0.1"])
def test_a_client_posting_the_form_over_http_stores_the_photo_under_its_key(
    s3_server: str, aws_env: None, monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    # moto, in-process or as a server, does not evaluate POST policies or signatures: it stores
    # whatever is posted. That S3 would accept this form is what the evaluator test above (and
    # tests/contracts/test_presigned_upload_form.py) proves; this one proves the multipart form a
    # client builds from the response is a working upload, with the key and type S3 would store.
    from vehicle_assessment.adapters.aws.dynamodb import table_definition

    server_s3 = boto3.client("s3", region_name=REGION, endpoint_url=s3_server)
    bucket = api_handler.get_config().bucket_name
    server_s3.create_bucket(Bucket=bucket)
    dynamodb = boto3.resource("dynamodb", region_name=REGION, endpoint_url=s3_server)
    dynamodb.meta.client.create_table(**table_definition(api_handler.get_config().table_name))
    # The handler's DynamoDB goes to the same local server; its S3 client only signs, offline.
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", s3_server)
    api_handler.get_config.cache_clear()
    api_handler.get_services.cache_clear()

    body = _create(lambda_context, expected_photos=1)
    [upload] = body["uploads"]
    photo = (PHOTOS / "damaged_0003_JPEG.jpg").read_bytes()
    form = _client_form(body, upload, "image/jpeg", photo)
    assert violations(form, REGION, _signing_credentials(), datetime.now(UTC), EXPIRES_IN_S) == []

    # Post to the URL's host as a browser would (virtual-hosted: the bucket is in the Host header),
    # reaching the local server instead of AWS.
    fields = [(name, value) for name, value in form.fields if name != "file"]
    posted = requests.post(
        f"{s3_server}/",
        headers={"Host": urlsplit(upload["url"]).netloc},
        data=fields,
        files={"file": ("front.jpg", photo, "image/jpeg")},
        timeout=10,
    )
    assert posted.status_code == 204, posted.text

    stored = server_s3.get_object(Bucket=bucket, Key=upload["object_key"])
    assert stored["ContentType"] == "image/jpeg"
    assert stored["Body"].read() == photo
    assert upload["object_key"] == f"uploads/{body['assessment_id']}/1.jpg"
