"""The REST API handler with API Gateway REST proxy events (moto S3 and DynamoDB)."""

from __future__ import annotations

import json

import pytest

from functions import api as api_handler
from tests.aws_runtime.conftest import BUCKET, NOW, VIN, Aws, FakeSpeaker, rest_event
from vehicle_assessment.aws_runtime import factory
from vehicle_assessment.domain.description import TemplateDescriber
from vehicle_assessment.domain.models import AssessmentStatus, VehicleFacts

pytestmark = pytest.mark.slow  # handler end to end on moto


@pytest.fixture(autouse=True)
def fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factory, "build_describer", lambda config, **_: TemplateDescriber())
    monkeypatch.setattr(factory, "build_speaker", lambda config: FakeSpeaker())


def _call(event: dict, context) -> tuple[int, dict]:
    response = api_handler.handler(event, context)
    headers = response.get("multiValueHeaders") or {k: [v] for k, v in response.get("headers", {}).items()}
    assert headers["Content-Type"] == ["application/json"]
    return response["statusCode"], json.loads(response["body"])


def _create(context, **body) -> tuple[int, dict]:
    return _call(rest_event("POST", "/assessments", {"vin": VIN, **body}), context)


def test_create_returns_an_id_and_one_presigned_post_per_photo(aws: Aws, repository, lambda_context) -> None:
    status, body = _create(lambda_context, color="red", mileage=1000)
    assert status == 201
    assessment_id = body["assessment_id"]
    assert (body["status"], body["expected_photos"]) == ("AWAITING_PHOTOS", 3)
    assert [u["object_key"] for u in body["uploads"]] == [
        f"uploads/{assessment_id}/{n}.jpg" for n in (1, 2, 3)
    ]
    fields = body["uploads"][0]["fields"]
    assert fields["key"] == f"uploads/{assessment_id}/1.jpg"
    policy = json.loads(__import__("base64").b64decode(fields["policy"]))
    assert ["content-length-range", 1, 15 * 1024 * 1024] in policy["conditions"]
    assert ["starts-with", "$Content-Type", "image/"] in policy["conditions"]
    assert BUCKET in body["uploads"][0]["url"]
    assert repository.get(assessment_id).status == AssessmentStatus.AWAITING_PHOTOS


def test_get_and_list(aws: Aws, lambda_context) -> None:
    _, first = _create(lambda_context)
    _, second = _create(lambda_context, expected_photos=1)
    path = f"/assessments/{first['assessment_id']}"
    status, body = _call(
        rest_event(
            "GET",
            path,
            path_parameters={"assessment_id": first["assessment_id"]},
            resource="/assessments/{assessment_id}",
        ),
        lambda_context,
    )
    assert status == 200
    assert (body["vin"], body["received_photos"], body["rejected_uploads"]) == (VIN, 0, [])

    status, listed = _call(
        rest_event(
            "GET",
            f"/vehicles/{VIN.lower()}/assessments",
            query={"limit": "5"},
            path_parameters={"vin": VIN.lower()},
            resource="/vehicles/{vin}/assessments",
        ),
        lambda_context,
    )
    assert status == 200 and listed["vin"] == VIN
    assert {a["assessment_id"] for a in listed["assessments"]} == {
        first["assessment_id"],
        second["assessment_id"],
    }


def test_validation_errors_are_400_with_a_json_body(aws: Aws, lambda_context) -> None:
    status, body = _create(lambda_context, mileage=-5, surprise=True)
    assert status == 400
    assert body["message"] == "invalid request"
    assert {tuple(e["loc"][-1:]) for e in body["errors"]} >= {("mileage",), ("surprise",)}
    assert "Traceback" not in json.dumps(body)

    status, body = _call(rest_event("POST", "/assessments", "{not json"), lambda_context)
    assert status == 400

    status, body = _create(lambda_context, vin="1FTMW1T88MFA0000I")
    assert status == 400 and body["message"].startswith("invalid VIN")

    status, body = _call(
        rest_event(
            "GET",
            "/vehicles/X/assessments",
            query={"limit": "0"},
            path_parameters={"vin": "X"},
            resource="/vehicles/{vin}/assessments",
        ),
        lambda_context,
    )
    assert status == 400


def test_unknown_assessment_is_404(aws: Aws, lambda_context) -> None:
    status, body = _call(
        rest_event(
            "GET",
            "/assessments/does-not-exist",
            path_parameters={"assessment_id": "does-not-exist"},
            resource="/assessments/{assessment_id}",
        ),
        lambda_context,
    )
    assert status == 404 and body == {"message": "no assessment with id 'does-not-exist'"}


def _regenerate(assessment_id: str, context, **body) -> tuple[int, dict]:
    return _call(
        rest_event(
            "POST",
            f"/assessments/{assessment_id}/descriptions",
            body,
            path_parameters={"assessment_id": assessment_id},
            resource="/assessments/{assessment_id}/descriptions",
        ),
        context,
    )


def test_regenerating_a_description(aws: Aws, repository, lambda_context) -> None:
    _, created = _create(lambda_context)
    assessment_id = created["assessment_id"]
    status, body = _regenerate(assessment_id, lambda_context, style="auctioneer", language="es")
    assert status == 409 and "COMPLETED" in body["message"]

    assessment = repository.get(assessment_id)
    repository.save(
        assessment.model_copy(
            update={
                "status": AssessmentStatus.COMPLETED,
                "vehicle": VehicleFacts(vin=VIN, source="vin", model_year=2021),
            }
        )
    )
    status, body = _regenerate(
        assessment_id, lambda_context, style="auctioneer", language="es", creativity=0.4
    )
    assert status == 200
    assert body["description"]["style"] == "auctioneer" and body["description"]["language"] == "es"
    assert body["audio"]["status"] == "generated"
    assert aws.s3.get_object(Bucket=BUCKET, Key=body["audio"]["object_key"])["Body"].read() == b"ID3fake-mp3"
    saved = repository.get(assessment_id)
    assert [(d.style, d.language) for d in saved.descriptions] == [("auctioneer", "es")]

    status, body = _regenerate(assessment_id, lambda_context, creativity=1.5)
    assert status == 400
    status, body = _regenerate("nope", lambda_context)
    assert status == 404
    assert NOW  # the fixture clock is unused here: the API stamps real time


def test_an_assessment_without_assessable_photos_reads_needs_photos(
    aws: Aws, repository, lambda_context
) -> None:
    _, created = _create(lambda_context)
    assessment_id = created["assessment_id"]
    assessment = repository.get(assessment_id)
    repository.save(
        assessment.model_copy(
            update={
                "status": AssessmentStatus.NEEDS_PHOTOS,
                "vehicle": VehicleFacts(vin=VIN, source="vin", model_year=2021),
            }
        )
    )
    path = f"/assessments/{assessment_id}"
    event = rest_event(
        "GET", path, path_parameters={"assessment_id": assessment_id}, resource="/assessments/{assessment_id}"
    )
    status, body = _call(event, lambda_context)
    assert status == 200 and body["status"] == "NEEDS_PHOTOS"
    # Finished: its description (which says no photo could be assessed) may be regenerated.
    status, body = _regenerate(assessment_id, lambda_context, language="es")
    assert status == 200 and "ninguna foto" in body["description"]["text"]
