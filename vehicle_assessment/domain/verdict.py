"""Per-photo damage verdict from the k nearest labelled reference photos."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from vehicle_assessment.domain import figures
from vehicle_assessment.domain.models import DamageType, Neighbour, PhotoVerdict, Severity
from vehicle_assessment.domain.rules import VerdictSettings

# Cosine similarity can be negative; a neighbour that points away from the query gets no say,
# and a tiny floor keeps an all-zero vote defined.
_MIN_WEIGHT = 1e-6


def _weight(neighbour: Neighbour) -> float:
    return max(neighbour.similarity, 0.0) + _MIN_WEIGHT


def _weighted_winner(votes: dict[str, float], order: Sequence[str]) -> str:
    # Ties go to the value listed first in `order` (the more severe one), so a tie never
    # understates damage.
    return max(order, key=lambda value: (votes.get(value, 0.0), -order.index(value)))


def decide_verdict(neighbours: Sequence[Neighbour], settings: VerdictSettings) -> PhotoVerdict:
    """Similarity-weighted vote of the neighbours (the best `settings.k` of them).

    damaged      — weighted share of damaged neighbours >= damaged_threshold
    damage type  — weighted vote among the damaged neighbours
    severity     — weighted vote among the damaged neighbours
    confidence   — the weighted share behind the damaged/undamaged call
    """
    if not neighbours:
        raise ValueError("a verdict needs at least one neighbour; the reference index is empty")
    voters = sorted(neighbours, key=lambda n: n.similarity, reverse=True)[: settings.k]
    total = sum(_weight(n) for n in voters)
    damaged_weight = sum(_weight(n) for n in voters if n.label.damaged)
    damaged_share = damaged_weight / total
    damaged = damaged_share >= settings.damaged_threshold
    # Rounded once, here: the stored figure, the review decision and its reason all use this one.
    confidence = round(damaged_share if damaged else 1.0 - damaged_share, 6)

    damage_type, severity = DamageType.NONE, Severity.NONE
    if damaged:
        type_votes: dict[str, float] = defaultdict(float)
        severity_votes: dict[str, float] = defaultdict(float)
        for n in voters:
            if n.label.damaged:
                type_votes[n.label.damage_type] += _weight(n)
                severity_votes[n.label.severity] += _weight(n)
        damage_type = DamageType(
            _weighted_winner(type_votes, [DamageType.BROKEN, DamageType.DENT, DamageType.SCRATCH])
        )
        severity = Severity(
            _weighted_winner(severity_votes, [Severity.SEVERE, Severity.MODERATE, Severity.MINOR])
        )

    needs_review = confidence < settings.confidence_threshold
    shown_confidence, shown_threshold = figures.compared(confidence, settings.confidence_threshold)
    return PhotoVerdict(
        damaged=damaged,
        damage_type=damage_type,
        severity=severity,
        damaged_share=round(damaged_share, 6),
        confidence=confidence,
        needs_review=needs_review,
        review_reason=(
            f"confidence {shown_confidence} is below the {shown_threshold} threshold"
            if needs_review
            else None
        ),
        neighbours=list(voters),
    )
