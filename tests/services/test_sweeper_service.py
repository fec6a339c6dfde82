"""The sweeper on the in-memory repository: stale → INCOMPLETE, full ones restarted, others left alone."""

from __future__ import annotations

from datetime import timedelta

from tests.services.conftest import NOW, FakeStarter, awaiting, record
from vehicle_assessment.adapters.memory import InMemoryEventPublisher
from vehicle_assessment.aws_runtime.sweeper import sweep
from vehicle_assessment.domain.models import AssessmentStatus


def _open(repo, assessment_id: str, age: timedelta, expected: int = 2) -> None:
    repo.create(awaiting(assessment_id, NOW - age, expected))


def test_sweep_marks_stale_restarts_full_and_spares_the_rest(memory_repository, starter: FakeStarter) -> None:
    repo = memory_repository
    _open(repo, "stale", timedelta(hours=3))
    record(repo, "stale", 1)
    _open(repo, "fresh", timedelta(minutes=5))
    _open(repo, "full", timedelta(hours=4))
    record(repo, "full", 1)
    record(repo, "full", 2)
    _open(repo, "finished", timedelta(hours=4), expected=1)
    record(repo, "finished", 1)
    starter.finished.add("finished")  # its execution already ran: the starter answers False

    report = sweep(repo, InMemoryEventPublisher(), timedelta(hours=1), NOW, starter=starter)

    assert (report.examined, report.marked_incomplete) == (3, ["stale"])
    assert (report.restarted, report.left_alone) == (["full"], ["finished"])
    assert repo.get("stale").status == AssessmentStatus.INCOMPLETE
    assert repo.get("fresh").status == AssessmentStatus.AWAITING_PHOTOS
    assert sweep(repo, InMemoryEventPublisher(), timedelta(hours=1), NOW).marked_incomplete == []


def test_sweep_respects_its_batch_limit(memory_repository) -> None:
    for i in range(5):
        _open(memory_repository, f"s-{i}", timedelta(hours=2 + i))
    report = sweep(memory_repository, InMemoryEventPublisher(), timedelta(hours=1), NOW, limit=2)
    assert report.marked_incomplete == ["s-4", "s-3"]  # the oldest first
