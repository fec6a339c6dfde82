"""The sweeper: stale AWAITING_PHOTOS → INCOMPLETE; fresh, full and finished ones left alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.aws_runtime.conftest import EVENT_BUS, NOW, STATE_MACHINE_ARN, VIN, Aws
from vehicle_assessment.adapters.aws.step_functions import StepFunctionsStarter
from vehicle_assessment.adapters.memory import InMemoryEventPublisher
from vehicle_assessment.aws_runtime.sweeper import sweep
from vehicle_assessment.aws_runtime.uploads import open_assessment
from vehicle_assessment.domain.models import AssessmentInputs, AssessmentStatus

pytestmark = pytest.mark.slow  # the sweeper end to end on moto (fast: tests/services)


def _open(repository, assessment_id: str, age: timedelta, expected: int = 2) -> None:
    repository.create(open_assessment(AssessmentInputs(vin=VIN), expected, NOW - age, assessment_id))


def _photo(repository, assessment_id: str, n: int) -> None:
    repository.record_photo(
        assessment_id, f"uploads/{assessment_id}/{n}.jpg", 10, "image/jpeg", NOW, str(n), f"{n}.jpg"
    )


def test_sweeper_marks_only_stale_incomplete_uploads(aws: Aws, repository) -> None:
    _open(repository, "stale", timedelta(hours=3))
    _photo(repository, "stale", 1)
    _open(repository, "fresh", timedelta(minutes=5))
    _open(repository, "done", timedelta(hours=5))
    repository.mark_status("done", AssessmentStatus.COMPLETED, {AssessmentStatus.AWAITING_PHOTOS}, NOW)
    _open(repository, "full", timedelta(hours=4))  # all photos in, its workflow start was lost
    _photo(repository, "full", 1)
    _photo(repository, "full", 2)

    report = sweep(
        repository,
        InMemoryEventPublisher(),
        timedelta(hours=1),
        NOW,
        starter=StepFunctionsStarter(aws.sfn, STATE_MACHINE_ARN),
    )

    assert report.marked_incomplete == ["stale"]
    assert report.restarted == ["full"]
    assert report.examined == 2  # the sparse index holds neither the fresh-enough nor the finished one
    assert repository.get("stale").status == AssessmentStatus.INCOMPLETE
    assert repository.get("fresh").status == AssessmentStatus.AWAITING_PHOTOS
    assert repository.get("done").status == AssessmentStatus.COMPLETED
    assert [e["name"] for e in aws.executions()] == ["full"]
    # Swept ones leave the index: the next run has nothing new to mark.
    assert sweep(repository, InMemoryEventPublisher(), timedelta(hours=1), NOW).marked_incomplete == []


def test_sweeper_without_a_starter_leaves_full_ones_alone(aws: Aws, repository) -> None:
    _open(repository, "full", timedelta(hours=4), expected=1)
    _photo(repository, "full", 1)
    report = sweep(repository, InMemoryEventPublisher(), timedelta(hours=1), NOW)
    assert (report.marked_incomplete, report.left_alone) == ([], ["full"])
    assert repository.get("full").status == AssessmentStatus.AWAITING_PHOTOS


def test_the_sweeper_handler_publishes_incomplete_events_and_fails_loudly_when_it_cannot(
    aws: Aws, repository, lambda_context, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions import container_cache, sweeper
    from vehicle_assessment.ports import EventPublishFailed

    created = datetime.now(UTC) - timedelta(hours=3)  # the handler sweeps against the real clock
    for assessment_id in ("stale-1", "stale-2"):
        repository.create(open_assessment(AssessmentInputs(vin=VIN), 2, created, assessment_id))

    monkeypatch.setenv("EVENT_BUS_NAME", "no-such-bus")
    container_cache.reset_all()
    with pytest.raises(EventPublishFailed, match=r'\{"republish": \["stale-1", "stale-2"\]\}'):
        sweeper.handler({}, lambda_context)
    assert repository.get("stale-1").status == AssessmentStatus.INCOMPLETE  # swept all the same

    monkeypatch.setenv("EVENT_BUS_NAME", EVENT_BUS)
    container_cache.reset_all()
    assert sweeper.handler({"republish": ["stale-1", "stale-2"]}, lambda_context) == {
        "republished": ["stale-1", "stale-2"]
    }
    details = [e["detail"] for e in aws.finished_events()]
    assert [(d["event_id"], d["status"]) for d in details] == [
        ("stale-1:INCOMPLETE", "INCOMPLETE"),
        ("stale-2:INCOMPLETE", "INCOMPLETE"),
    ]


def test_the_sweeper_handler_runs_on_its_role_grants(
    aws: Aws, repository, lambda_context, monkeypatch
) -> None:
    """The handler's repository holds only the sweeper's grants (a Query of GSI2, UpdateItem): the
    sweep must work without Scan or any other index (conftest's GrantedTable refuses them)."""
    from datetime import UTC, datetime

    from functions import sweeper as sweeper_handler

    monkeypatch.setenv("SWEEP_TIMEOUT_MINUTES", "60")
    repository.create(
        open_assessment(AssessmentInputs(vin=VIN), 2, datetime.now(UTC) - timedelta(hours=3), "old-1")
    )
    report = sweeper_handler.handler({}, lambda_context)
    assert report["marked_incomplete"] == ["old-1"]
    assert repository.get("old-1").status == AssessmentStatus.INCOMPLETE
