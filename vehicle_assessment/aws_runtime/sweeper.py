"""Marks assessments whose photos never all arrived as INCOMPLETE.

Candidates come from the table's sparse GSI2, which holds only assessments in AWAITING_PHOTOS,
sorted by creation time: a query for ``created_at < now - timeout`` reads exactly the stale ones, where
a filtered scan would read (and pay for) the whole table on every run. The transition itself is
conditional (still AWAITING_PHOTOS and still missing photos), so an assessment whose last photo or
workflow start lands meanwhile is left alone.

An assessment that has all its photos but is still AWAITING_PHOTOS after the timeout lost its
workflow start (e.g. the upload message went to the dead-letter queue); when a starter is given,
the sweeper starts it again (idempotent: the execution is named after the assessment).

Each assessment this run marks INCOMPLETE gets one "Assessment Finished" event, published after the
conditional move succeeded: of two racing sweeper runs only the one whose move succeeded publishes,
so there is no duplicate from a race. An assessment whose event could not be published stays
INCOMPLETE (the move is not undone) and leaves the candidates' index, so no later run would publish
it: it is listed in ``events_failed``, logged as an error, and the handler fails the invocation so
the function's error alarm fires. ``republish`` (the handler's ``{"republish": [ids]}``) sends them again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from vehicle_assessment.domain.events import assessment_finished
from vehicle_assessment.domain.models import AssessmentStatus
from vehicle_assessment.ports import EventPublisher, EventPublishFailed, WorkflowRepository, WorkflowStarter

logger = logging.getLogger(__name__)


@dataclass
class SweepReport:
    cutoff: str
    examined: int = 0
    marked_incomplete: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    left_alone: list[str] = field(default_factory=list)
    # Marked INCOMPLETE, but the event could not be published (see the module's docstring).
    events_failed: list[str] = field(default_factory=list)


def sweep(
    repository: WorkflowRepository,
    events: EventPublisher,
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
        if not marked:
            report.left_alone.append(candidate.assessment_id)
            continue
        report.marked_incomplete.append(candidate.assessment_id)
        try:
            events.publish(assessment_finished(repository.get(candidate.assessment_id)))
        except EventPublishFailed as exc:
            # The others are still swept and published; the handler fails the run after reporting.
            logger.error(
                "assessment %s is INCOMPLETE but its event was not published: %s",
                candidate.assessment_id,
                exc,
            )
            report.events_failed.append(candidate.assessment_id)
    return report


def republish(repository: WorkflowRepository, events: EventPublisher, assessment_ids: list[str]) -> list[str]:
    """Publish the events of finished assessments again (e.g. a sweep's ``events_failed``).

    Consumers dedupe on event_id, so a re-publication is harmless. Raises ValueError for an
    assessment not in a final status, AssessmentNotFound for an unknown one, and EventPublishFailed.
    """
    published = []
    for assessment_id in assessment_ids:
        events.publish(assessment_finished(repository.get(assessment_id)))
        published.append(assessment_id)
    return published
