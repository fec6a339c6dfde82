"""decide_verdict: the similarity-weighted vote of the nearest labelled reference photos."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from vehicle_assessment.domain.models import DamageType, Neighbour, ReferenceLabel, Severity
from vehicle_assessment.domain.rules import VerdictSettings
from vehicle_assessment.domain.verdict import decide_verdict

DEFAULT = VerdictSettings()  # k 10, damaged at share >= 0.5, review below confidence 0.7
EPS = 1e-6  # the weight floor every neighbour gets on top of max(similarity, 0)

_counter = iter(range(1_000_000))


def damaged(
    similarity: float,
    damage_type: DamageType = DamageType.SCRATCH,
    severity: Severity = Severity.MINOR,
) -> Neighbour:
    n = next(_counter)
    return Neighbour(
        reference_id=f"ref-{n}",
        source=f"damaged/{n}.jpg",
        similarity=similarity,
        label=ReferenceLabel(damaged=True, damage_type=damage_type, severity=severity),
    )


def undamaged(similarity: float) -> Neighbour:
    n = next(_counter)
    return Neighbour(
        reference_id=f"ref-{n}",
        source=f"whole/{n}.jpg",
        similarity=similarity,
        label=ReferenceLabel(damaged=False, damage_type=DamageType.NONE, severity=Severity.NONE),
    )


def settings(**changes: float) -> VerdictSettings:
    return VerdictSettings(**changes)


# --- unanimous votes ---------------------------------------------------------------------------


def test_unanimous_damaged_is_damaged_with_full_confidence() -> None:
    verdict = decide_verdict([damaged(0.9), damaged(0.8), damaged(0.7)], DEFAULT)
    assert verdict.damaged is True
    assert verdict.damaged_share == 1.0
    assert verdict.confidence == 1.0
    assert verdict.needs_review is False
    assert verdict.review_reason is None
    assert verdict.damage_type == DamageType.SCRATCH
    assert verdict.severity == Severity.MINOR


def test_unanimous_undamaged_is_undamaged_with_type_and_severity_none() -> None:
    verdict = decide_verdict([undamaged(0.9), undamaged(0.6)], DEFAULT)
    assert verdict.damaged is False
    assert verdict.damaged_share == 0.0
    assert verdict.confidence == 1.0
    assert verdict.damage_type == DamageType.NONE
    assert verdict.severity == Severity.NONE
    assert verdict.needs_review is False


def test_single_neighbour_decides() -> None:
    verdict = decide_verdict([damaged(0.3, DamageType.DENT, Severity.MODERATE)], DEFAULT)
    assert verdict.damaged is True
    assert verdict.damage_type == DamageType.DENT
    assert verdict.severity == Severity.MODERATE
    assert verdict.confidence == 1.0


def test_empty_neighbours_raise() -> None:
    with pytest.raises(ValueError, match="at least one neighbour"):
        decide_verdict([], DEFAULT)


# --- similarity weighting ----------------------------------------------------------------------


def test_few_very_similar_undamaged_outvote_many_weakly_similar_damaged() -> None:
    # 3 undamaged at 0.9 weigh 2.7; 6 damaged at 0.15 weigh 0.9: damaged share 0.9 / 3.6 = 0.25,
    # although damaged neighbours are two to one by count.
    neighbours = [undamaged(0.9) for _ in range(3)] + [damaged(0.15) for _ in range(6)]
    verdict = decide_verdict(neighbours, DEFAULT)
    expected_share = (0.9 + 6 * EPS) / (3.6 + 9 * EPS)
    assert verdict.damaged is False
    assert verdict.damaged_share == pytest.approx(expected_share, abs=1e-6)
    assert verdict.damaged_share == pytest.approx(0.25, abs=1e-5)
    assert verdict.confidence == pytest.approx(0.75, abs=1e-5)
    assert verdict.needs_review is False
    assert verdict.damage_type == DamageType.NONE
    assert verdict.severity == Severity.NONE


def test_weighted_share_computed_by_hand() -> None:
    # damaged 0.8 + 0.4 = 1.2; undamaged 0.6 + 0.2 = 0.8; share 1.2 / 2.0 = 0.6
    neighbours = [damaged(0.8), undamaged(0.6), damaged(0.4), undamaged(0.2)]
    verdict = decide_verdict(neighbours, DEFAULT)
    assert verdict.damaged is True
    assert verdict.damaged_share == pytest.approx(0.6, abs=1e-5)
    assert verdict.confidence == pytest.approx(0.6, abs=1e-5)


def test_few_very_similar_damaged_outvote_many_weakly_similar_undamaged() -> None:
    # 2 damaged at 0.95 weigh 1.9; 7 undamaged at 0.1 weigh 0.7: share 1.9 / 2.6 = 0.7308
    neighbours = [undamaged(0.1) for _ in range(7)] + [damaged(0.95) for _ in range(2)]
    verdict = decide_verdict(neighbours, DEFAULT)
    assert verdict.damaged is True
    assert verdict.damaged_share == pytest.approx(1.9 / 2.6, abs=1e-5)
    assert verdict.needs_review is False


def test_negative_similarities_get_almost_no_weight() -> None:
    # five undamaged neighbours pointing away from the query only carry the 1e-6 floor
    neighbours = [damaged(0.5)] + [undamaged(-0.8) for _ in range(5)]
    verdict = decide_verdict(neighbours, DEFAULT)
    assert verdict.damaged is True
    assert verdict.damaged_share == pytest.approx((0.5 + EPS) / (0.5 + 6 * EPS), abs=1e-6)
    assert verdict.damaged_share > 0.9999
    assert verdict.confidence > 0.9999


def test_zero_similarity_weighs_the_same_as_negative() -> None:
    a = decide_verdict([damaged(0.4), undamaged(0.0), undamaged(0.0)], DEFAULT)
    b = decide_verdict([damaged(0.4), undamaged(-0.5), undamaged(-0.99)], DEFAULT)
    assert a.damaged_share == b.damaged_share


def test_all_non_positive_similarities_still_give_a_defined_vote() -> None:
    # every weight is the floor: an unweighted count, 2 of 3 damaged
    neighbours = [damaged(-0.1), damaged(-0.2), undamaged(-0.3)]
    verdict = decide_verdict(neighbours, DEFAULT)
    assert verdict.damaged_share == pytest.approx(2 / 3, abs=1e-6)
    assert verdict.damaged is True


# --- only the top k vote -----------------------------------------------------------------------


def test_only_top_k_by_similarity_vote() -> None:
    top = [damaged(0.9), damaged(0.85), damaged(0.8)]
    rest = [undamaged(0.79) for _ in range(6)]
    neighbours = [rest[0], top[2], rest[1], rest[2], top[0], rest[3], top[1], rest[4], rest[5]]
    verdict = decide_verdict(neighbours, settings(k=3))
    assert verdict.damaged is True
    assert verdict.damaged_share == 1.0
    assert verdict.confidence == 1.0
    assert [n.reference_id for n in verdict.neighbours] == [n.reference_id for n in top]


def test_same_neighbours_with_larger_k_let_the_rest_vote() -> None:
    top = [damaged(0.9), damaged(0.85), damaged(0.8)]
    rest = [undamaged(0.79) for _ in range(6)]
    verdict = decide_verdict(top + rest, settings(k=9))
    # damaged 2.55 of 2.55 + 4.74 = 7.29: share 0.3498
    assert verdict.damaged is False
    assert verdict.damaged_share == pytest.approx(2.55 / 7.29, abs=1e-5)
    assert len(verdict.neighbours) == 9


def test_verdict_lists_its_voters_most_similar_first() -> None:
    neighbours = [undamaged(0.2), damaged(0.7), undamaged(0.5), damaged(0.1)]
    verdict = decide_verdict(neighbours, DEFAULT)
    assert [n.similarity for n in verdict.neighbours] == [0.7, 0.5, 0.2, 0.1]


def test_fewer_neighbours_than_k_all_vote() -> None:
    verdict = decide_verdict([damaged(0.5), undamaged(0.5)], settings(k=50))
    assert len(verdict.neighbours) == 2


# --- damage type and severity ------------------------------------------------------------------


def test_damage_type_and_severity_are_weighted_votes_not_counts() -> None:
    # one broken/severe at 0.95 against two scratch/minor at 0.4 (0.8 together)
    neighbours = [
        damaged(0.95, DamageType.BROKEN, Severity.SEVERE),
        damaged(0.4, DamageType.SCRATCH, Severity.MINOR),
        damaged(0.4, DamageType.SCRATCH, Severity.MINOR),
    ]
    verdict = decide_verdict(neighbours, DEFAULT)
    assert verdict.damage_type == DamageType.BROKEN
    assert verdict.severity == Severity.SEVERE


def test_majority_weight_wins_type_and_severity() -> None:
    # three scratch/minor at 0.5 (1.5) against one dent/severe at 0.9
    neighbours = [damaged(0.5) for _ in range(3)] + [damaged(0.9, DamageType.DENT, Severity.SEVERE)]
    verdict = decide_verdict(neighbours, DEFAULT)
    assert verdict.damage_type == DamageType.SCRATCH
    assert verdict.severity == Severity.MINOR


def test_type_and_severity_voted_among_damaged_neighbours_only() -> None:
    # undamaged neighbours (type and severity "none") weigh 0.8, more than any one damaged value,
    # but do not vote on type or severity once the photo is called damaged
    neighbours = [
        damaged(0.6, DamageType.DENT, Severity.MODERATE),
        damaged(0.5, DamageType.SCRATCH, Severity.MINOR),
        undamaged(0.4),
        undamaged(0.4),
    ]
    verdict = decide_verdict(neighbours, DEFAULT)
    assert verdict.damaged is True  # 1.1 / 1.9
    assert verdict.damage_type == DamageType.DENT
    assert verdict.severity == Severity.MODERATE


def test_type_and_severity_are_voted_independently() -> None:
    # type: dent 0.9 vs scratch 0.5 + 0.5; severity: severe 0.5 + 0.5 vs minor 0.9
    neighbours = [
        damaged(0.9, DamageType.DENT, Severity.MINOR),
        damaged(0.5, DamageType.SCRATCH, Severity.SEVERE),
        damaged(0.5, DamageType.SCRATCH, Severity.SEVERE),
    ]
    verdict = decide_verdict(neighbours, DEFAULT)
    assert verdict.damage_type == DamageType.SCRATCH
    assert verdict.severity == Severity.SEVERE


@pytest.mark.parametrize(
    ("first", "second", "winner"),
    [
        (DamageType.SCRATCH, DamageType.BROKEN, DamageType.BROKEN),
        (DamageType.BROKEN, DamageType.SCRATCH, DamageType.BROKEN),
        (DamageType.SCRATCH, DamageType.DENT, DamageType.DENT),
        (DamageType.DENT, DamageType.BROKEN, DamageType.BROKEN),
    ],
)
def test_damage_type_tie_goes_to_the_more_severe_type(
    first: DamageType, second: DamageType, winner: DamageType
) -> None:
    verdict = decide_verdict([damaged(0.6, first), damaged(0.6, second)], DEFAULT)
    assert verdict.damage_type == winner


@pytest.mark.parametrize(
    ("first", "second", "winner"),
    [
        (Severity.MINOR, Severity.MODERATE, Severity.MODERATE),
        (Severity.MODERATE, Severity.MINOR, Severity.MODERATE),
        (Severity.MODERATE, Severity.SEVERE, Severity.SEVERE),
        (Severity.MINOR, Severity.SEVERE, Severity.SEVERE),
    ],
)
def test_severity_tie_goes_to_the_more_severe_value(
    first: Severity, second: Severity, winner: Severity
) -> None:
    verdict = decide_verdict(
        [damaged(0.6, DamageType.DENT, first), damaged(0.6, DamageType.DENT, second)], DEFAULT
    )
    assert verdict.severity == winner


# --- thresholds --------------------------------------------------------------------------------


def test_low_confidence_needs_review_with_the_numbers_in_the_reason() -> None:
    # share 0.6: damaged, confidence 0.60 below 0.70
    neighbours = [damaged(0.6), damaged(0.6), damaged(0.6), undamaged(0.6), undamaged(0.6)]
    verdict = decide_verdict(neighbours, DEFAULT)
    assert verdict.damaged is True
    assert verdict.confidence == pytest.approx(0.6, abs=1e-5)
    assert verdict.needs_review is True
    assert verdict.review_reason is not None
    assert "0.60" in verdict.review_reason
    assert "0.70" in verdict.review_reason


def test_low_confidence_undamaged_also_needs_review() -> None:
    # share 0.4: undamaged with confidence 0.6
    neighbours = [damaged(0.5), damaged(0.5), undamaged(0.5), undamaged(0.5), undamaged(0.5)]
    verdict = decide_verdict(neighbours, DEFAULT)
    assert verdict.damaged is False
    assert verdict.confidence == pytest.approx(0.6, abs=1e-5)
    assert verdict.needs_review is True
    assert verdict.review_reason is not None
    assert "0.60" in verdict.review_reason


def test_confidence_threshold_is_configurable() -> None:
    neighbours = [damaged(0.6), damaged(0.6), damaged(0.6), undamaged(0.6), undamaged(0.6)]
    lenient = decide_verdict(neighbours, settings(confidence_threshold=0.55))
    assert lenient.needs_review is False
    assert lenient.review_reason is None
    strict = decide_verdict([damaged(0.9)] * 9 + [undamaged(0.9)], settings(confidence_threshold=0.95))
    assert strict.confidence == pytest.approx(0.9, abs=1e-5)
    assert strict.needs_review is True
    assert strict.review_reason is not None
    assert "0.90" in strict.review_reason
    assert "0.95" in strict.review_reason


def test_damaged_threshold_is_configurable() -> None:
    # share 0.4 of damaged weight
    neighbours = [damaged(0.4, DamageType.DENT, Severity.MODERATE), undamaged(0.6)]
    assert decide_verdict(neighbours, DEFAULT).damaged is False
    eager = decide_verdict(neighbours, settings(damaged_threshold=0.3))
    assert eager.damaged is True
    assert eager.damage_type == DamageType.DENT
    assert eager.severity == Severity.MODERATE
    # share 0.6 of damaged weight
    neighbours = [damaged(0.6), undamaged(0.4)]
    assert decide_verdict(neighbours, DEFAULT).damaged is True
    assert decide_verdict(neighbours, settings(damaged_threshold=0.7)).damaged is False


def test_share_exactly_at_damaged_threshold_is_damaged() -> None:
    verdict = decide_verdict([damaged(0.5), undamaged(0.5)], DEFAULT)
    assert verdict.damaged_share == 0.5
    assert verdict.damaged is True
    assert verdict.confidence == 0.5
    assert verdict.needs_review is True


@pytest.mark.parametrize(
    "changes",
    [{"k": 0}, {"damaged_threshold": 0.0}, {"damaged_threshold": 1.0}, {"confidence_threshold": 0.4}],
)
def test_verdict_settings_reject_out_of_range_values(changes: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        VerdictSettings(**changes)


def test_shares_are_rounded_and_bounded() -> None:
    verdict = decide_verdict([damaged(0.3), undamaged(0.7), damaged(0.123456789)], DEFAULT)
    assert 0.0 <= verdict.damaged_share <= 1.0
    assert 0.5 <= verdict.confidence <= 1.0
    assert verdict.damaged_share == round(verdict.damaged_share, 6)
    assert verdict.confidence == pytest.approx(1 - verdict.damaged_share, abs=1e-6)
