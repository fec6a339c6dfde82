"""Marks assessments whose photos never all arrived as INCOMPLETE.

Candidates come from the table's sparse GSI2, which holds only assessments in AWAITING_PHOTOS,
sorted by creation time: a query for ``created_at < now - timeout`` reads exactly the stale ones, where
a filtered scan would read (and pay for) the whole table on every run. The transition itself is
conditional (still AWAITING_PHOTOS and still missing photos), so an assessment whose last photo or
workflow start lands meanwhile is left alone.

An assessment that has all its photos but is still AWAITING_PHOTOS after the timeout lost its
workflow start (e.g. the upload message went to the dead-letter queue); when a starter is given,
the sweeper starts it again (idempotent: the execution is named after the assessment).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from vehicle_assessment.domain.models import AssessmentStatus
from vehicle_assessment.ports import WorkflowRepository, WorkflowStarter


@dataclass
class SweepReport:
    cutoff: str
    examined: int = 0
    marked_incomplete: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    left_alone: list[str] = field(default_factory=list)


def sweep(
    repository: WorkflowRepository,
    timeout: timedelta,
    now: datetime,
    limit: int = 200,
    starter: WorkflowStarter | None = None,
) -> SweepReport:
    cutoff = now - timeout
    report = SweepReport(cutoff=cutoff.isoformat())
    for candidate in repository.awaiting_before(cutoff, limit):
        report.examined += 1
        if candidate.received >= candidate.expected:
            if starter is not None and starter.start(candidate.assessment_id):
                report.restarted.append(candidate.assessment_id)
            else:
                report.left_alone.append(candidate.assessment_id)
            continue
        marked = repository.mark_status(
            candidate.assessment_id,
            AssessmentStatus.INCOMPLETE,
            {AssessmentStatus.AWAITING_PHOTOS},
            now,
            only_if_photos_missing=True,
        )
        (report.marked_incomplete if marked else report.left_alone).append(candidate.assessment_id)
    return report
