"""The "Assessment Finished" event, built by a pure function from an assessment."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from vehicle_assessment.domain.events import (
    ASSESSMENT_API_PATH,
    EVENT_SOURCE,
    FINAL_STATUSES,
    AssessmentFinished,
    assessment_finished,
)
from vehicle_assessment.domain.models import (
    Assessment,
    AssessmentInputs,
    AssessmentStatus,
    DamageType,
    PhotoRecord,
    PhotoStatus,
    PhotoVerdict,
    Severity,
    UndamagedValue,
    Valuation,
    ValueMethod,
)

VIN = "1FTMW1T88MFA00001"
T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
T1 = datetime(2025, 6, 1, 12, 5, tzinfo=UTC)


def _photo(n: int, status: PhotoStatus, verdict: bool = False) -> PhotoRecord:
    return PhotoRecord(
        photo_id=str(n),
        filename=f"{n}.jpg",
        object_key=f"uploads/a-1/{n}.jpg",
        size_bytes=10,
        sha256="0" * 64,
        status=status,
        verdict=PhotoVerdict(
            damaged=True,
            damage_type=DamageType.DENT,
            severity=Severity.MINOR,
            damaged_share=0.9,
            confidence=0.9,
            needs_review=False,
            neighbours=[],
        )
        if verdict
        else None,
    )


def _assessment(status: AssessmentStatus, **update: object) -> Assessment:
    return Assessment(
        assessment_id="a-1",
        vin=VIN,
        status=status,
        created_at=T0,
        updated_at=T1,
        inputs=AssessmentInputs(vin=VIN),
    ).model_copy(update=update)


VALUATION = Valuation(
    undamaged=UndamagedValue(amount_usd=30_000.0, method=ValueMethod.USER_ESTIMATE, reason="estimate"),
    photos=[],
    combined_depreciation=0.1,
    adjusted_value_usd=27_000.0,
    rule="max",
    provisional=True,
)


def test_a_completed_assessment_gives_its_values_counts_and_path() -> None:
    photos = [
        _photo(1, PhotoStatus.ANALYSED, verdict=True),
        _photo(2, PhotoStatus.ANALYSED, verdict=True),
        _photo(3, PhotoStatus.REJECTED),
        _photo(4, PhotoStatus.DUPLICATE),
    ]
    event = assessment_finished(
        _assessment(
            AssessmentStatus.COMPLETED,
            photos=photos,
            valuation=VALUATION,
            review_reasons=["low confidence"],
            # Left from an earlier failed attempt: a COMPLETED event does not repeat it.
            failed_step="Describe",
            failure_reason="old",
        )
    )
    assert event.model_dump(mode="json") == {
        "schema_version": 1,
        "event_id": "a-1:COMPLETED",
        "assessment_id": "a-1",
        "vin": VIN,
        "status": "COMPLETED",
        "finished_at": "2025-06-01T12:05:00Z",
        "adjusted_value_usd": 27_000.0,
        "undamaged_value_usd": 30_000.0,
        "provisional": True,
        "needs_review": True,
        "photos": {"received": 4, "assessed": 2, "rejected": 1, "duplicate": 1},
        "failed_step": None,
        "failure_reason": None,
        "api_path": "/assessments/a-1",
    }
    assert AssessmentFinished.DETAIL_TYPE == "Assessment Finished"
    assert (
        EVENT_SOURCE == "vehicle-assessment"
        and ASSESSMENT_API_PATH.format(assessment_id="x") == "/assessments/x"
    )


def test_a_failed_assessment_carries_its_step_and_reason_and_no_values() -> None:
    event = assessment_finished(
        _assessment(AssessmentStatus.FAILED, failed_step="Value", failure_reason="ValueError: bad")
    )
    assert (event.event_id, event.failed_step, event.failure_reason) == (
        "a-1:FAILED",
        "Value",
        "ValueError: bad",
    )
    assert (event.adjusted_value_usd, event.undamaged_value_usd, event.provisional) == (None, None, None)
    assert event.needs_review is False and event.photos.received == 0


@pytest.mark.parametrize("status", sorted(set(AssessmentStatus) - FINAL_STATUSES))
def test_an_assessment_under_way_has_no_event(status: AssessmentStatus) -> None:
    with pytest.raises(ValueError, match="not finished"):
        assessment_finished(_assessment(status))


@pytest.mark.parametrize("status", sorted(FINAL_STATUSES))
def test_every_final_status_has_its_own_event_id_and_round_trips(status: AssessmentStatus) -> None:
    event = assessment_finished(_assessment(status))
    assert event.event_id == f"a-1:{status.value}"
    assert AssessmentFinished.model_validate(json.loads(event.model_dump_json())) == event
