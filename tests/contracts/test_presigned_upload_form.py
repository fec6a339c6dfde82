"""The upload forms the API hands out satisfy S3's SigV4 POST rules, checked by an evaluator that
models S3 (vehicle_assessment/adapters/local/s3_post_policy.py), not by moto, which accepts any form."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import boto3
import pytest

from vehicle_assessment.adapters.aws.clients import make_boto3_client, make_s3_presigning_client
from vehicle_assessment.adapters.aws.settings import AwsClientSettings
from vehicle_assessment.adapters.local.s3_post_policy import (
    Credentials,
    PostedForm,
    sigv4_signature,
    violations,
)
from vehicle_assessment.aws_runtime import api
from vehicle_assessment.domain import limits
from vehicle_assessment.domain.content_type import (
    ACCEPTED_IMAGE_TYPES,
    IMAGE_TYPE_PREFIX,
    sniff_content_type,
)

REGIONS = ("us-east-1", "us-west-2", "eu-central-1")
BUCKET = "assessment-photos-contract"
VIN = "1FTMW1T88MFA00001"
EXPIRES_IN_S = 900
TEMPORARY = Credentials(
    "ASIAEXAMPLEKEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "session-token/EXAMPLE="
)
LONG_TERM = Credentials("AKIAEXAMPLEKEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
JPEG = b"\xff\xd8\xff\xe0" + b"\0" * 2044


class _NewAssessments:
    """The repository port create_assessment uses: every assessment is new."""

    def create(self, assessment: object) -> bool:
        return True


def _session(credentials: Credentials) -> boto3.Session:
    return boto3.Session(
        aws_access_key_id=credentials.access_key,
        aws_secret_access_key=credentials.secret_key,
        aws_session_token=credentials.token,
    )


def _create(s3_client: Any, expected_photos: int = 2) -> api.CreateAssessmentResponse:
    services = api.ApiServices(
        repository=cast(Any, _NewAssessments()), s3_client=s3_client, objects=cast(Any, None)
    )
    policy = api.UploadPolicy(
        bucket=BUCKET,
        expected_photos=expected_photos,
        max_upload_bytes=limits.MAX_PHOTO_BYTES,
        expires_in_s=EXPIRES_IN_S,
    )
    request = api.CreateAssessmentRequest(vin=VIN)
    return api.create_assessment(request, services, policy, datetime.now(UTC))


def _presigning_client(region: str, credentials: Credentials) -> Any:
    return make_s3_presigning_client(region, AwsClientSettings(), _session(credentials))


def client_form(
    response: api.CreateAssessmentResponse, upload: api.PresignedUpload, content_type: str, photo: bytes
) -> PostedForm:
    """What a client sends that follows the response: its fields, then the client_fields, file last."""
    chosen: dict[str, str | bytes] = {"Content-Type": content_type, "file": photo}
    assert [f.name for f in response.client_fields] == list(chosen)
    return PostedForm(
        upload.url, [*upload.fields.items(), *((f.name, chosen[f.name]) for f in response.client_fields)]
    )


def _policy(upload: api.PresignedUpload) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(base64.b64decode(upload.fields["policy"])))


@pytest.mark.parametrize("region", REGIONS)
@pytest.mark.parametrize("credentials", [TEMPORARY, LONG_TERM], ids=["session-token", "long-term-key"])
def test_every_policy_condition_holds_for_the_form_a_client_sends(
    region: str, credentials: Credentials
) -> None:
    response = _create(_presigning_client(region, credentials))
    now = datetime.now(UTC)
    for upload in response.uploads:
        assert upload.url == f"https://{BUCKET}.s3.{region}.amazonaws.com/"
        conditions = _policy(upload)["conditions"]
        # Everything the server decides is enforced by S3, not trusted to the client.
        assert {"bucket": BUCKET} in conditions
        assert {"key": upload.object_key} in conditions
        assert ["content-length-range", 1, limits.MAX_PHOTO_BYTES] in conditions
        assert ["starts-with", "$Content-Type", IMAGE_TYPE_PREFIX] in conditions
        assert ("x-amz-security-token" in upload.fields) == (credentials.token is not None)
        for content_type in response.client_fields[0].accepted_values:
            form = client_form(response, upload, content_type, JPEG)
            assert violations(form, region, credentials, now, EXPIRES_IN_S) == []
        largest = client_form(response, upload, "image/png", b"\x89" * limits.MAX_PHOTO_BYTES)
        assert violations(largest, region, credentials, now, EXPIRES_IN_S) == []


def test_the_response_names_the_content_type_every_accepted_photo_may_declare() -> None:
    response = _create(_presigning_client("us-east-1", TEMPORARY))
    content_type, file = response.client_fields
    assert (content_type.name, content_type.accepted_values) == ("Content-Type", list(ACCEPTED_IMAGE_TYPES))
    assert (file.name, file.accepted_values) == ("file", [])
    assert str(limits.MAX_PHOTO_BYTES) in file.description


def test_the_committed_openapi_schema_documents_the_client_fields() -> None:
    schema = json.loads((Path(__file__).resolve().parents[2] / "functions" / "openapi.json").read_text())
    response = schema["components"]["schemas"]["CreateAssessmentResponse"]
    assert "client_fields" in response["required"]
    described = response["properties"]["client_fields"]["description"]
    assert all(name in described for name in ("Content-Type", *ACCEPTED_IMAGE_TYPES, "file"))


def test_accepted_types_are_what_the_trigger_sniffs_and_share_the_policy_prefix() -> None:
    samples = [b"\xff\xd8\xff\xe0" + b"\0" * 8, b"\x89PNG\r\n\x1a\n" + b"\0" * 4, b"RIFF\0\0\0\0WEBP"]
    assert [sniff_content_type(s) for s in samples] == list(ACCEPTED_IMAGE_TYPES)
    assert all(t.startswith(IMAGE_TYPE_PREFIX) for t in ACCEPTED_IMAGE_TYPES)


def test_a_form_of_only_the_returned_fields_is_refused_for_want_of_content_type() -> None:
    # Why client_fields exists: the policy names Content-Type, which only the client can fill in.
    response = _create(_presigning_client("us-west-2", TEMPORARY), expected_photos=1)
    [upload] = response.uploads
    form = PostedForm(upload.url, [*upload.fields.items(), ("file", JPEG)])
    found = violations(form, "us-west-2", TEMPORARY, datetime.now(UTC), EXPIRES_IN_S)
    assert found == [
        "condition ['starts-with', '$Content-Type', 'image/'] names 'Content-Type', "
        "which the form does not send"
    ]


@pytest.mark.parametrize("region", REGIONS)
def test_the_evaluator_refuses_a_form_from_a_client_built_without_sigv4(region: str) -> None:
    # The API's old presigning client: botocore's defaults (SigV2 in us-east-1/us-west-2, global URL).
    response = _create(make_boto3_client("s3", region, AwsClientSettings(), _session(TEMPORARY)))
    form = client_form(response, response.uploads[0], "image/jpeg", JPEG)
    found = violations(form, region, TEMPORARY, datetime.now(UTC), EXPIRES_IN_S)
    assert any("global endpoint" in v for v in found), found
    if region != "eu-central-1":  # botocore signs SigV2 only in the regions that once took it
        assert any("SigV2 field 'AWSAccessKeyId'" in v for v in found), found
        assert any("x-amz-algorithm is None" in v for v in found), found


def _one_upload_form(
    region: str = "eu-central-1",
) -> tuple[api.CreateAssessmentResponse, api.PresignedUpload]:
    response = _create(_presigning_client(region, TEMPORARY), expected_photos=1)
    return response, response.uploads[0]


@pytest.mark.parametrize(
    ("content_type", "photo", "expected"),
    [
        ("image/jpeg", b"", "file of 0 bytes is outside content-length-range"),
        ("image/jpeg", b"\xff" * (limits.MAX_PHOTO_BYTES + 1), "outside content-length-range"),
        (
            "application/pdf",
            JPEG,
            "'Content-Type' is 'application/pdf'; the policy requires it to start with",
        ),
    ],
    ids=["empty", "too-large", "not-an-image"],
)
def test_the_evaluator_refuses_what_the_policy_forbids(
    content_type: str, photo: bytes, expected: str
) -> None:
    response, upload = _one_upload_form()
    found = violations(
        client_form(response, upload, content_type, photo), "eu-central-1", TEMPORARY, datetime.now(UTC), 900
    )
    assert len(found) == 1 and expected in found[0], found


def test_the_evaluator_refuses_another_key_a_wrong_secret_an_expired_policy_and_extra_fields() -> None:
    response, upload = _one_upload_form()
    now = datetime.now(UTC)
    form = client_form(response, upload, "image/jpeg", JPEG)

    def check(posted: PostedForm, credentials: Credentials = TEMPORARY, at: datetime = now) -> list[str]:
        return violations(posted, "eu-central-1", credentials, at, EXPIRES_IN_S)

    other_key = [(n, "uploads/someone-else/1.jpg" if n == "key" else v) for n, v in form.fields]
    assert any("'key' is 'uploads/someone-else/1.jpg'" in v for v in check(replace(form, fields=other_key)))
    wrong_secret = replace(TEMPORARY, secret_key="not-the-secret")
    assert check(form, wrong_secret) == [
        "x-amz-signature does not match the policy signed with these credentials"
    ]
    assert any("policy expired" in v for v in check(form, at=now + timedelta(seconds=EXPIRES_IN_S + 1)))
    extra = [*form.fields[:-1], ("acl", "public-read"), form.fields[-1]]
    assert check(replace(form, fields=extra)) == ["form field 'acl' is not named by any policy condition"]
    after_file = [*form.fields, ("Content-Type", "image/png")]
    assert any("file must be the last field" in v for v in check(replace(form, fields=after_file)))
    other_region = violations(form, "us-west-2", TEMPORARY, now, EXPIRES_IN_S)
    assert any("not the regional virtual-hosted endpoint" in v for v in other_region)
    assert any("x-amz-credential is" in v for v in other_region)


def test_the_signing_chain_matches_the_aws_worked_example() -> None:
    # AWS General Reference, "Calculate the signature for AWS Signature Version 4" (sigv4-calculate-
    # signature.html): its example string to sign, key, date, region and service, and the signature it
    # gives. A POST form signs the same way, with the base64 policy as the string to sign.
    string_to_sign = (
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/iam/aws4_request\n"
        "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
    )
    signature = sigv4_signature(
        string_to_sign, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830", "us-east-1", "iam"
    )
    assert signature == "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
