"""`vehicle-assessment submit` end to end over real HTTP on 127.0.0.1: Cognito sign-in, create, multipart
uploads through presigned forms into moto's S3, polling until a final status, the report and exit code."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from tests.conftest import SAMPLE_DATA, run_cli
from tests.remote.fake_stack import (
    BUCKET,
    REGION,
    SYSTEM_CLIENT_ID,
    SYSTEM_CLIENT_SECRET,
    SYSTEM_TOKEN,
    FakeStack,
    moto_server,
    serve,
)
from vehicle_assessment.aws_runtime.api import AssessmentView, PresignedUpload
from vehicle_assessment.domain.models import AssessmentStatus
from vehicle_assessment.remote.submit import Backoff, PhotoFile, upload_photo, wait_until_final

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

VIN = "1HGCM82633A004352"
PHOTOS = [
    SAMPLE_DATA / "queries" / "damaged" / "0003_JPEG.jpg",
    SAMPLE_DATA / "queries" / "damaged" / "0303_JPEG.jpg",
    SAMPLE_DATA / "queries" / "undamaged" / "red_44070187_5e5a50b675_b.jpg",
]


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def stack(s3_url: str) -> FakeStack:
    return FakeStack(s3_url)


@pytest.fixture
def api(stack: FakeStack) -> Iterator[str]:
    with serve(stack) as url:
        yield url


def system_args(api: str) -> list[str]:
    return [
        "--api-url",
        f"{api}/prod/",
        "--cognito-domain",
        api,
        "--integration-client-id",
        SYSTEM_CLIENT_ID,
        "--client-credentials",
    ]


def test_a_system_submits_three_photos_and_gets_the_report(
    stack: FakeStack, api: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VDA_CLIENT_SECRET", SYSTEM_CLIENT_SECRET)

    code, out, err = run_cli(
        capsys, "submit", "--vin", VIN, "--color", "silver", *system_args(api), *map(str, PHOTOS)
    )

    assert code == 0, err
    [assessment_id] = stack.assessments
    assert f"Assessment {assessment_id}  COMPLETED" in out  # render_assessment, as `assess` prints it
    assert "A silver sedan." in out
    # Each photo arrived under its key, with the type its bytes say, byte for byte.
    for number, path in enumerate(PHOTOS, start=1):
        stored = stack.s3.get_object(Bucket=BUCKET, Key=f"uploads/{assessment_id}/{number}.jpg")
        assert stored["ContentType"] == "image/jpeg"
        assert stored["Body"].read() == path.read_bytes()
    # Sign-in once, then the bearer token on every API call; polled until final.
    assert stack.requests[0] == ("POST", "/oauth2/token")
    assert ("POST", "/prod/assessments") in stack.requests
    assert stack.requests.count(("GET", f"/prod/assessments/{assessment_id}")) >= 2
    assert set(stack.tokens_seen) == {SYSTEM_TOKEN}
    assert "PROCESSING" in err and "COMPLETED" in err  # the progress lines
    for secret in (SYSTEM_CLIENT_SECRET, SYSTEM_TOKEN):
        assert secret not in out + err


def _yard_user_pool(moto_url: str, flow: str) -> tuple[Any, str, str]:
    """A user pool on moto's server with one person, ana; its app client allows ``flow``."""
    idp = boto3.client("cognito-idp", region_name=REGION, endpoint_url=moto_url)
    pool = idp.create_user_pool(PoolName="yard")["UserPool"]["Id"]
    client_id = idp.create_user_pool_client(UserPoolId=pool, ClientName="yard-app", ExplicitAuthFlows=[flow])[
        "UserPoolClient"
    ]["ClientId"]
    idp.admin_create_user(UserPoolId=pool, Username="ana")
    idp.admin_set_user_password(UserPoolId=pool, Username="ana", Password="Yard-Passw0rd!", Permanent=True)
    return idp, pool, client_id


@pytest.mark.parametrize(
    ("flow", "options"),
    [("ALLOW_USER_SRP_AUTH", []), ("ALLOW_USER_PASSWORD_AUTH", ["--auth-flow", "password"])],
)
def test_a_person_signs_in_and_the_api_gets_the_access_token_cognito_issued(
    s3_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    flow: str,
    options: list[str],
) -> None:
    # moto's server plays Cognito (it does not check SRP proofs: tests/remote/test_sign_in.py does);
    # the API accepts only an access token it issued.
    idp, pool, client_id = _yard_user_pool(s3_url, flow)
    monkeypatch.setenv("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", s3_url)
    monkeypatch.setenv("VDA_PASSWORD", "Yard-Passw0rd!")

    def issued_by_cognito(token: str) -> bool:
        try:
            return bool(idp.get_user(AccessToken=token)["Username"] == "ana")
        except idp.exceptions.ClientError:
            return False

    stack = FakeStack(s3_url, accepts_token=issued_by_cognito)
    with serve(stack) as api:
        code, out, err = run_cli(
            capsys,
            "submit",
            "--vin",
            VIN,
            "--api-url",
            f"{api}/prod",
            "--user-pool-id",
            pool,
            "--user-pool-client-id",
            client_id,
            "--username",
            "ana",
            *options,
            "--json",
            str(PHOTOS[0]),
        )

    assert code == 0, err
    record = json.loads(out)
    assert record["status"] == "COMPLETED" and record["received_photos"] == 1
    assert "Yard-Passw0rd!" not in out + err


def test_a_wrong_password_is_refused_without_echoing_it(
    s3_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, client_id = _yard_user_pool(s3_url, "ALLOW_USER_PASSWORD_AUTH")
    monkeypatch.setenv("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", s3_url)
    monkeypatch.setenv("VDA_PASSWORD", "not-the-Passw0rd")

    code, _, err = run_cli(
        capsys,
        "submit",
        "--vin",
        VIN,
        "--api-url",
        "http://127.0.0.1:9/prod",
        "--user-pool-client-id",
        client_id,
        "--username",
        "ana",
        "--auth-flow",
        "password",
        str(PHOTOS[0]),
    )

    assert code == 3
    assert "sign-in as ana failed" in err and "NotAuthorizedException" in err
    assert "not-the-Passw0rd" not in err


@pytest.mark.parametrize(
    ("final", "exit_code"),
    [(AssessmentStatus.NEEDS_PHOTOS, 5), (AssessmentStatus.FAILED, 4), (AssessmentStatus.INCOMPLETE, 4)],
)
def test_the_exit_code_follows_the_final_status_as_assess_does(
    s3_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    final: AssessmentStatus,
    exit_code: int,
) -> None:
    monkeypatch.setenv("VDA_CLIENT_SECRET", SYSTEM_CLIENT_SECRET)
    stack = FakeStack(s3_url, finish=lambda view: view.model_copy(update={"status": final}))
    with serve(stack) as api:
        code, out, _ = run_cli(capsys, "submit", "--vin", VIN, *system_args(api), str(PHOTOS[0]))

    assert code == exit_code
    assert final.value in out


def test_a_flaky_gateway_is_retried_for_reads_but_a_create_is_never_sent_twice(
    s3_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VDA_CLIENT_SECRET", SYSTEM_CLIENT_SECRET)
    # Two 503s on a GET: urllib3 retries them and the run completes.
    reads = FakeStack(s3_url, flaky=[("GET", 503), ("GET", 503)])
    with serve(reads) as api:
        code, _, err = run_cli(capsys, "submit", "--vin", VIN, *system_args(api), str(PHOTOS[0]))
    assert code == 0, err
    assert reads.flaky == []

    # A 503 on the create may have created it: the client reports it rather than creating a second one.
    creates = FakeStack(s3_url, flaky=[("POST", 503)])
    with serve(creates) as api:
        code, _, err = run_cli(capsys, "submit", "--vin", VIN, *system_args(api), str(PHOTOS[0]))
    assert code == 3
    assert "POST assessments answered 503: Service Unavailable" in err
    assert creates.requests.count(("POST", "/prod/assessments")) == 1
    assert creates.assessments == {}


def test_a_wrong_client_secret_is_refused_without_echoing_it(
    stack: FakeStack, api: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VDA_CLIENT_SECRET", "wrong-secret-value")

    code, _, err = run_cli(capsys, "submit", "--vin", VIN, *system_args(api), str(PHOTOS[0]))

    assert code == 3
    assert "refused client integration-client (400): invalid_client" in err
    assert "wrong-secret-value" not in err
    assert stack.requests == [("POST", "/oauth2/token")]  # nothing created


def test_a_photo_that_is_not_an_image_is_refused_before_signing_in(
    stack: FakeStack,
    api: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("VDA_CLIENT_SECRET", SYSTEM_CLIENT_SECRET)
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a photo")

    code, _, err = run_cli(capsys, "submit", "--vin", VIN, *system_args(api), str(notes))

    assert code == 2
    assert "is not image/jpeg, image/png, image/webp" in err
    assert stack.requests == []


def test_a_secret_is_never_a_flag_and_is_required_without_a_terminal(
    api: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "submit", "--vin", VIN, *system_args(api), str(PHOTOS[0]))

    assert code == 3
    assert "set VDA_CLIENT_SECRET" in err


def test_waiting_stops_at_the_timeout_and_says_the_assessment_goes_on(
    s3_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VDA_CLIENT_SECRET", SYSTEM_CLIENT_SECRET)
    stack = FakeStack(s3_url, finish=lambda view: view)  # stays PROCESSING
    with serve(stack) as api:
        code, _, err = run_cli(
            capsys, "submit", "--vin", VIN, *system_args(api), "--timeout", "0", str(PHOTOS[0])
        )

    assert code == 6
    assert "is still PROCESSING after 0 s" in err and "goes on in the cloud" in err


def test_the_upload_form_sends_the_server_fields_then_content_type_then_the_file_last(
    stack: FakeStack, api: str
) -> None:
    upload = PresignedUpload(
        photo_number=1,
        object_key="uploads/x/1.jpg",
        url=f"{api}/form-echo",
        fields={"key": "k", "policy": "p"},
    )
    photo = PhotoFile("front.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 10, "image/png")

    upload_photo(requests.Session(), upload, photo)

    assert stack.posted_forms == [["key", "policy", "Content-Type", "file"]]


class _Polled:
    def __init__(self, statuses: list[AssessmentStatus], view: AssessmentView) -> None:
        self.statuses, self.view = statuses, view

    def get_assessment(self, assessment_id: str) -> AssessmentView:
        return self.view.model_copy(update={"status": self.statuses.pop(0)})


def test_polling_backs_off_until_the_status_is_final(stack: FakeStack) -> None:
    from datetime import UTC, datetime

    from vehicle_assessment.aws_runtime.uploads import open_assessment
    from vehicle_assessment.domain.models import AssessmentInputs

    opened = open_assessment(AssessmentInputs(vin=VIN), 1, datetime.now(UTC))
    view = AssessmentView(**opened.model_dump(), received_photos=1)
    waiting = [AssessmentStatus.PROCESSING] * 4
    api = _Polled([*waiting, AssessmentStatus.COMPLETED], view)
    slept: list[float] = []
    now = [0.0]

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    final = wait_until_final(
        api,
        view.assessment_id,
        60.0,
        lambda v, t: None,
        backoff=Backoff(first_s=1.0, factor=2.0, most_s=5.0),
        sleep=sleep,
        clock=lambda: now[0],
    )

    assert final.status == AssessmentStatus.COMPLETED
    assert slept == [1.0, 2.0, 4.0, 5.0]
