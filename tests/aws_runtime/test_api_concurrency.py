"""The regenerate route when another request saves the assessment between its read and its save.

The describer fake is where the race is forced: the handler has read the assessment and is
writing the description when another regeneration (another Lambda instance, on the same table)
runs to completion. The handler's save then finds a newer revision.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from functions import api as api_handler
from tests.aws_runtime.conftest import NOW, VIN, Aws, FakeSpeaker, rest_event
from vehicle_assessment.adapters.aws.dynamodb import DynamoAssessmentRepository
from vehicle_assessment.adapters.memory import InMemoryObjectStore
from vehicle_assessment.aws_runtime import api, factory
from vehicle_assessment.aws_runtime.uploads import open_assessment
from vehicle_assessment.domain.description import TemplateDescriber
from vehicle_assessment.domain.models import (
    AssessmentInputs,
    AssessmentStatus,
    Description,
    DescriptionRequest,
    DescriptionStyle,
    VehicleFacts,
)

pytestmark = pytest.mark.slow  # handler end to end on moto


class InterleavingDescriber:
    """The template describer; on its first call, another regeneration of `other_request` runs to
    completion first, as a concurrent request would between this one's read and its save."""

    def __init__(
        self, repository: DynamoAssessmentRepository, assessment_id: str, other_request: dict
    ) -> None:
        self.template = TemplateDescriber()
        self.other = (assessment_id, api.RegenerateDescriptionRequest.model_validate(other_request))
        self.other_services = api.ApiServices(
            repository, None, InMemoryObjectStore(), TemplateDescriber(), FakeSpeaker()
        )
        self.other_answer: api.RegenerateDescriptionResponse | None = None

    def describe(
        self, request: DescriptionRequest, style: DescriptionStyle, language: str, creativity: float
    ) -> Description:
        if self.other_answer is None:
            assessment_id, other_request = self.other
            self.other_answer = api.regenerate_description(
                assessment_id, other_request, self.other_services, datetime.now(UTC)
            )
        return self.template.describe(request, style, language, creativity)


def _finished(repository: DynamoAssessmentRepository, assessment_id: str) -> None:
    inputs = AssessmentInputs(vin=VIN, color="red", mileage=1000)
    repository.create(open_assessment(inputs, 1, NOW, assessment_id))
    repository.save(
        repository.get(assessment_id).model_copy(
            update={
                "status": AssessmentStatus.COMPLETED,
                "vehicle": VehicleFacts(vin=VIN, source="vin", model_year=2021),
            }
        )
    )


def _regenerate(assessment_id: str, context: Any, body: dict) -> tuple[int, dict]:
    event = rest_event(
        "POST",
        f"/assessments/{assessment_id}/descriptions",
        body,
        path_parameters={"assessment_id": assessment_id},
        resource="/assessments/{assessment_id}/descriptions",
    )
    response = api_handler.handler(event, context)
    return response["statusCode"], json.loads(response["body"])


def _describer(monkeypatch: pytest.MonkeyPatch, describer: InterleavingDescriber) -> None:
    monkeypatch.setattr(factory, "build_describer", lambda config, **_: describer)
    monkeypatch.setattr(factory, "build_speaker", lambda config: FakeSpeaker())


def test_a_regeneration_beaten_to_the_save_by_another_pair_keeps_both(
    aws: Aws, repository: DynamoAssessmentRepository, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _finished(repository, "c-1")
    describer = InterleavingDescriber(repository, "c-1", {"style": "auctioneer", "language": "es"})
    _describer(monkeypatch, describer)

    status, body = _regenerate("c-1", lambda_context, {"style": "standard", "language": "en"})

    assert status == 200, body
    assert describer.other_answer is not None  # the other request did save first
    stored = repository.get("c-1")
    assert {(d.style.value, d.language) for d in stored.descriptions} == {
        ("auctioneer", "es"),
        ("standard", "en"),
    }
    assert {(a.style.value, a.language) for a in stored.audio} == {("auctioneer", "es"), ("standard", "en")}


def test_a_regeneration_beaten_to_the_save_by_the_same_pair_is_409(
    aws: Aws, repository: DynamoAssessmentRepository, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _finished(repository, "c-2")
    describer = InterleavingDescriber(repository, "c-2", {"style": "standard", "language": "en"})
    _describer(monkeypatch, describer)

    status, body = _regenerate(
        "c-2", lambda_context, {"style": "standard", "language": "en", "creativity": 0.5}
    )

    assert status == 409
    assert body == {
        "message": "another request replaced the standard/en description of assessment c-2 meanwhile; "
        "read it, and ask again if a new one is still wanted"
    }
    stored = repository.get("c-2")
    assert describer.other_answer is not None
    assert stored.descriptions == [describer.other_answer.description]
    assert stored.audio == [describer.other_answer.audio]
