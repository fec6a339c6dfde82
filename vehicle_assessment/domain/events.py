"""Domain events: what the pipeline tells other systems, as values built by pure functions.

One event so far, ``AssessmentFinished``: an assessment reached a final status. A yard app or an
auction system subscribes to it instead of polling the API. Publication is at-least-once (a retried
workflow step or a re-run may publish the same event again), so every event carries ``event_id``,
the assessment id and its final status, on which consumers deduplicate.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from vehicle_assessment.domain.models import Assessment, AssessmentStatus, PhotoStatus

# EventBridge's `source` of every event this application publishes; rules match on it. Named once:
# the publisher, the stack's archive and the README's subscription example all use this value.
EVENT_SOURCE = "vehicle-assessment"
# The route a consumer reads the whole assessment from (see functions/api.py).
ASSESSMENT_API_PATH = "/assessments/{assessment_id}"

FINAL_STATUSES = frozenset(
    {
        AssessmentStatus.COMPLETED,
        AssessmentStatus.NEEDS_PHOTOS,
        AssessmentStatus.FAILED,
        AssessmentStatus.INCOMPLETE,
    }
)


class PhotoCounts(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    received: int = Field(ge=0, description="photos on the assessment, whatever happened to them")
    assessed: int = Field(ge=0, description="photos with a damage verdict")
    rejected: int = Field(ge=0, description="photos refused at intake (unreadable, too small, ...)")
    duplicate: int = Field(ge=0, description="copies of an earlier photo of the same assessment")


class AssessmentFinished(BaseModel):
    """The `detail` of an "Assessment Finished" event: what a consumer needs without a second call.

    `schema_version` grows only on a breaking change; fields may be added within a version.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    DETAIL_TYPE: ClassVar[str] = "Assessment Finished"

    schema_version: Literal[1] = 1
    event_id: str = Field(description="'{assessment_id}:{status}': identical on every re-publication")
    assessment_id: str
    vin: str
    status: AssessmentStatus
    finished_at: datetime = Field(description="when the assessment reached this status (its updated_at)")
    adjusted_value_usd: float | None = None
    undamaged_value_usd: float | None = None
    provisional: bool | None = Field(default=None, description="None when the assessment was not valued")
    needs_review: bool
    photos: PhotoCounts
    failed_step: str | None = None
    failure_reason: str | None = None
    api_path: str = Field(description="GET this path on the API for the whole assessment")


def finished_event_id(assessment_id: str, status: AssessmentStatus) -> str:
    return f"{assessment_id}:{status.value}"


def assessment_finished(assessment: Assessment) -> AssessmentFinished:
    """The event for an assessment in a final status; ValueError for one still under way."""
    if assessment.status not in FINAL_STATUSES:
        raise ValueError(
            f"assessment {assessment.assessment_id} is {assessment.status.value}, not finished: no event"
        )
    statuses = [photo.status for photo in assessment.photos]
    valuation = assessment.valuation
    failed = assessment.status == AssessmentStatus.FAILED
    return AssessmentFinished(
        event_id=finished_event_id(assessment.assessment_id, assessment.status),
        assessment_id=assessment.assessment_id,
        vin=assessment.vin,
        status=assessment.status,
        finished_at=assessment.updated_at,
        adjusted_value_usd=valuation.adjusted_value_usd if valuation else None,
        undamaged_value_usd=valuation.undamaged.amount_usd if valuation else None,
        provisional=valuation.provisional if valuation else None,
        needs_review=assessment.needs_review,
        photos=PhotoCounts(
            received=len(statuses),
            # As photo_set.has_assessable_photo counts them: a verdict the valuation could use.
            assessed=sum(1 for p in assessment.photos if p.status == PhotoStatus.ANALYSED and p.verdict),
            rejected=statuses.count(PhotoStatus.REJECTED),
            duplicate=statuses.count(PhotoStatus.DUPLICATE),
        ),
        failed_step=assessment.failed_step if failed else None,
        failure_reason=assessment.failure_reason if failed else None,
        api_path=ASSESSMENT_API_PATH.format(assessment_id=assessment.assessment_id),
    )
