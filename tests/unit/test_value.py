from datetime import date

import pytest

from vehicle_assessment.domain.models import ValueMethod, VehicleFacts
from vehicle_assessment.domain.rules import ValueCurveSettings
from vehicle_assessment.domain.value import estimate_undamaged_value

TODAY = date(2025, 6, 1)
CURVE = ValueCurveSettings()  # 20% first year, 15% later, floor 10%, 12,000 mi/yr, 0.5%/1,000 mi, ±20%


def facts(base: float | None = 40_000, year: int | None = 2021, source: str = "vpic") -> VehicleFacts:
    return VehicleFacts(vin="1FTMW1T88MFA00001", source=source, base_price_usd=base, model_year=year)


def value(f: VehicleFacts | None, mileage: int | None = None, estimate: float | None = None) -> float | None:
    return estimate_undamaged_value(f, mileage, estimate, TODAY, CURVE).amount_usd


def test_owner_estimate_wins() -> None:
    result = estimate_undamaged_value(facts(), 60_000, 25_000.0, TODAY, CURVE)
    assert result.amount_usd == 25_000.0
    assert result.method == ValueMethod.USER_ESTIMATE
    assert "$25,000" in result.reason


def test_owner_estimate_without_facts() -> None:
    result = estimate_undamaged_value(None, None, 9_999.0, TODAY, CURVE)
    assert result.amount_usd == 9_999.0
    assert result.method == ValueMethod.USER_ESTIMATE


def test_curve_age_four_without_mileage() -> None:
    # 40,000 x 0.8 x 0.85^3 = 19,652
    result = estimate_undamaged_value(facts(), None, None, TODAY, CURVE)
    assert result.amount_usd == 19_652.0
    assert result.method == ValueMethod.DEPRECIATION_CURVE
    assert "$40,000" in result.reason
    assert "age 4" in result.reason
    assert "$19,652" in result.reason
    assert "no mileage adjustment" in result.reason


def test_curve_age_one_with_expected_mileage() -> None:
    # 30,000 x 0.8 = 24,000; 12,000 miles is exactly the expected: no adjustment
    assert value(facts(base=30_000, year=2024), mileage=12_000) == 24_000.0


def test_mileage_over_expected_lowers_value() -> None:
    # expected 4 x 12,000 = 48,000; 12,000 over: -6% -> 19,652 x 0.94 = 18,472.88
    result = estimate_undamaged_value(facts(), 60_000, None, TODAY, CURVE)
    assert result.amount_usd == 18_473.0
    assert "60,000 miles against 48,000 expected: -6%" in result.reason


def test_mileage_under_expected_raises_value() -> None:
    # 8,000 under: +4% -> 19,652 x 1.04 = 20,438.08
    assert value(facts(), mileage=40_000) == 20_438.0


def test_mileage_adjustment_is_clamped() -> None:
    # 100,000 over would be -50%: capped at -20% -> 19,652 x 0.8 = 15,721.6
    result = estimate_undamaged_value(facts(), 148_000, None, TODAY, CURVE)
    assert result.amount_usd == 15_722.0
    assert "capped" in result.reason
    # 48,000 under would be +24%: capped at +20% -> 19,652 x 1.2 = 23,582.4
    assert value(facts(), mileage=0) == 23_582.0


def test_floor() -> None:
    # age 20: 40,000 x 0.8 x 0.85^19 is about 1,459, below the floor of 4,000
    result = estimate_undamaged_value(facts(year=2005), None, None, TODAY, CURVE)
    assert result.amount_usd == 4_000.0
    assert "floor" in result.reason


def test_floor_holds_after_high_mileage_but_low_mileage_lifts_it() -> None:
    assert value(facts(year=2005), mileage=400_000) == 4_000.0
    # expected 240,000; 0 miles would be +120%, capped +20%: 4,000 x 1.2
    assert value(facts(year=2005), mileage=0) == 4_800.0


def test_next_model_year_counts_as_new() -> None:
    result = estimate_undamaged_value(facts(year=2026), None, None, TODAY, CURVE)
    assert result.amount_usd == 40_000.0
    assert "age 0" in result.reason
    # age 0 still expects one year of mileage: 0 miles is 12,000 under, +6%
    assert value(facts(year=2026), mileage=0) == 42_400.0
    assert value(facts(year=2025), mileage=12_000) == 40_000.0


def test_custom_curve() -> None:
    curve = ValueCurveSettings(first_year_loss=0.1, later_yearly_loss=0.1, floor_share=0.0)
    # 10,000 x 0.9 x 0.9 = 8,100
    result = estimate_undamaged_value(facts(base=10_000, year=2023), None, None, TODAY, curve)
    assert result.amount_usd == 8_100.0


def test_model_year_far_in_future_is_not_valued() -> None:
    result = estimate_undamaged_value(facts(year=2027), None, None, TODAY, CURVE)
    assert result.amount_usd is None
    assert result.method == ValueMethod.UNKNOWN
    assert "2027" in result.reason


@pytest.mark.parametrize(
    ("f", "expected"),
    [
        (None, "no vehicle facts were decoded"),
        (facts(base=None), "vPIC has no base price for this vehicle"),
        (facts(year=None), "the model year is unknown"),
        (
            facts(base=None, year=None),
            "vPIC has no base price for this vehicle and the model year is unknown",
        ),
        (facts(base=None, source="vin"), "no base price is known"),
    ],
)
def test_nothing_known_gives_no_amount_with_reason(f: VehicleFacts | None, expected: str) -> None:
    result = estimate_undamaged_value(f, 50_000, None, TODAY, CURVE)
    assert result.amount_usd is None
    assert result.method == ValueMethod.UNKNOWN
    assert "no owner estimate was given" in result.reason
    assert expected in result.reason


def test_negative_mileage_is_rejected() -> None:
    with pytest.raises(ValueError, match="mileage"):
        estimate_undamaged_value(facts(), -1, None, TODAY, CURVE)


@pytest.mark.parametrize("estimate", [0.0, -5.0, float("nan")])
def test_non_positive_estimate_is_rejected(estimate: float) -> None:
    with pytest.raises(ValueError, match="estimate"):
        estimate_undamaged_value(facts(), None, estimate, TODAY, CURVE)
