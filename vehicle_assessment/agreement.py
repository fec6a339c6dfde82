"""How often does the model agree with the people who review its verdicts, and is its confidence honest?

Pure functions over records and arrays (no I/O), checked on constructed data with known answers;
`evaluation.evaluate_index` writes what they compute into ``metrics.json`` and ``report.md``.

Every reviewed photo that has a model verdict is one pair (model's call, reviewer's call); the
reviewer's decision is taken as the truth. Reviewed photos are not a random sample: most reach a
person because the model was unsure (or the photo was flagged), so these figures describe the photos
people look at, and are expected to be lower than on all photos.

Also here: which collection (origin) each reference comes from, and the warning when a label class
comes from one origin only, since a model can then separate the classes by origin (framing, camera,
resolution) instead of by damage.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vehicle_assessment.domain.models import Assessment, ReferenceLabel, Severity

# Confidence is the share behind the damaged/undamaged call: 0.5 (a tie) to 1.0 (unanimous).
CONFIDENCE_EDGES = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
SEVERITY_ORDER = (Severity.NONE.value, Severity.MINOR.value, Severity.MODERATE.value, Severity.SEVERE.value)
DAMAGED_NAMES = ("undamaged", "damaged")
# An origin recorded for no reference (indexed before origins were kept).
UNRECORDED_ORIGIN = "unrecorded"


@dataclass(frozen=True)
class ReviewedVerdict:
    """One reviewed photo: what the model said and what the reviewer decided."""

    assessment_id: str
    photo_id: str
    model: ReferenceLabel
    confidence: float
    needed_review: bool
    reviewer: ReferenceLabel


def reviewed_verdicts(assessments: Iterable[Assessment]) -> tuple[list[ReviewedVerdict], int]:
    """Pairs of every reviewed photo that has a model verdict (the last review counts), and how many
    reviewed photos had none (rejected or never analysed: nothing to agree with)."""
    pairs: list[ReviewedVerdict] = []
    without_verdict = 0
    for assessment in assessments:
        for photo in assessment.photos:
            review = photo.review
            if review is None:
                continue
            verdict = photo.verdict
            if verdict is None:
                without_verdict += 1
                continue
            pairs.append(
                ReviewedVerdict(
                    assessment_id=assessment.assessment_id,
                    photo_id=photo.photo_id,
                    model=ReferenceLabel(
                        damaged=verdict.damaged, damage_type=verdict.damage_type, severity=verdict.severity
                    ),
                    confidence=verdict.confidence,
                    needed_review=verdict.needs_review,
                    reviewer=review.label,
                )
            )
    return pairs, without_verdict


def _share(hits: np.ndarray) -> float | None:
    return float(hits.mean()) if hits.size else None


def cohen_kappa(truth: Sequence[bool] | np.ndarray, predicted: Sequence[bool] | np.ndarray) -> float | None:
    """Agreement beyond chance for two raters' yes/no calls; None when chance agreement is certain."""
    a, b = np.asarray(truth, dtype=bool), np.asarray(predicted, dtype=bool)
    if a.size == 0:
        return None
    observed = float(np.mean(a == b))
    expected = float(a.mean() * b.mean() + (1 - a.mean()) * (1 - b.mean()))
    return None if expected >= 1.0 else (observed - expected) / (1.0 - expected)


def confidence_bucket(
    confidence: Sequence[float] | np.ndarray, edges: Sequence[float] = CONFIDENCE_EDGES
) -> np.ndarray:
    """The bucket of each confidence: [e0, e1), [e1, e2), ..., [e(n-1), en] (the last one closed)."""
    values = np.asarray(confidence, dtype=float)
    return np.clip(np.searchsorted(np.asarray(edges), values, side="right") - 1, 0, len(edges) - 2)


def reliability_table(
    confidence: Sequence[float], correct: Sequence[bool], edges: Sequence[float] = CONFIDENCE_EDGES
) -> list[dict[str, Any]]:
    """Per confidence bucket: photos, their mean confidence, the share the model got right, and the gap.

    A calibrated model is right as often as it is confident: accuracy ≈ mean confidence in each bucket.
    """
    scores, right = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=bool)
    buckets = confidence_bucket(scores, edges)
    table = []
    for i, (low, high) in enumerate(itertools.pairwise(edges)):
        chosen = buckets == i
        count = int(chosen.sum())
        mean_confidence = float(scores[chosen].mean()) if count else None
        accuracy = float(right[chosen].mean()) if count else None
        table.append(
            {
                "low": float(low),
                "high": float(high),
                "photos": count,
                "mean_confidence": mean_confidence,
                "accuracy": accuracy,
                "gap": None if accuracy is None or mean_confidence is None else accuracy - mean_confidence,
            }
        )
    return table


def expected_calibration_error(table: Sequence[dict[str, Any]]) -> float | None:
    """Σ (bucket photos / all photos) · |accuracy − mean confidence|: 0 when perfectly calibrated."""
    total = sum(row["photos"] for row in table)
    if not total:
        return None
    return float(sum(row["photos"] / total * abs(row["gap"]) for row in table if row["photos"]))


def agreement_metrics(pairs: Sequence[ReviewedVerdict], without_verdict: int = 0) -> dict[str, Any]:
    """Agreement of the model with the reviewers: overall, per reviewed severity, by confidence."""
    truth = np.array([p.reviewer.damaged for p in pairs], dtype=bool)
    model = np.array([p.model.damaged for p in pairs], dtype=bool)
    agrees = truth == model
    severity_agrees = np.array([p.model.severity == p.reviewer.severity for p in pairs], dtype=bool)
    confidence = [p.confidence for p in pairs]
    needed_review = np.array([p.needed_review for p in pairs], dtype=bool)
    table = reliability_table(confidence, agrees)
    confusion = [[int(np.sum((truth == bool(t)) & (model == bool(m)))) for m in range(2)] for t in range(2)]
    per_severity = {}
    for severity in SEVERITY_ORDER:
        chosen = np.array([p.reviewer.severity.value == severity for p in pairs], dtype=bool)
        per_severity[severity] = {
            "photos": int(chosen.sum()),
            "damaged_agreement": _share(agrees[chosen]),
            "severity_agreement": _share(severity_agrees[chosen]),
        }
    damaged_both = truth & model
    type_agrees = np.array([p.model.damage_type == p.reviewer.damage_type for p in pairs], dtype=bool)
    return {
        "reviewed_photos": len(pairs) + without_verdict,
        "photos": len(pairs),
        "without_model_verdict": without_verdict,
        "damaged_agreement": _share(agrees),
        "cohen_kappa": cohen_kappa(truth, model),
        "severity_agreement": _share(severity_agrees),
        "damage_type_agreement_when_both_damaged": _share(type_agrees[damaged_both]),
        "confusion": {
            "rows_reviewer": list(DAMAGED_NAMES),
            "cols_model": list(DAMAGED_NAMES),
            "counts": confusion,
        },
        "per_reviewed_severity": per_severity,
        "by_needs_review": {
            "needed_review": {"photos": int(needed_review.sum()), "agreement": _share(agrees[needed_review])},
            "decided": {"photos": int((~needed_review).sum()), "agreement": _share(agrees[~needed_review])},
        },
        "reliability": table,
        "expected_calibration_error": expected_calibration_error(table),
    }


# --- where the references come from ------------------------------------------------------------


def origins_by_class(
    labels: Sequence[ReferenceLabel], origins: Sequence[str | None]
) -> dict[str, dict[str, int]]:
    """Damaged/undamaged → origin → references."""
    table: dict[str, dict[str, int]] = {name: {} for name in DAMAGED_NAMES}
    for label, origin in zip(labels, origins, strict=True):
        counts = table[DAMAGED_NAMES[label.damaged]]
        key = origin or UNRECORDED_ORIGIN
        counts[key] = counts.get(key, 0) + 1
    return table


def single_origin_warnings(by_class: dict[str, dict[str, int]]) -> list[str]:
    """One line per label class whose references all come from one origin, and when no origin holds
    both classes: the classes may then be told apart by origin (framing, camera) rather than damage."""
    warnings = []
    for name, counts in by_class.items():
        known = {origin: n for origin, n in counts.items() if origin != UNRECORDED_ORIGIN}
        if len(counts) == 1 and known:
            [(origin, n)] = known.items()
            warnings.append(
                f"every {name} reference ({n}) comes from one source, {origin}: the model may learn that "
                "source's framing and camera instead of damage"
            )
    known_per_class = [set(counts) - {UNRECORDED_ORIGIN} for counts in by_class.values()]
    if all(known_per_class) and not set.intersection(*known_per_class):
        warnings.append(
            "no source holds both damaged and undamaged references: accuracy within a source cannot be "
            "measured, and the damaged/undamaged accuracy may measure the sources' framing, not damage"
        )
    unrecorded = sum(counts.get(UNRECORDED_ORIGIN, 0) for counts in by_class.values())
    if unrecorded:
        warnings.append(
            f"{unrecorded} references have no recorded source (indexed before sources were kept): "
            "rebuild the index to check them"
        )
    return warnings


def origins_with_both_classes(by_class: dict[str, dict[str, int]]) -> list[str]:
    return sorted(
        (set.intersection(*(set(counts) for counts in by_class.values())) - {UNRECORDED_ORIGIN})
        if all(by_class.values())
        else set()
    )
