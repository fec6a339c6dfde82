"""Damage → depreciation → adjusted value: combine_depreciation, value_vehicle, ValuationSettings."""

from __future__ import annotations

import itertools
import math

import pytest
from pydantic import ValidationError

from vehicle_assessment.domain.models import (
    DamageType,
    PhotoRecord,
    PhotoStatus,
    PhotoVerdict,
    Severity,
    UndamagedValue,
    ValueMethod,
)
from vehicle_assessment.domain.rules import ValuationSettings
from vehicle_assessment.domain.valuation import combine_depreciation, rule_text, value_vehicle

DEFAULT = ValuationSettings()  # none 0, minor .10, moderate .25, severe .40; further photos at 50%; cap 60%

_TYPE_FOR = {
    Severity.NONE: DamageType.NONE,
    Severity.MINOR: DamageType.SCRATCH,
    Severity.MODERATE: DamageType.DENT,
    Severity.SEVERE: DamageType.BROKEN,
}

_counter = itertools.count()


def verdict(severity: Severity, needs_review: bool = False) -> PhotoVerdict:
    return PhotoVerdict(
        damaged=severity != Severity.NONE,
        damage_type=_TYPE_FOR[severity],
        severity=severity,
        damaged_share=1.0 if severity != Severity.NONE else 0.0,
        confidence=0.6 if needs_review else 1.0,
        needs_review=needs_review,
        review_reason="confidence 0.60 is below the 0.70 threshold" if needs_review else None,
        neighbours=[],
    )


def photo(
    severity: Severity | None = Severity.NONE,
    *,
    status: PhotoStatus = PhotoStatus.ANALYSED,
    needs_review: bool = False,
    reason: str | None = None,
    photo_id: str | None = None,
) -> PhotoRecord:
    n = next(_counter)
    return PhotoRecord(
        photo_id=photo_id or f"p{n}",
        filename=f"photo{n}.jpg",
        object_key=f"photos/p{n}.jpg",
        size_bytes=1000,
        sha256=f"{n:064x}",
        status=status,
        reason=reason,
        verdict=None if severity is None else verdict(severity, needs_review),
    )


def rejected(reason: str = "too dark (mean luminance 9.0)") -> PhotoRecord:
    return photo(None, status=PhotoStatus.REJECTED, reason=reason)


def undamaged_value(amount: float | None = 20_000.0) -> UndamagedValue:
    if amount is None:
        return UndamagedValue(
            amount_usd=None, method=ValueMethod.UNKNOWN, reason="no base price or owner estimate"
        )
    return UndamagedValue(amount_usd=amount, method=ValueMethod.USER_ESTIMATE, reason="owner estimate")


# --- combine_depreciation ----------------------------------------------------------------------


def test_no_rates_combine_to_zero() -> None:
    assert combine_depreciation([], DEFAULT) == 0.0


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.25, 0.4, 0.55])
def test_single_photo_gives_its_own_rate(rate: float) -> None:
    assert combine_depreciation([rate], DEFAULT) == pytest.approx(rate)


def test_single_photo_above_the_cap_is_capped() -> None:
    assert combine_depreciation([0.9], DEFAULT) == 0.6


def test_three_severe_photos_are_capped_not_summed() -> None:
    rates = [0.4, 0.4, 0.4]
    # the original app summed them: 120 % off
    assert sum(rates) == pytest.approx(1.2)
    uncapped = 1 - 0.6 * 0.8 * 0.8  # 0.616
    assert uncapped == pytest.approx(0.616)
    combined = combine_depreciation(rates, DEFAULT)
    assert combined == min(0.6, uncapped) == 0.6
    assert combined < sum(rates)


def test_three_severe_photos_without_the_cap_compound() -> None:
    combined = combine_depreciation([0.4, 0.4, 0.4], ValuationSettings(max_total_depreciation=0.9))
    assert combined == pytest.approx(0.616)


def test_three_minor_photos_compound() -> None:
    # 1 - 0.9 x 0.95 x 0.95
    assert combine_depreciation([0.1, 0.1, 0.1], DEFAULT) == pytest.approx(0.18775)
    assert combine_depreciation([0.1, 0.1, 0.1], DEFAULT) == 0.18775


def test_worst_photo_counts_in_full_and_the_rest_at_the_weight() -> None:
    # worst 0.25 in full, 0.1 at half: 1 - 0.75 x 0.95 = 0.2875
    assert combine_depreciation([0.1, 0.25], DEFAULT) == pytest.approx(0.2875)


def test_additional_photo_weight_is_configurable() -> None:
    full = ValuationSettings(additional_photo_weight=1.0, max_total_depreciation=0.99)
    assert combine_depreciation([0.25, 0.1], full) == pytest.approx(1 - 0.75 * 0.9)
    worst_only = ValuationSettings(additional_photo_weight=0.0)
    assert combine_depreciation([0.1, 0.25, 0.4, 0.1], worst_only) == pytest.approx(0.4)


@pytest.mark.parametrize("order", list(itertools.permutations([0.4, 0.25, 0.1, 0.0])))
def test_order_does_not_matter(order: tuple[float, ...]) -> None:
    assert combine_depreciation(order, DEFAULT) == combine_depreciation([0.4, 0.25, 0.1, 0.0], DEFAULT)


def test_undamaged_photos_do_not_change_the_result() -> None:
    assert combine_depreciation([0.25, 0.0, 0.0, 0.0], DEFAULT) == combine_depreciation([0.25], DEFAULT)


def test_a_further_photo_never_lowers_the_depreciation() -> None:
    rates: list[float] = []
    previous = combine_depreciation(rates, DEFAULT)
    for rate in [0.1, 0.0, 0.4, 0.25, 0.1, 0.4, 0.4]:
        rates.append(rate)
        current = combine_depreciation(rates, DEFAULT)
        assert current >= previous
        previous = current


@pytest.mark.parametrize("n", [1, 2, 5, 20, 100, 1000])
def test_bounded_below_one_for_any_number_of_severe_photos(n: int) -> None:
    near_total = ValuationSettings(max_total_depreciation=0.99)
    combined = combine_depreciation([0.4] * n, near_total)
    assert 0.0 <= combined <= 0.99 < 1.0
    assert combine_depreciation([0.4] * n, DEFAULT) <= 0.6


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, math.nan])
def test_invalid_rate_raises(bad: float) -> None:
    with pytest.raises(ValueError, match="per-photo rates"):
        combine_depreciation([0.1, bad], DEFAULT)


# --- ValuationSettings -------------------------------------------------------------------------


def test_default_table() -> None:
    assert DEFAULT.severity_depreciation == {
        Severity.NONE: 0.0,
        Severity.MINOR: 0.10,
        Severity.MODERATE: 0.25,
        Severity.SEVERE: 0.40,
    }
    assert DEFAULT.additional_photo_weight == 0.5
    assert DEFAULT.max_total_depreciation == 0.6


def test_settings_reject_an_incomplete_table() -> None:
    with pytest.raises(ValidationError, match="lacks"):
        ValuationSettings(
            severity_depreciation={Severity.NONE: 0.0, Severity.MINOR: 0.1, Severity.MODERATE: 0.25}
        )


@pytest.mark.parametrize("bad", [1.0, 1.2, -0.05])
def test_settings_reject_a_rate_outside_zero_to_one(bad: float) -> None:
    table = {Severity.NONE: 0.0, Severity.MINOR: 0.1, Severity.MODERATE: 0.25, Severity.SEVERE: bad}
    with pytest.raises(ValidationError, match="must be in"):
        ValuationSettings(severity_depreciation=table)


@pytest.mark.parametrize(
    "changes",
    [{"max_total_depreciation": 1.0}, {"additional_photo_weight": 1.5}, {"additional_photo_weight": -0.1}],
)
def test_settings_reject_out_of_range_knobs(changes: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        ValuationSettings(**changes)


def test_rule_text_states_the_knobs() -> None:
    assert rule_text(DEFAULT) == (
        "worst photo in full, each further photo at 50% of its rate, compounded, capped at 60%"
    )


# --- value_vehicle -----------------------------------------------------------------------------


def test_readme_worked_example() -> None:
    # undamaged $20,000; photos severe / moderate / none -> rates 0.4, 0.25, 0
    # combined 1 - (1 - 0.4)(1 - 0.5 x 0.25)(1 - 0.5 x 0) = 1 - 0.6 x 0.875 x 1 = 0.475
    # adjusted 20,000 x (1 - 0.475) = $10,500
    photos = [photo(Severity.SEVERE), photo(Severity.MODERATE), photo(Severity.NONE)]
    valuation = value_vehicle(photos, undamaged_value(20_000.0), DEFAULT)
    assert [p.rate for p in valuation.photos] == [0.4, 0.25, 0.0]
    assert [p.severity for p in valuation.photos] == [Severity.SEVERE, Severity.MODERATE, Severity.NONE]
    assert all(p.counted for p in valuation.photos)
    assert valuation.combined_depreciation == 0.475
    assert valuation.adjusted_value_usd == 10_500.0
    assert valuation.provisional is False
    assert valuation.notes == []
    assert valuation.rule == rule_text(DEFAULT)


def test_configured_table_is_used() -> None:
    for severity, rate in [
        (Severity.NONE, 0.0),
        (Severity.MINOR, 0.1),
        (Severity.MODERATE, 0.25),
        (Severity.SEVERE, 0.4),
    ]:
        valuation = value_vehicle([photo(severity)], undamaged_value(10_000.0), DEFAULT)
        assert valuation.photos[0].rate == rate
        assert valuation.combined_depreciation == pytest.approx(rate)
        assert valuation.adjusted_value_usd == pytest.approx(10_000.0 * (1 - rate))


def test_custom_table_via_settings() -> None:
    custom = ValuationSettings(
        severity_depreciation={
            Severity.NONE: 0.0,
            Severity.MINOR: 0.05,
            Severity.MODERATE: 0.2,
            Severity.SEVERE: 0.5,
        },
        max_total_depreciation=0.7,
    )
    photos = [photo(Severity.MINOR), photo(Severity.SEVERE)]
    valuation = value_vehicle(photos, undamaged_value(30_000.0), custom)
    assert [p.rate for p in valuation.photos] == [0.05, 0.5]
    # 1 - 0.5 x (1 - 0.025) = 0.5125; 30,000 x 0.4875 = 14,625
    assert valuation.combined_depreciation == pytest.approx(0.5125)
    assert valuation.adjusted_value_usd == 14_625.0
    assert "capped at 70%" in valuation.rule


def test_adjusted_value_arithmetic() -> None:
    # one moderate photo: 33,333.33 x 0.75 = 24,999.9975 -> 25,000.00 (cents)
    valuation = value_vehicle([photo(Severity.MODERATE)], undamaged_value(33_333.33), DEFAULT)
    assert valuation.adjusted_value_usd == 25_000.0
    # two minor: 1 - 0.9 x 0.95 = 0.145; 18,000 x 0.855 = 15,390
    valuation = value_vehicle(
        [photo(Severity.MINOR), photo(Severity.MINOR)], undamaged_value(18_000.0), DEFAULT
    )
    assert valuation.combined_depreciation == pytest.approx(0.145)
    assert valuation.adjusted_value_usd == 15_390.0


def test_capped_vehicle_value() -> None:
    photos = [photo(Severity.SEVERE) for _ in range(4)]
    valuation = value_vehicle(photos, undamaged_value(20_000.0), DEFAULT)
    assert valuation.combined_depreciation == 0.6
    assert valuation.adjusted_value_usd == 8_000.0


def test_rejected_photo_is_not_counted_and_says_why() -> None:
    photos = [photo(Severity.MODERATE), rejected("too dark (mean luminance 9.0)")]
    valuation = value_vehicle(photos, undamaged_value(20_000.0), DEFAULT)
    counted, skipped = valuation.photos
    assert counted.counted is True
    assert skipped.counted is False
    assert skipped.rate == 0.0
    assert skipped.severity == Severity.NONE
    assert skipped.reason == "not assessed: too dark (mean luminance 9.0)"
    assert valuation.combined_depreciation == 0.25
    assert valuation.adjusted_value_usd == 15_000.0
    assert valuation.provisional is True
    assert "1 of 2 photos not counted (see their reasons)" in valuation.notes


def test_photo_without_verdict_is_not_counted_and_gives_its_status() -> None:
    received = photo(None, status=PhotoStatus.RECEIVED)
    valuation = value_vehicle([received], undamaged_value(), DEFAULT)
    assert valuation.photos[0].counted is False
    assert valuation.photos[0].reason == "not assessed: received"


def test_needs_review_photo_is_listed_but_does_not_move_money() -> None:
    photos = [photo(Severity.MINOR), photo(Severity.SEVERE, needs_review=True)]
    valuation = value_vehicle(photos, undamaged_value(20_000.0), DEFAULT)
    review = valuation.photos[1]
    assert review.counted is False
    assert review.severity == Severity.SEVERE
    assert review.rate == 0.4  # shown for the person who checks it
    assert review.reason is not None
    assert review.reason.startswith("needs review: ")
    assert "0.60" in review.reason
    assert valuation.combined_depreciation == 0.1
    assert valuation.adjusted_value_usd == 18_000.0
    assert valuation.provisional is True
    assert "1 of 2 photos not counted (see their reasons)" in valuation.notes


def test_mixed_photos_count_only_the_confident_analysed_ones() -> None:
    photos = [
        photo(Severity.SEVERE),
        rejected(),
        photo(Severity.SEVERE, needs_review=True),
        photo(Severity.MODERATE),
        photo(None, status=PhotoStatus.RECEIVED),
    ]
    valuation = value_vehicle(photos, undamaged_value(20_000.0), DEFAULT)
    assert [p.counted for p in valuation.photos] == [True, False, False, True, False]
    assert [p.photo_id for p in valuation.photos] == [p.photo_id for p in photos]
    assert valuation.combined_depreciation == 0.475
    assert valuation.adjusted_value_usd == 10_500.0
    assert valuation.provisional is True
    assert "3 of 5 photos not counted (see their reasons)" in valuation.notes


def test_no_confident_photo_means_no_depreciation_and_provisional() -> None:
    photos = [rejected(), photo(Severity.SEVERE, needs_review=True)]
    valuation = value_vehicle(photos, undamaged_value(20_000.0), DEFAULT)
    assert valuation.combined_depreciation == 0.0
    assert valuation.adjusted_value_usd == 20_000.0
    assert valuation.provisional is True
    assert any("no photo could be assessed with confidence" in note for note in valuation.notes)


def test_no_photos_at_all_is_provisional() -> None:
    valuation = value_vehicle([], undamaged_value(20_000.0), DEFAULT)
    assert valuation.photos == []
    assert valuation.combined_depreciation == 0.0
    assert valuation.adjusted_value_usd is None  # no damage was assessed: there is nothing to adjust by
    assert valuation.provisional is True
    assert any("no photo could be assessed" in note for note in valuation.notes)


def test_unknown_undamaged_value_gives_no_adjusted_value_with_a_note() -> None:
    undamaged = undamaged_value(None)
    valuation = value_vehicle([photo(Severity.MODERATE)], undamaged, DEFAULT)
    assert valuation.adjusted_value_usd is None
    assert valuation.combined_depreciation == 0.25  # the damage is still measured
    assert valuation.undamaged == undamaged
    assert "no adjusted value: no base price or owner estimate" in valuation.notes
    assert valuation.provisional is False


def test_all_undamaged_photos_keep_the_full_value() -> None:
    photos = [photo(Severity.NONE), photo(Severity.NONE)]
    valuation = value_vehicle(photos, undamaged_value(12_345.67), DEFAULT)
    assert valuation.combined_depreciation == 0.0
    assert valuation.adjusted_value_usd == 12_345.67
    assert valuation.provisional is False


# --- copies, nothing assessable, untrained encoder ---------------------------------------------


def test_a_duplicate_moves_no_money_and_is_noted() -> None:
    original = photo(Severity.SEVERE, photo_id="01")
    copies = [
        photo(Severity.SEVERE, photo_id=pid).model_copy(
            update={"status": PhotoStatus.DUPLICATE, "duplicate_of": "01", "reason": "duplicate of photo 01"}
        )
        for pid in ("02", "03")
    ]
    valuation = value_vehicle([original, *copies], undamaged_value(20_000.0), DEFAULT)
    assert valuation.combined_depreciation == 0.40  # one severe photo, not three
    assert valuation.adjusted_value_usd == 12_000.0
    assert [p.counted for p in valuation.photos] == [True, False, False]
    assert valuation.photos[1].reason == "not counted: duplicate of photo 01"
    assert "photo 02 is a copy of photo 01: counted once" in valuation.notes
    assert "photo 03 is a copy of photo 01: counted once" in valuation.notes
    assert valuation.provisional is False  # a copy adds no uncertainty


def test_no_assessable_photo_gives_no_adjusted_value() -> None:
    valuation = value_vehicle([rejected(), rejected()], undamaged_value(20_000.0), DEFAULT)
    assert valuation.adjusted_value_usd is None  # the damage is unknown, not zero
    assert valuation.provisional is True
    assert "no adjusted value: no photo could be assessed, so the damage is unknown" in valuation.notes


def test_an_untrained_encoder_always_makes_the_valuation_provisional() -> None:
    photos = [photo(Severity.MODERATE), photo(Severity.NONE)]
    assert value_vehicle(photos, undamaged_value(), DEFAULT).provisional is False
    valuation = value_vehicle(photos, undamaged_value(), DEFAULT, untrained_encoder=True)
    assert valuation.provisional is True
    assert any("untrained encoder" in note for note in valuation.notes)
