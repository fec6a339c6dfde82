"""GET /assessments on the Lambda handler (moto DynamoDB, the API role's table access): newest first,
filtered by status, VIN and needs-review, paged with `next`, from the by-status index (no scan)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions import api as api_handler
from tests.aws_runtime.conftest import VIN, Aws, FakeSpeaker, rest_event
from vehicle_assessment.aws_runtime import factory
from vehicle_assessment.domain.description import TemplateDescriber
from vehicle_assessment.domain.models import AssessmentStatus

pytestmark = pytest.mark.slow  # handler end to end on moto

OTHER_VIN = "5YJSA1E29GF000001"


@pytest.fixture(autouse=True)
def fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factory, "build_describer", lambda config, **_: TemplateDescriber())
    monkeypatch.setattr(factory, "build_speaker", lambda config: FakeSpeaker())


def _call(event: dict[str, Any], context: Any) -> tuple[int, dict[str, Any]]:
    response = api_handler.handler(event, context)
    return response["statusCode"], json.loads(response["body"])


def _list(context: Any, **query: str) -> tuple[int, dict[str, Any]]:
    return _call(rest_event("GET", "/assessments", query=query or None), context)


def test_the_list_is_newest_first_filtered_and_paged(aws: Aws, repository, lambda_context) -> None:
    created = []
    for vin in (VIN, OTHER_VIN, VIN):
        status, body = _call(rest_event("POST", "/assessments", {"vin": vin}), lambda_context)
        assert status == 201, body
        created.append(body["assessment_id"])
    finished = repository.get(created[1])
    repository.save(
        finished.model_copy(update={"status": AssessmentStatus.COMPLETED, "review_reasons": ["photo 1: low"]})
    )
    # API-created ids are random: newest first is creation order reversed (ties by id).
    newest_first = [
        a.assessment_id
        for a in sorted(
            (repository.get(i) for i in created), key=lambda a: (a.created_at, a.assessment_id), reverse=True
        )
    ]

    status, body = _list(lambda_context)
    assert status == 200, body
    assert [a["assessment_id"] for a in body["assessments"]] == newest_first and body["next_token"] is None
    assert {a["vin"] for a in body["assessments"]} == {VIN, OTHER_VIN}

    seen, token = [], None
    while True:
        status, body = _list(lambda_context, limit="1", **({"next": token} if token else {}))
        assert status == 200 and len(body["assessments"]) <= 1
        seen += [a["assessment_id"] for a in body["assessments"]]
        token = body["next_token"]
        if token is None:
            break
    assert seen == newest_first

    status, body = _list(lambda_context, status="COMPLETED")
    assert [a["assessment_id"] for a in body["assessments"]] == [created[1]]
    assert body["assessments"][0]["needs_review"] is True
    status, body = _list(lambda_context, needs_review="true")
    assert [a["assessment_id"] for a in body["assessments"]] == [created[1]]
    status, body = _list(lambda_context, vin=VIN.lower(), status="AWAITING_PHOTOS")
    assert sorted(a["assessment_id"] for a in body["assessments"]) == sorted([created[0], created[2]])


@pytest.mark.parametrize(
    "query", [{"status": "DONE"}, {"limit": "0"}, {"limit": "101"}, {"next": "not-a-token"}, {"vin": ""}]
)
def test_bad_list_parameters_are_400(aws: Aws, lambda_context, query: dict[str, str]) -> None:
    status, body = _list(lambda_context, **query)
    assert status == 400, body
