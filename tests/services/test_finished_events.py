"""Each final transition publishes exactly the right "Assessment Finished" event (in-memory bus).

Store (COMPLETED / NEEDS_PHOTOS), MarkFailed (FAILED) and the sweeper (INCOMPLETE); a publish that
fails fails the step (Step Functions retries it) and a retry publishes the same event_id again.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.services.conftest import NOW, awaiting, record
from tests.services.test_workflow_steps_service import (
    FakeEncoder,
    FakeIndex,
    FakeSpeaker,
    OfflineDecoder,
    uploaded,  # noqa: F401  (fixture)
)
from tests.stopped_executions import failure_input
from vehicle_assessment.adapters.memory import InMemoryAssessmentRepository, InMemoryEventPublisher
from vehicle_assessment.aws_runtime import workflow_steps as steps
from vehicle_assessment.aws_runtime.sweeper import republish, sweep
from vehicle_assessment.domain.description import TemplateDescriber
from vehicle_assessment.domain.models import AssessmentStatus, PhotoStatus
from vehicle_assessment.domain.rules import AssessmentRules
from vehicle_assessment.pipeline import AssessmentAlreadyFinished
from vehicle_assessment.pipeline import mark_failed as mark_assessment_failed
from vehicle_assessment.ports import EventPublishFailed

REF = steps.AssessmentRef(assessment_id="wf-1")


def _run_to_store(repo: InMemoryAssessmentRepository, objects, photo_ids: list[str] | None = None) -> None:
    rules = AssessmentRules()
    batch = steps.decode_vin(REF, repo, OfflineDecoder(), clock=lambda: NOW)
    for photo in batch.photos:
        if photo_ids is None or photo.photo_id in photo_ids:
            steps.analyse_photo(
                steps.PhotoTask(assessment_id="wf-1", photo=photo),
                repo,
                objects,
                FakeEncoder(),
                FakeIndex(),
                rules,
            )
    steps.value(REF, repo, rules, clock=lambda: NOW)
    steps.describe(REF, repo, TemplateDescriber(), rules, clock=lambda: NOW)
    steps.speak(REF, repo, FakeSpeaker(), objects, clock=lambda: NOW)


def test_store_publishes_one_completed_event_with_the_summary(uploaded) -> None:  # noqa: F811
    repo, objects = uploaded
    _run_to_store(repo, objects)
    events = InMemoryEventPublisher()

    steps.store(REF, repo, events, clock=lambda: NOW)

    [event] = events.events
    done = repo.get("wf-1")
    assert done.valuation is not None
    assert (event.event_id, event.assessment_id, event.vin) == ("wf-1:COMPLETED", "wf-1", done.vin)
    assert event.status == AssessmentStatus.COMPLETED and event.finished_at == NOW
    assert event.adjusted_value_usd == done.valuation.adjusted_value_usd is not None
    assert event.undamaged_value_usd == done.valuation.undamaged.amount_usd
    assert event.provisional == done.valuation.provisional
    assert event.needs_review is True  # the fake encoder is untrained
    assert (event.photos.received, event.photos.assessed, event.photos.rejected) == (2, 2, 0)
    assert (event.failed_step, event.failure_reason) == (None, None)
    assert event.api_path == "/assessments/wf-1"


def test_store_with_no_assessable_photo_publishes_needs_photos(uploaded) -> None:  # noqa: F811
    repo, objects = uploaded
    _run_to_store(repo, objects, photo_ids=[])  # neither photo analysed: nothing to value
    events = InMemoryEventPublisher()

    result = steps.store(REF, repo, events, clock=lambda: NOW)

    assert result.status == AssessmentStatus.NEEDS_PHOTOS
    [event] = events.events
    assert (event.event_id, event.status) == ("wf-1:NEEDS_PHOTOS", AssessmentStatus.NEEDS_PHOTOS)
    assert (event.photos.received, event.photos.assessed) == (2, 0)
    assert all(p.status == PhotoStatus.RECEIVED for p in repo.get("wf-1").photos)


def test_a_failed_publish_fails_store_after_the_save_and_its_retry_sends_the_same_event(
    uploaded,  # noqa: F811
) -> None:
    repo, objects = uploaded
    _run_to_store(repo, objects)
    events = InMemoryEventPublisher(failures=1)

    with pytest.raises(EventPublishFailed):
        steps.store(REF, repo, events, clock=lambda: NOW)
    assert repo.get("wf-1").status == AssessmentStatus.COMPLETED  # saved first: nothing lost
    assert events.events == []

    steps.store(REF, repo, events, clock=lambda: NOW + timedelta(seconds=4))  # Step Functions' Retry
    [event] = events.events
    assert event.event_id == "wf-1:COMPLETED" and event.finished_at == NOW + timedelta(seconds=4)


def test_mark_failed_publishes_the_failed_step_and_reason(uploaded) -> None:  # noqa: F811
    repo, _ = uploaded
    events = InMemoryEventPublisher()
    error = steps.StepError(Error="States.TaskFailed", Cause="Bedrock is down")

    steps.mark_failed(
        steps.FailureInput(assessment_id="wf-1", failed_step="Describe", error=error),
        repo,
        events,
        clock=lambda: NOW,
    )

    [event] = events.events
    assert (event.event_id, event.status) == ("wf-1:FAILED", AssessmentStatus.FAILED)
    assert (event.failed_step, event.failure_reason) == ("Describe", "States.TaskFailed: Bedrock is down")
    assert (event.adjusted_value_usd, event.provisional) == (None, None)  # never valued


def test_the_sweeper_publishes_one_incomplete_event_per_assessment_it_marks(memory_repository) -> None:
    repo = memory_repository
    repo.create(awaiting("stale-1", NOW - timedelta(hours=3), expected=2))
    record(repo, "stale-1", 1)
    repo.create(awaiting("stale-2", NOW - timedelta(hours=2), expected=2))
    repo.create(awaiting("fresh", NOW - timedelta(minutes=5), expected=2))
    events = InMemoryEventPublisher()

    report = sweep(repo, events, timedelta(hours=1), NOW)
    # A second (racing or later) run finds nothing to move, so publishes nothing.
    again = sweep(repo, events, timedelta(hours=1), NOW)

    assert report.marked_incomplete == ["stale-1", "stale-2"] and again.marked_incomplete == []
    assert [(e.event_id, e.photos.received) for e in events.events] == [
        ("stale-1:INCOMPLETE", 1),
        ("stale-2:INCOMPLETE", 0),
    ]
    assert all(e.status == AssessmentStatus.INCOMPLETE and e.finished_at == NOW for e in events.events)


def test_a_sweep_whose_publish_fails_reports_it_sweeps_the_rest_and_can_republish(memory_repository) -> None:
    repo = memory_repository
    repo.create(awaiting("stale-1", NOW - timedelta(hours=3)))
    repo.create(awaiting("stale-2", NOW - timedelta(hours=2)))
    events = InMemoryEventPublisher(failures=1)

    report = sweep(repo, events, timedelta(hours=1), NOW)

    assert report.marked_incomplete == ["stale-1", "stale-2"] and report.events_failed == ["stale-1"]
    assert [e.event_id for e in events.events] == ["stale-2:INCOMPLETE"]
    assert republish(repo, events, report.events_failed) == ["stale-1"]
    assert [e.event_id for e in events.events] == ["stale-2:INCOMPLETE", "stale-1:INCOMPLETE"]


def test_republish_refuses_an_assessment_that_is_not_finished(memory_repository) -> None:
    memory_repository.create(awaiting("open"))
    with pytest.raises(ValueError, match="AWAITING_PHOTOS, not finished"):
        republish(memory_repository, InMemoryEventPublisher(), ["open"])


# --- executions that timed out or were stopped: the EventBridge rule's input to MarkFailed ----------


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("TIMED_OUT", "the workflow timed out after its 1-hour limit"),
        ("ABORTED", "the workflow was stopped (aborted)"),
    ],
)
def test_a_stopped_execution_marks_its_processing_assessment_failed_with_a_readable_reason(
    uploaded,  # noqa: F811
    status: str,
    reason: str,
) -> None:
    repo, _ = uploaded
    steps.decode_vin(REF, repo, OfflineDecoder(), clock=lambda: NOW)  # PROCESSING, as the run left it
    events = InMemoryEventPublisher()

    result = steps.mark_failed(
        steps.FailureInput.model_validate(failure_input("wf-1", status)), repo, events, clock=lambda: NOW
    )

    assert result is not None and result.status == AssessmentStatus.FAILED
    failed = repo.get("wf-1")
    assert (failed.status, failed.failed_step, failed.failure_reason) == (
        AssessmentStatus.FAILED,
        "workflow",
        reason,
    )
    [event] = events.events
    assert (event.event_id, event.failed_step, event.failure_reason) == ("wf-1:FAILED", "workflow", reason)


def test_a_late_stop_leaves_a_completed_assessment_as_it_is_and_publishes_its_event_again(
    uploaded,  # noqa: F811
) -> None:
    repo, objects = uploaded
    _run_to_store(repo, objects)
    steps.store(REF, repo, InMemoryEventPublisher(), clock=lambda: NOW)
    done = repo.get("wf-1")
    events = InMemoryEventPublisher()

    result = steps.mark_failed(
        steps.FailureInput.model_validate(failure_input("wf-1", "TIMED_OUT")),
        repo,
        events,
        clock=lambda: NOW + timedelta(hours=1),
    )

    assert result is not None and result.status == AssessmentStatus.COMPLETED
    assert repo.get("wf-1") == done  # not saved again: no FAILED, no new revision
    # The execution may have stopped between Store's save and its publication: the same event_id again.
    [event] = events.events
    assert (event.event_id, event.finished_at) == ("wf-1:COMPLETED", NOW)


def test_a_retried_mark_failed_keeps_the_first_reason(uploaded) -> None:  # noqa: F811
    repo, _ = uploaded
    steps.decode_vin(REF, repo, OfflineDecoder(), clock=lambda: NOW)
    error = steps.StepError(Error="States.TaskFailed", Cause="Bedrock is down")
    steps.mark_failed(
        steps.FailureInput(assessment_id="wf-1", failed_step="Describe", error=error),
        repo,
        InMemoryEventPublisher(),
        clock=lambda: NOW,
    )
    events = InMemoryEventPublisher()

    steps.mark_failed(
        steps.FailureInput.model_validate(failure_input("wf-1", "ABORTED")), repo, events, clock=lambda: NOW
    )

    failed = repo.get("wf-1")
    assert (failed.failed_step, failed.failure_reason) == ("Describe", "States.TaskFailed: Bedrock is down")
    assert [e.event_id for e in events.events] == ["wf-1:FAILED"]


def test_a_stopped_execution_that_names_no_assessment_is_logged_and_ignored(
    memory_repository, caplog: pytest.LogCaptureFixture
) -> None:
    events = InMemoryEventPublisher()

    with caplog.at_level("WARNING"):
        result = steps.mark_failed(
            steps.FailureInput.model_validate(failure_input("started-by-hand", "ABORTED")),
            memory_repository,
            events,
        )

    assert result is None and events.events == []
    assert "no assessment 'started-by-hand' to mark FAILED" in caplog.text


def test_a_stopped_execution_status_outside_the_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="execution_status"):
        steps.FailureInput.model_validate(failure_input("wf-1", "SUCCEEDED"))


def test_the_pipeline_refuses_to_mark_a_final_assessment_failed(uploaded) -> None:  # noqa: F811
    repo, _ = uploaded
    repo.mark_status("wf-1", AssessmentStatus.INCOMPLETE, {AssessmentStatus.AWAITING_PHOTOS}, NOW)
    swept = repo.get("wf-1")

    with pytest.raises(AssessmentAlreadyFinished, match="already INCOMPLETE") as refused:
        mark_assessment_failed(swept, "workflow", "late", NOW)
    assert refused.value.assessment is swept
