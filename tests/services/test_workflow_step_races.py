"""Workflow steps under Step Functions retries and racing writers (in-memory adapters).

A retried step reads the assessment again, so it carries the current revision; a step whose save
finds that another writer saved after its read re-applies its change to what that writer stored,
never overwriting it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.services.conftest import NOW
from tests.services.test_workflow_steps_service import (  # noqa: F401  (uploaded is a fixture)
    FakeEncoder,
    FakeIndex,
    FakeSpeaker,
    OfflineDecoder,
    uploaded,
)
from vehicle_assessment.adapters.memory import (
    InMemoryAssessmentRepository,
    InMemoryEventPublisher,
    InMemoryObjectStore,
)
from vehicle_assessment.aws_runtime import api
from vehicle_assessment.aws_runtime import workflow_steps as steps
from vehicle_assessment.domain.description import TemplateDescriber
from vehicle_assessment.domain.models import (
    Assessment,
    AssessmentStatus,
    Description,
    DescriptionRequest,
    DescriptionStyle,
)
from vehicle_assessment.domain.rules import AssessmentRules

REF = steps.AssessmentRef(assessment_id="wf-1")


def run_workflow(repo: InMemoryAssessmentRepository, objects: InMemoryObjectStore, times: int) -> None:
    """Every step `times` times in a row: a retry after an attempt whose answer was lost."""
    rules = AssessmentRules()
    for _ in range(times):
        batch = steps.decode_vin(REF, repo, OfflineDecoder(), clock=lambda: NOW)
    for photo in batch.photos:
        for _ in range(times):
            task = steps.PhotoTask(assessment_id="wf-1", photo=photo)
            steps.analyse_photo(task, repo, objects, FakeEncoder(), FakeIndex(), rules)
    for _ in range(times):
        steps.value(REF, repo, rules, clock=lambda: NOW)
    for _ in range(times):
        steps.describe(REF, repo, TemplateDescriber(), rules, clock=lambda: NOW)
    for _ in range(times):
        steps.speak(REF, repo, FakeSpeaker(), objects, clock=lambda: NOW)
    events = InMemoryEventPublisher()
    for _ in range(times):
        steps.store(REF, repo, events, clock=lambda: NOW)
    # A retried Store publishes again (at-least-once); every copy is the same event.
    assert len(events.events) == times and len({e.event_id for e in events.events}) == 1


def test_every_step_retried_after_it_saved_still_completes(uploaded) -> None:  # noqa: F811
    repo, objects = uploaded
    run_workflow(repo, objects, times=2)
    twice = repo.get("wf-1")
    assert twice.status == AssessmentStatus.COMPLETED
    assert [(d.style.value, d.language) for d in twice.descriptions] == [
        ("standard", "en"),
        ("standard", "es"),
    ]
    assert [(a.style.value, a.language) for a in twice.audio] == [("standard", "en"), ("standard", "es")]


class MarkedDescriber:
    """The template describer, its text marked: a regenerated description is told apart."""

    def describe(
        self, request: DescriptionRequest, style: DescriptionStyle, language: str, creativity: float
    ) -> Description:
        description = TemplateDescriber().describe(request, style, language, creativity)
        return description.model_copy(update={"text": f"(regenerated) {description.text}"})


def before_the_next_save(
    monkeypatch: pytest.MonkeyPatch, repo: InMemoryAssessmentRepository, other_writer: Callable[[], object]
) -> None:
    """The next save of `repo` happens only after `other_writer` has run: another writer saving
    between a step's read and its save."""
    real_save = repo.save
    pending = [other_writer]

    def save(assessment: Assessment) -> Assessment:
        while pending:
            pending.pop()()
        return real_save(assessment)

    monkeypatch.setattr(repo, "save", save)


def test_a_retried_store_racing_a_regeneration_keeps_the_regenerated_description(
    uploaded,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Store ran, its answer was lost, and Step Functions retries it; meanwhile the assessment is
    COMPLETED, so a regeneration may save between the retry's read and its save."""
    repo, objects = uploaded
    run_workflow(repo, objects, times=1)
    services = api.ApiServices(repo, None, objects, MarkedDescriber(), FakeSpeaker())
    request = api.RegenerateDescriptionRequest(language="es")
    regenerated: list[api.RegenerateDescriptionResponse] = []
    before_the_next_save(
        monkeypatch,
        repo,
        lambda: regenerated.append(api.regenerate_description("wf-1", request, services, NOW)),
    )

    result = steps.store(REF, repo, InMemoryEventPublisher(), clock=lambda: NOW)

    assert result.status == AssessmentStatus.COMPLETED and len(regenerated) == 1
    stored = repo.get("wf-1")
    spanish = next(d for d in stored.descriptions if d.language == "es")
    assert spanish == regenerated[0].description and spanish.text.startswith("(regenerated) ")
    assert regenerated[0].audio in stored.audio


def test_a_step_racing_an_earlier_attempt_of_itself_re_applies_its_change(
    uploaded,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An attempt that outlived its task timeout saves between the retry's read and its save: the
    retry's save is refused, and it redoes its change on what that attempt stored."""
    repo, objects = uploaded
    rules = AssessmentRules()
    steps.decode_vin(REF, repo, OfflineDecoder(), clock=lambda: NOW)
    for photo in repo.get("wf-1").photos:
        task = steps.PhotoTask(
            assessment_id="wf-1", photo=steps.PhotoRef(photo_id=photo.photo_id, object_key=photo.object_key)
        )
        steps.analyse_photo(task, repo, objects, FakeEncoder(), FakeIndex(), rules)
    steps.value(REF, repo, rules, clock=lambda: NOW)
    before_the_next_save(
        monkeypatch,
        repo,
        lambda: steps.describe(REF, repo, TemplateDescriber(), rules, clock=lambda: NOW),
    )
    revision = repo.get("wf-1").revision

    steps.describe(REF, repo, TemplateDescriber(), rules, clock=lambda: NOW)

    stored = repo.get("wf-1")
    assert stored.revision == revision + 2  # the earlier attempt's save, then the retry's
    assert [(d.style.value, d.language) for d in stored.descriptions] == [
        ("standard", "en"),
        ("standard", "es"),
    ]
