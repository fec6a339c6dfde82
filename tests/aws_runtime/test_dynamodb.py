"""The DynamoDB repository on moto: conditional writes, numbers, history and the sweeper's index."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from tests.aws_runtime.conftest import NOW, VIN
from vehicle_assessment.adapters.aws.dynamodb import (
    DynamoAssessmentRepository,
    UploadOutcome,
    from_dynamo,
    to_dynamo,
)
from vehicle_assessment.aws_runtime.uploads import open_assessment
from vehicle_assessment.domain.models import (
    AssessmentInputs,
    AssessmentStatus,
    UndamagedValue,
    Valuation,
    ValueMethod,
)
from vehicle_assessment.ports import AssessmentNotFound


def _awaiting(assessment_id: str, created=NOW, expected: int = 3):
    inputs = AssessmentInputs(vin=VIN, color="red", mileage=12_345, estimate_usd=20_000.5)
    return open_assessment(inputs, expected, created, assessment_id)


def _record(repo: DynamoAssessmentRepository, assessment_id: str, n: int | str):
    return repo.record_photo(
        assessment_id, f"uploads/{assessment_id}/{n}.jpg", 1000, "image/jpeg", NOW, str(n), f"{n}.jpg"
    )


def test_numbers_are_decimals_in_the_table_and_floats_again_on_read() -> None:
    stored = to_dynamo({"a": 0.1, "b": [1, 2.5e-7, True, None], "c": "x"})
    assert stored == {"a": Decimal("0.1"), "b": [1, Decimal("2.5E-7"), True, None], "c": "x"}
    assert from_dynamo(stored) == {"a": 0.1, "b": [1, 2.5e-7, True, None], "c": "x"}
    with pytest.raises(ValueError, match="cannot store"):
        to_dynamo(float("nan"))


def test_round_trip_keeps_the_document(aws, repository: DynamoAssessmentRepository) -> None:
    assessment = _awaiting("a-1")
    assert repository.create(assessment)
    assert not repository.create(assessment)  # attribute_not_exists(PK)
    valued = assessment.model_copy(
        update={
            "status": AssessmentStatus.COMPLETED,
            "valuation": Valuation(
                undamaged=UndamagedValue(
                    amount_usd=20_000.5, method=ValueMethod.USER_ESTIMATE, reason="given"
                ),
                photos=[],
                combined_depreciation=0.1,
                adjusted_value_usd=18_000.45,
                rule="r",
                provisional=False,
            ),
        }
    )
    repository.save(valued)
    item = aws.table.get_item(Key={"PK": "ASSESSMENT#a-1", "SK": "META"})["Item"]
    assert item["document"]["valuation"]["adjusted_value_usd"] == Decimal("18000.45")  # a number, not text
    assert item["status"] == "COMPLETED" and "GSI2PK" not in item  # left the awaiting index
    assert repository.get("a-1") == valued
    with pytest.raises(AssessmentNotFound):
        repository.get("nope")


def test_history_per_vin_is_newest_first_and_limited(repository: DynamoAssessmentRepository) -> None:
    for i in range(4):
        repository.create(_awaiting(f"h-{i}", NOW + timedelta(minutes=i)))
    found = repository.list_by_vin(VIN, limit=3)
    assert [a.assessment_id for a in found] == ["h-3", "h-2", "h-1"]
    assert repository.list_by_vin("OTHERVIN000000000") == []


def test_duplicates_and_reordering_count_each_key_once(repository: DynamoAssessmentRepository) -> None:
    repository.create(_awaiting("d-1"))
    outcomes = [_record(repository, "d-1", n) for n in (2, 2, 3, 2, 1, 3)]
    assert [o.outcome for o in outcomes] == [
        UploadOutcome.ACCEPTED,
        UploadOutcome.DUPLICATE,
        UploadOutcome.ACCEPTED,
        UploadOutcome.DUPLICATE,
        UploadOutcome.ACCEPTED,
        UploadOutcome.DUPLICATE,
    ]
    assert [o.completes for o in outcomes] == [False, False, False, False, True, False]
    photos = repository.get("d-1").photos
    assert [p.photo_id for p in photos] == ["1", "2", "3"] and all(p.status == "received" for p in photos)


def test_extra_photo_is_rejected_with_the_count(repository: DynamoAssessmentRepository) -> None:
    repository.create(_awaiting("x-1"))
    for n in (1, 2, 3):
        _record(repository, "x-1", n)
    extra = _record(repository, "x-1", 4)
    assert extra.outcome == UploadOutcome.REJECTED
    assert extra.reason == "already has 3 of 3 photos"


def test_last_slot_race_has_exactly_one_winner(repository: DynamoAssessmentRepository) -> None:
    """Two different photos racing for the last slot: DynamoDB serialises the conditional updates."""
    repository.create(_awaiting("r-1"))
    _record(repository, "r-1", 1)
    _record(repository, "r-1", 2)
    first, second = _record(repository, "r-1", "3a"), _record(repository, "r-1", "3b")
    assert (first.completes, second.completes) == (True, False)
    assert second.outcome == UploadOutcome.REJECTED


def test_unknown_and_finished_assessments_do_not_count(repository: DynamoAssessmentRepository) -> None:
    assert _record(repository, "ghost", 1).outcome == UploadOutcome.UNKNOWN_ASSESSMENT
    repository.create(_awaiting("f-1"))
    assert repository.mark_status("f-1", AssessmentStatus.INCOMPLETE, {AssessmentStatus.AWAITING_PHOTOS}, NOW)
    late = _record(repository, "f-1", 1)
    assert late.outcome == UploadOutcome.REJECTED
    assert late.reason == "assessment is INCOMPLETE, no longer accepting photos"


def test_status_moves_only_from_the_allowed_states(repository: DynamoAssessmentRepository) -> None:
    repository.create(_awaiting("s-1"))
    assert repository.mark_status("s-1", AssessmentStatus.PROCESSING, {AssessmentStatus.AWAITING_PHOTOS}, NOW)
    assert not repository.mark_status(
        "s-1", AssessmentStatus.INCOMPLETE, {AssessmentStatus.AWAITING_PHOTOS}, NOW
    )
    assert repository.get("s-1").status == AssessmentStatus.PROCESSING
    assert not repository.mark_status(
        "ghost", AssessmentStatus.PROCESSING, {AssessmentStatus.AWAITING_PHOTOS}, NOW
    )


def test_rejections_are_kept_on_the_assessment_or_as_orphans(repository: DynamoAssessmentRepository) -> None:
    repository.create(_awaiting("j-1"))
    assert repository.reject_upload("j-1", "uploads/j-1/1.jpg", "not an image", NOW, 10, None)
    assert not repository.reject_upload(
        "ghost", "uploads/ghost/1.jpg", "no assessment", NOW, 10, "image/jpeg"
    )
    [rejected] = repository.rejected_uploads("j-1")
    assert (rejected.object_key, rejected.reason, rejected.size_bytes) == (
        "uploads/j-1/1.jpg",
        "not an image",
        10,
    )
    orphan = repository.orphan_upload("uploads/ghost/1.jpg")
    assert orphan is not None and orphan.reason == "no assessment"
