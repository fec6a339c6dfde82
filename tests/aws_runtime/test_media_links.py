"""GET /assessments/{id}/media on AWS: presigned SigV4 GETs on the private bucket, a photo pinned to the
version that was counted, audio, and each neighbour's reference display copy (moto DynamoDB)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from functions import api as api_handler
from tests.aws_runtime.conftest import BUCKET, NOW, REGION, VIN, Aws, FakeSpeaker, rest_event
from vehicle_assessment.aws_runtime import factory
from vehicle_assessment.domain import limits, upload_keys
from vehicle_assessment.domain.description import TemplateDescriber
from vehicle_assessment.domain.models import (
    AudioRecord,
    AudioStatus,
    DamageType,
    DescriptionStyle,
    EncoderIdentity,
    Neighbour,
    PhotoRecord,
    PhotoStatus,
    PhotoVerdict,
    ReferenceLabel,
    Severity,
)

pytestmark = pytest.mark.slow  # handler end to end on moto

IDENTITY = EncoderIdentity(model_name="fake-clip", pretrained=None, untrained=True, dimension=4)
REFERENCE_SHA = "ab" * 32


@pytest.fixture(autouse=True)
def fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factory, "build_describer", lambda config, **_: TemplateDescriber())
    monkeypatch.setattr(factory, "build_speaker", lambda config: FakeSpeaker())


def _call(event: dict, context) -> tuple[int, dict]:
    response = api_handler.handler(event, context)
    return response["statusCode"], json.loads(response["body"])


def _media(assessment_id: str, context) -> tuple[int, dict]:
    path = f"/assessments/{assessment_id}/media"
    event = rest_event(
        "GET",
        path,
        path_parameters={"assessment_id": assessment_id},
        resource="/assessments/{assessment_id}/media",
    )
    return _call(event, context)


def test_media_links_are_presigned_gets_pinned_to_the_counted_version(
    aws: Aws, repository, lambda_context
) -> None:
    _, created = _call(rest_event("POST", "/assessments", {"vin": VIN}), lambda_context)
    assessment_id = created["assessment_id"]
    key = upload_keys.api_upload_key(assessment_id, 1)
    repository.record_photo(assessment_id, key, 1000, "image/jpeg", NOW, "01", "1.jpg", "v-counted")
    label = ReferenceLabel(damaged=True, damage_type=DamageType.DENT, severity=Severity.MINOR)
    verdict = PhotoVerdict(
        damaged=True,
        damage_type=DamageType.DENT,
        severity=Severity.MINOR,
        damaged_share=1.0,
        confidence=1.0,
        needs_review=False,
        neighbours=[
            Neighbour(reference_id="r1", source="a.jpg", similarity=0.9, label=label, sha256=REFERENCE_SHA),
            # A record written before neighbours kept their digest: no copy to link to.
            Neighbour(reference_id="r2", source="b.jpg", similarity=0.8, label=label),
        ],
    )
    photo = PhotoRecord(
        photo_id="01",
        filename="1.jpg",
        object_key=key,
        size_bytes=1000,
        sha256="cd" * 32,
        status=PhotoStatus.ANALYSED,
        object_version="v-counted",
        verdict=verdict,
    )
    repository.save_photo_result(assessment_id, photo, IDENTITY)
    audio_key = f"audio/{assessment_id}/en-standard.mp3"
    stored = repository.get(assessment_id)
    repository.save(
        stored.model_copy(
            update={
                "audio": [
                    AudioRecord(
                        language="en",
                        style=DescriptionStyle.STANDARD,
                        status=AudioStatus.GENERATED,
                        object_key=audio_key,
                        content_type="audio/mpeg",
                    ),
                    AudioRecord(
                        language="es", style=DescriptionStyle.STANDARD, status=AudioStatus.SKIPPED, reason="x"
                    ),
                ]
            }
        )
    )

    status, body = _media(assessment_id, lambda_context)

    assert status == 200, body
    assert body["expires_in_s"] == limits.MEDIA_LINK_EXPIRES_S
    [photo_link] = body["photos"]
    [audio_link] = body["audio"]  # the skipped one has no object
    [reference_link] = body["references"]  # the neighbour without a digest has no copy to show
    expected_keys = {
        photo_link["url"]: key,
        audio_link["url"]: audio_key,
        reference_link["url"]: upload_keys.reference_image_key(REFERENCE_SHA),
    }
    for url, object_key in expected_keys.items():
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        # The private bucket's regional virtual-hosted name, SigV4 query authentication, short-lived.
        assert parts.scheme == "https" and parts.hostname == f"{BUCKET}.s3.{REGION}.amazonaws.com"
        assert parts.path == f"/{object_key}"
        assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
        assert query["X-Amz-Expires"] == [str(limits.MEDIA_LINK_EXPIRES_S)]
        assert len(query["X-Amz-Signature"][0]) == 64
    assert parse_qs(urlsplit(photo_link["url"]).query)["versionId"] == ["v-counted"]
    assert "versionId" not in parse_qs(urlsplit(audio_link["url"]).query)
    assert reference_link["sha256"] == REFERENCE_SHA


def test_media_of_an_unknown_assessment_is_404(aws: Aws, lambda_context) -> None:
    status, body = _media("no-such-assessment", lambda_context)
    assert status == 404 and "no-such-assessment" in body["message"]
