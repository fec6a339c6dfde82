"""The DynamoDB repository on moto: what only DynamoDB has (numbers, item layout, indexes).

The behaviour it shares with the in-memory repository is tested once for both in
``tests/services/test_workflow_repository_contract.py``.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.aws_runtime.conftest import NOW, VIN
from vehicle_assessment.adapters.aws.dynamodb import (
    DynamoAssessmentRepository,
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
    valued = repository.get("a-1").model_copy(
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
    saved = repository.save(valued)
    item = aws.table.get_item(Key={"PK": "ASSESSMENT#a-1", "SK": "META"})["Item"]
    assert item["document"]["valuation"]["adjusted_value_usd"] == Decimal("18000.45")  # a number, not text
    assert item["status"] == "COMPLETED" and "GSI2PK" not in item  # left the awaiting index
    assert item["revision"] == 2 and "revision" not in item["document"]  # beside the document
    assert repository.get("a-1") == saved == valued.model_copy(update={"revision": 2})
    with pytest.raises(AssessmentNotFound):
        repository.get("nope")
