"""The knobs of every domain rule: verdict, valuation, value curve, photo intake.

Plain pydantic models the domain receives as arguments; no environment is read here. The edges
(``settings.py`` locally, ``aws_runtime/config.py`` on AWS) compose them into their settings.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from vehicle_assessment.domain import limits
from vehicle_assessment.domain.models import Severity


class RuleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VerdictSettings(RuleSettings):
    k: int = Field(default=10, ge=1, le=200, description="neighbours that vote")
    damaged_threshold: float = Field(
        default=0.5, gt=0, lt=1, description="weighted damaged share at or above which a photo is damaged"
    )
    confidence_threshold: float = Field(
        default=0.7, ge=0.5, le=1, description="below this the photo needs review"
    )


class ValuationSettings(RuleSettings):
    severity_depreciation: dict[Severity, float] = Field(
        default_factory=lambda: {
            Severity.NONE: 0.0,
            Severity.MINOR: 0.10,
            Severity.MODERATE: 0.25,
            Severity.SEVERE: 0.40,
        }
    )
    additional_photo_weight: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="share of each further photo's rate applied after the worst photo",
    )
    max_total_depreciation: float = Field(default=0.6, ge=0, lt=1)

    @field_validator("severity_depreciation")
    @classmethod
    def _complete_and_bounded(cls, table: dict[Severity, float]) -> dict[Severity, float]:
        missing = set(Severity) - set(table)
        if missing:
            raise ValueError(f"severity_depreciation lacks {sorted(missing)}")
        for severity, rate in table.items():
            if not 0 <= rate < 1:
                raise ValueError(f"depreciation for {severity} must be in [0, 1), got {rate}")
        return table


class ValueCurveSettings(RuleSettings):
    """Undamaged value from a base (new) price: see README, "Undamaged value"."""

    first_year_loss: float = Field(default=0.20, ge=0, lt=1)
    later_yearly_loss: float = Field(default=0.15, ge=0, lt=1)
    floor_share: float = Field(default=0.10, ge=0, lt=1, description="never below this share of base")
    miles_per_year: int = Field(default=12_000, gt=0)
    per_1000_miles_adjustment: float = Field(default=0.005, ge=0, lt=0.1)
    max_mileage_adjustment: float = Field(default=0.20, ge=0, lt=1)


class IntakeSettings(RuleSettings):
    max_bytes: int = Field(default=limits.MAX_PHOTO_BYTES, gt=0)
    max_pixels: int = Field(default=limits.MAX_PHOTO_PIXELS, gt=0)
    min_side_reject: int = Field(default=64, gt=0)
    min_side_warn: int = Field(default=224, gt=0)
    max_aspect_ratio: float = Field(default=4.0, ge=1)
    # Measured on the 854 reference photos (scripts/measure_photo_quality.py): p1 10.4, median 442;
    # sharp close-ups of plain panels score 3-6, so only near-featureless images are rejected.
    blur_reject: float = Field(default=3.0, ge=0, description="variance of the Laplacian")
    blur_warn: float = Field(default=40.0, ge=0)
    dark_reject: float = Field(default=15.0, ge=0, le=255, description="mean luminance")
    dark_warn: float = Field(default=45.0, ge=0, le=255)
    bright_warn: float = Field(default=215.0, ge=0, le=255)
    bright_reject: float = Field(default=245.0, ge=0, le=255)
    enhance: bool = Field(default=True, description="auto-contrast the copy that is embedded")
    embedding_short_side: int = Field(
        default=448, ge=224, description="the embedded copy is shrunk to at most this short side"
    )

    @model_validator(mode="after")
    def _ordered(self) -> IntakeSettings:
        if not (self.min_side_reject <= self.min_side_warn):
            raise ValueError("min_side_reject must not exceed min_side_warn")
        if not (self.blur_reject <= self.blur_warn):
            raise ValueError("blur_reject must not exceed blur_warn")
        if not (self.dark_reject <= self.dark_warn < self.bright_warn <= self.bright_reject):
            raise ValueError(
                "exposure thresholds must be ordered dark_reject <= dark_warn < bright_warn <= bright_reject"
            )
        return self


class ReuseSettings(RuleSettings):
    """The reused-photo check: when a photo counts as a copy of another vehicle's photo."""

    enabled: bool = Field(default=True, description="false: photos are neither checked nor remembered")
    # Measured by scripts/measure_reuse.py on the 854 reference photos (16 kinds of copy of each; all
    # 364,231 pairs of different photos): the largest distance at which every re-encoded, resized and
    # recoloured kind of copy is still found >= 98 % of the time while pairs of different photos match
    # at most 1e-4 of the time. At 6: 93.4 % of all copies (re-encode/resize/recolour 98-100 %, 2 %
    # crops 90 %, 5 % centred crops 82 %, 5 % corner crops 24 %), 32 false pairs (8.8e-5), 3 of them
    # true duplicates in the set. 7 would give 94.8 % and 1.15e-4. README "Reused photos".
    perceptual_max_distance: int = Field(
        default=6, ge=0, le=32, description="64-bit dHash Hamming distance at or below which it is a copy"
    )
    # NOT measured yet: it needs trained weights, which this project's machines cannot download. The
    # path is off with random weights whatever this says (domain/reuse.embeddings_comparable).
    embedding_min_similarity: float = Field(
        default=0.95,
        gt=0,
        le=1,
        description="cosine similarity at or above which it is a copy (trained encoders only)",
    )
    max_matches: int = Field(default=10, ge=1, le=100, description="matches kept per photo, best first")
    hash_bands: int = Field(
        default=4,
        ge=1,
        le=64,
        description="the DynamoDB registry cuts the hash into this many bands, each probed within "
        "threshold // bands bits (README: lookups and fan-out); changing it needs the band items rewritten",
    )


class AssessmentRules(RuleSettings):
    """Every domain rule's knobs together; what the pipeline needs besides its ports."""

    verdict: VerdictSettings = Field(default_factory=VerdictSettings)
    valuation: ValuationSettings = Field(default_factory=ValuationSettings)
    value_curve: ValueCurveSettings = Field(default_factory=ValueCurveSettings)
    intake: IntakeSettings = Field(default_factory=IntakeSettings)
    reuse: ReuseSettings = Field(default_factory=ReuseSettings)
    languages: tuple[str, ...] = ("en", "es")
    styles: tuple[str, ...] = ("standard",)
