"""One rounding rule for every figure shown (domain/figures.py), and comparisons that read true."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from vehicle_assessment.domain import figures
from vehicle_assessment.domain.description import TemplateDescriber
from vehicle_assessment.domain.models import (
    Assessment,
    AssessmentInputs,
    AssessmentStatus,
    DamageType,
    DescriptionRequest,
    DescriptionStyle,
    Neighbour,
    ReferenceLabel,
    Severity,
    UndamagedValue,
    Valuation,
    ValueMethod,
    VehicleFacts,
)
from vehicle_assessment.domain.rules import VerdictSettings
from vehicle_assessment.domain.verdict import decide_verdict
from vehicle_assessment.report import render_assessment

VIN = "1FTMW1T88MFA00001"


@pytest.mark.parametrize(
    ("formatted", "expected"),
    [
        (figures.usd(24_688.5), "$24,689"),  # half up, not to even (round() gives 24,688)
        (figures.usd(24_687.5), "$24,688"),
        (figures.usd(24_688.5, "es"), "24.689 USD"),
        (figures.usd(-1_234.4), "-$1,234"),
        (figures.percent(0.145), "14.5%"),
        (figures.percent(0.145, "es"), "14,5 %"),
        (figures.percent(0.0125), "1.3%"),  # 1.25 -> 1.3 (to even would give 1.2)
        (figures.percent(0.25), "25%"),
        (figures.percent(0.1), "10%"),
        (figures.ratio(0.125), "0.13"),
        (figures.ratio(0.695), "0.70"),
        (figures.number(39.95), "40.0"),
    ],
)
def test_half_up_rule(formatted: str, expected: str) -> None:
    assert formatted == expected


@pytest.mark.parametrize(
    ("value", "limit", "expected"),
    [
        (0.695, 0.7, ("0.695", "0.70")),
        (0.6995, 0.7, ("0.6995", "0.70")),
        (0.65, 0.7, ("0.65", "0.70")),
        (0.7, 0.7, ("0.70", "0.70")),
        (0.705, 0.7, ("0.71", "0.70")),  # above either way: two places suffice
        (0.69, 0.655, ("0.69", "0.655")),
    ],
)
def test_comparison_shows_enough_places(value: float, limit: float, expected: tuple[str, str]) -> None:
    assert figures.compared(value, limit) == expected


def test_printed_comparison_always_has_the_true_order() -> None:
    rng = random.Random(11)
    for _ in range(5_000):
        limit = round(rng.uniform(0.5, 1.0), rng.choice([1, 2, 3]))
        value = round(limit + rng.uniform(-0.01, 0.01), rng.choice([3, 4, 5, 6]))
        shown, shown_limit = figures.compared(value, limit)
        assert (float(shown) < float(shown_limit)) == (value < limit), (value, limit, shown, shown_limit)
        assert (float(shown) == float(shown_limit)) == (value == limit), (value, limit, shown, shown_limit)


def _neighbour(similarity: float, damaged: bool) -> Neighbour:
    label = (
        ReferenceLabel(damaged=True, damage_type=DamageType.DENT, severity=Severity.MINOR)
        if damaged
        else ReferenceLabel(damaged=False, damage_type=DamageType.NONE, severity=Severity.NONE)
    )
    return Neighbour(reference_id=str(similarity), source="x.jpg", similarity=similarity, label=label)


def test_review_reason_states_a_true_comparison() -> None:
    verdict = decide_verdict(
        [_neighbour(0.695, True), _neighbour(0.305, False)],
        VerdictSettings(k=2, damaged_threshold=0.5, confidence_threshold=0.7),
    )
    assert verdict.needs_review and verdict.confidence == 0.695
    assert verdict.review_reason == "confidence 0.695 is below the 0.70 threshold"


def _request(combined: float) -> DescriptionRequest:
    return DescriptionRequest(
        vehicle=VehicleFacts(vin=VIN, source="vin", make="FORD", model="F-150", model_year=2021),
        color=None,
        mileage=None,
        damage_summary={"dent/minor": 1},
        photos_assessed=2,
        photos_need_review=0,
        undamaged_value_usd=30_000.5,
        adjusted_value_usd=30_000.5 * (1 - combined),
        combined_depreciation=combined,
        untrained_encoder=False,
    )


def test_a_figure_reads_the_same_in_the_description_and_the_report() -> None:
    combined = 0.145
    request = _request(combined)
    english = TemplateDescriber().describe(request, DescriptionStyle.STANDARD, "en", 0.0).text
    spanish = TemplateDescriber().describe(request, DescriptionStyle.STANDARD, "es", 0.0).text
    assert "less 14.5% for damage" in english and "$30,001" in english and "$25,650" in english
    assert "menos 14,5 % por daños" in spanish and "30.001 USD" in spanish

    now = datetime(2026, 1, 1, tzinfo=UTC)
    assessment = Assessment(
        assessment_id="a1",
        vin=VIN,
        status=AssessmentStatus.COMPLETED,
        created_at=now,
        updated_at=now,
        inputs=AssessmentInputs(vin=VIN),
        valuation=Valuation(
            undamaged=UndamagedValue(amount_usd=30_000.5, method=ValueMethod.USER_ESTIMATE, reason="owner"),
            photos=[],
            combined_depreciation=combined,
            adjusted_value_usd=request.adjusted_value_usd,
            rule="rule",
            provisional=False,
        ),
    )
    report = render_assessment(assessment)
    assert "combined depreciation: 14.5%" in report
    assert "undamaged value: $30,001" in report and "adjusted value: $25,650" in report
