"""The assessment's data model, shared by the local CLI, the Lambdas and the endpoint.

Pure pydantic models: no I/O. Money is in US dollars (vPIC and the auction market are US),
mileage in miles.
"""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from vehicle_assessment.domain import limits

UNTRAINED_ENCODER_WARNING = "untrained encoder: verdicts are not meaningful"


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- what callers may type ---------------------------------------------------------------------


def significant_digits(number: Decimal) -> int:
    """Digits between the first and last non-zero digit (Decimal.normalize would round at 28)."""
    return len("".join(str(d) for d in number.as_tuple().digits).strip("0"))


def check_storable_number(value: float) -> float:
    """A number the assessment store can hold as given (see limits.MAX_STORED_*); ValueError if not."""
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    # repr is the shortest round-trip form: the digits that would be stored.
    stored = Decimal(repr(value))
    if stored != 0 and not limits.MIN_STORED_MAGNITUDE <= abs(stored) <= limits.MAX_STORED_MAGNITUDE:
        raise ValueError(
            f"magnitude must be 0 or between {limits.MIN_STORED_MAGNITUDE} and {limits.MAX_STORED_MAGNITUDE}"
        )
    if significant_digits(stored) > limits.MAX_STORED_SIGNIFICANT_DIGITS:
        raise ValueError(f"must have at most {limits.MAX_STORED_SIGNIFICANT_DIGITS} significant digits")
    return value


StorableFloat = Annotated[float, AfterValidator(check_storable_number)]
# An estimate in US dollars. The bounds sit inside the annotation so that JSON Schema (and the API
# Gateway model made from it) states them as minimum/maximum.
EstimateUsd = Annotated[
    float,
    Field(ge=limits.MIN_ESTIMATE_USD, le=limits.MAX_ESTIMATE_USD, allow_inf_nan=False),
    AfterValidator(check_storable_number),
]


class Severity(StrEnum):
    NONE = "none"
    MINOR = "minor"
    MODERATE = "moderate"
    SEVERE = "severe"


class DamageType(StrEnum):
    NONE = "none"
    SCRATCH = "scratch"
    DENT = "dent"
    BROKEN = "broken"


class ReferenceLabel(Model):
    """What a labelled reference photo shows."""

    damaged: bool
    damage_type: DamageType
    severity: Severity


class Neighbour(Model):
    """One reference photo found near a query photo."""

    reference_id: str
    source: str
    similarity: float
    label: ReferenceLabel
    # The reference photo's sha256: names its stored copy (upload_keys.reference_image_key) so a
    # page can show it. None in records written before it was kept.
    sha256: str | None = None


class EncoderIdentity(Model):
    """Which model made an embedding; an index only answers queries from the same model.

    `weights_fingerprint` is a sha256 over the weights the encoder actually loaded, so two models of
    one name (two untrained draws, another checkpoint) are told apart; records written before it
    existed lack it.
    """

    model_name: str
    pretrained: str | None
    untrained: bool
    dimension: int
    # None also in deployment settings that name a model without pinning its weights (`conforms_to`).
    weights_fingerprint: str | None = None

    def describe(self) -> str:
        weights = "random weights (UNTRAINED)" if self.untrained else self.pretrained
        fingerprint = self.weights_fingerprint[:12] if self.weights_fingerprint else "unrecorded"
        return f"{self.model_name} [{weights}], {self.dimension}-d, weights {fingerprint}"

    def without_fingerprint(self) -> EncoderIdentity:
        return self.model_copy(update={"weights_fingerprint": None})

    def conforms_to(self, configured: EncoderIdentity) -> bool:
        """Whether this (loaded or served) encoder is the one `configured` asks for.

        A configuration without a fingerprint names the model only: any weights of that name and
        tag conform. One with a fingerprint pins the exact weights.
        """
        if configured.weights_fingerprint is None:
            return self.without_fingerprint() == configured
        return self == configured

    def comparable_with(self, other: EncoderIdentity) -> bool:
        """Whether vectors of the two encoders may be compared: same model AND the same recorded
        weights. An identity without a fingerprint is comparable with nothing, whatever its name says."""
        return self.weights_fingerprint is not None and self == other


# --- vehicle -------------------------------------------------------------------------------


class VinCheck(Model):
    """What the VIN alone tells: validity, model year, manufacturer."""

    vin: str
    wmi: str
    region: str
    north_american: bool
    check_digit_expected: str
    check_digit_valid: bool
    model_year: int | None
    manufacturer: str | None
    warnings: list[str] = Field(default_factory=list)


class Powertrain(StrEnum):
    """How a vehicle is driven. An unknown powertrain is None on VehicleFacts, never a guess."""

    BATTERY_ELECTRIC = "battery_electric"  # BEV: battery and electric motor(s), no engine
    FUEL_CELL_ELECTRIC = "fuel_cell_electric"  # FCEV: hydrogen fuel cell and electric motor(s)
    PLUG_IN_HYBRID = "plug_in_hybrid"  # PHEV: engine plus a battery charged from the grid
    HYBRID = "hybrid"  # HEV, mild or strong: engine plus electric drive, not known to plug in
    COMBUSTION = "combustion"  # an engine and no electric drive

    @property
    def is_electric(self) -> bool:
        """Driven by electric motors only: no combustion engine on board."""
        return self in (Powertrain.BATTERY_ELECTRIC, Powertrain.FUEL_CELL_ELECTRIC)

    @property
    def is_hybrid(self) -> bool:
        return self in (Powertrain.PLUG_IN_HYBRID, Powertrain.HYBRID)


class PowertrainEvidence(Model):
    """What a decoder reports about how a vehicle is driven; None where it reports nothing.

    Plain facts in the decoder's words (e.g. fuel "Gasoline", electrification level "Mild HEV ...");
    `vehicle.classify_powertrain` turns them into a Powertrain.
    """

    fuel_type_primary: str | None = None
    fuel_type_secondary: str | None = None
    electrification_level: str | None = None
    battery_kwh: float | None = None
    battery_type: str | None = None
    ev_drive_unit: str | None = None
    charger_level: str | None = None
    charger_power_kw: float | None = None
    engine_displacement_l: float | None = None
    engine_cylinders: int | None = None


class VehicleFacts(Model):
    """Decoded vehicle facts. None means unknown — never guessed.

    `is_electric` and `is_hybrid` follow `powertrain` when it is known (they are what the
    describers read); a powertrain contradicting them is rejected.
    """

    vin: str
    source: str  # "vpic" or "vin" (offline decode of the VIN itself)
    make: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    model_year: int | None = None
    trim: str | None = None
    body_class: str | None = None
    vehicle_type: str | None = None
    drive_type: str | None = None
    fuel_type_primary: str | None = None
    fuel_type_secondary: str | None = None
    electrification_level: str | None = None
    engine_displacement_l: float | None = None
    engine_cylinders: int | None = None
    engine_hp: float | None = None
    doors: int | None = None
    base_price_usd: float | None = None
    powertrain: Powertrain | None = None
    is_hybrid: bool = False
    is_electric: bool = False
    error_codes: list[str] = Field(default_factory=list)
    error_text: str | None = None
    warnings: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _flags_follow_the_powertrain(self) -> Self:
        if self.is_hybrid and self.is_electric:
            raise ValueError("a vehicle is hybrid or electric, not both")
        if self.powertrain is not None:
            if (self.is_hybrid and not self.powertrain.is_hybrid) or (
                self.is_electric and not self.powertrain.is_electric
            ):
                raise ValueError(f"is_hybrid/is_electric contradict powertrain {self.powertrain.value!r}")
            self.is_hybrid = self.powertrain.is_hybrid
            self.is_electric = self.powertrain.is_electric
        return self


class ValueMethod(StrEnum):
    USER_ESTIMATE = "user_estimate"
    DEPRECIATION_CURVE = "depreciation_curve"
    UNKNOWN = "unknown"


class UndamagedValue(Model):
    amount_usd: float | None
    method: ValueMethod
    reason: str


# --- photos --------------------------------------------------------------------------------


class QualityLevel(StrEnum):
    PASS = "pass"
    WARN = "warn"
    REJECT = "reject"


class QualityCheck(Model):
    name: str
    level: QualityLevel
    value: float
    reason: str | None = None


class QualityReport(Model):
    level: QualityLevel
    checks: list[QualityCheck]

    @property
    def reasons(self) -> list[str]:
        return [c.reason for c in self.checks if c.reason and c.level != QualityLevel.PASS]


class PhotoVerdict(Model):
    """The damage call for one photo, from a similarity-weighted vote of its neighbours."""

    damaged: bool
    damage_type: DamageType
    severity: Severity
    damaged_share: float  # weighted share of neighbours that are damaged, 0..1
    confidence: float  # weighted share behind the winning damaged/undamaged call, 0.5..1
    needs_review: bool
    review_reason: str | None = None
    neighbours: list[Neighbour]


class ReviewReason(StrEnum):
    """Why a photo waits for a person."""

    LOW_CONFIDENCE = "low_confidence"  # the verdict's neighbours disagree (PhotoVerdict.needs_review)
    POSSIBLE_REUSE = "possible_reuse"  # the photo matches a photo of another vehicle
    REJECTED_PHOTO = "rejected_photo"  # quality or format check refused it


class PhotoReview(Model):
    """A person's decision on one photo. Stored beside the model's verdict, never over it."""

    reviewer: str = Field(min_length=1, max_length=limits.MAX_REVIEWER_CHARS)
    reviewed_at: datetime
    damaged: bool
    damage_type: DamageType
    severity: Severity
    note: str | None = Field(default=None, max_length=limits.MAX_REVIEW_NOTE_CHARS)
    as_reference: bool = False  # add the photo, with this label, to the reference index

    @model_validator(mode="after")
    def _label_is_consistent(self) -> Self:
        none = (self.damage_type == DamageType.NONE, self.severity == Severity.NONE)
        if self.damaged and any(none):
            raise ValueError("a damaged photo needs a damage type and a severity other than none")
        if not self.damaged and not all(none):
            raise ValueError("an undamaged photo has damage type none and severity none")
        return self

    @property
    def label(self) -> ReferenceLabel:
        return ReferenceLabel(damaged=self.damaged, damage_type=self.damage_type, severity=self.severity)


class ReuseMatchKind(StrEnum):
    EXACT = "exact"  # the same bytes (sha256)
    PERCEPTUAL = "perceptual"  # perceptual-hash Hamming distance within the threshold
    EMBEDDING = "embedding"  # embedding cosine similarity above the threshold (trained encoder only)


class ReuseMatch(Model):
    """A photo of another vehicle that this photo matches: possible reuse (fraud or a mix-up)."""

    assessment_id: str
    photo_id: str
    vin: str
    kind: ReuseMatchKind
    # EXACT: 0; PERCEPTUAL: Hamming distance in bits; EMBEDDING: cosine similarity.
    score: float


class PhotoFingerprint(Model):
    """What the reused-photo check remembers of every analysed photo."""

    assessment_id: str
    photo_id: str
    vin: str
    sha256: str
    perceptual_hash: str  # hex, see domain/limits and the reuse adapter for its size
    recorded_at: datetime
    encoder: EncoderIdentity | None = None  # who made `vector`; None when no vector was kept
    vector: list[float] | None = None


class ReferenceProvenance(Model):
    """Where a reference photo learnt from a review came from."""

    assessment_id: str
    photo_id: str
    reviewer: str
    reviewed_at: datetime


class PhotoStatus(StrEnum):
    RECEIVED = "received"
    ANALYSED = "analysed"
    REJECTED = "rejected"
    # The same bytes as an earlier photo of the assessment: recorded, never valued twice.
    DUPLICATE = "duplicate"


class PhotoRecord(Model):
    """One uploaded photo. Every photo gets one, whatever happens to it."""

    photo_id: str
    filename: str
    object_key: str
    size_bytes: int
    sha256: str
    status: PhotoStatus
    # The object store's version of the upload that was counted (S3 versionId); every read uses it,
    # so a later re-upload under the same key never replaces the evidence. None: no versions kept.
    object_version: str | None = None
    reason: str | None = None
    duplicate_of: str | None = None  # the photo_id this one copies, when status is DUPLICATE
    width: int | None = None
    height: int | None = None
    quality: QualityReport | None = None
    verdict: PhotoVerdict | None = None
    perceptual_hash: str | None = None
    reuse_matches: list[ReuseMatch] = Field(default_factory=list)
    # Oldest first; the last one is the photo's effective verdict (see `effective_label`).
    reviews: list[PhotoReview] = Field(default_factory=list)

    @property
    def review(self) -> PhotoReview | None:
        return self.reviews[-1] if self.reviews else None


# --- valuation, description, audio -----------------------------------------------------------


class PhotoDepreciation(Model):
    photo_id: str
    severity: Severity
    rate: float
    counted: bool
    reason: str | None = None


class Valuation(Model):
    undamaged: UndamagedValue
    photos: list[PhotoDepreciation]
    combined_depreciation: float
    adjusted_value_usd: float | None
    rule: str
    provisional: bool
    notes: list[str] = Field(default_factory=list)


class DescriptionStyle(StrEnum):
    STANDARD = "standard"
    AUCTIONEER = "auctioneer"


class Description(Model):
    style: DescriptionStyle
    language: str
    text: str
    generator: str  # the model or template that wrote it, or "edited" for a person's text
    creativity: StorableFloat = 0.0
    note: str | None = None
    # 1 for the pipeline's first; each regeneration or edit of the (style, language) pair adds one.
    version: int = Field(default=1, ge=1)
    written_by: str | None = None  # the person who edited or asked for it; None: the pipeline
    written_at: datetime | None = None


class DescriptionRequest(Model):
    """Everything a describer may say — facts only; it must not add any."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vehicle: VehicleFacts
    color: str | None
    mileage: int | None
    damage_summary: dict[str, int]  # e.g. {"scratch/minor": 2}; empty when no damage found
    photos_assessed: int
    photos_need_review: int
    undamaged_value_usd: float | None
    adjusted_value_usd: float | None
    combined_depreciation: float
    untrained_encoder: bool
    provisional: bool = False  # the valuation is provisional (see Valuation.provisional)


class AudioStatus(StrEnum):
    GENERATED = "generated"
    SKIPPED = "skipped"


class AudioRecord(Model):
    language: str
    style: DescriptionStyle
    status: AudioStatus
    object_key: str | None = None
    content_type: str | None = None
    reason: str | None = None


# --- assessment ----------------------------------------------------------------------------


class HistoryAction(StrEnum):
    ASSESSED = "assessed"  # the workflow finished (COMPLETED / NEEDS_PHOTOS)
    REVIEWED = "reviewed"  # a person recorded a review of a photo
    REVALUED = "revalued"  # the valuation changed (after a review)
    DESCRIPTION_WRITTEN = "description_written"  # regenerated by the describer
    DESCRIPTION_EDITED = "description_edited"  # a person's text
    REFERENCE_ADDED = "reference_added"  # a reviewed photo joined the reference index
    REFERENCE_FAILED = "reference_failed"  # a reviewed photo could not join it (the review stands)
    REUSE_FLAGGED = "reuse_flagged"  # a photo matched another vehicle's


class HistoryEntry(Model):
    """One change to an assessment: the audit trail a dispute is settled with."""

    at: datetime
    actor: str  # a person's name, or "pipeline"
    action: HistoryAction
    summary: str  # one line for people
    photo_id: str | None = None
    # Before/after of the figure that moved, when one did (e.g. adjusted value, description version).
    before: str | None = None
    after: str | None = None


class AssessmentStatus(StrEnum):
    # AWS mode: the record exists before its photos, which arrive one S3 upload at a time.
    AWAITING_PHOTOS = "AWAITING_PHOTOS"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    # The workflow ran, but no photo could be assessed (all rejected or copies): new photos are needed.
    NEEDS_PHOTOS = "NEEDS_PHOTOS"
    FAILED = "FAILED"
    # AWS mode: the upload window passed before all expected photos arrived.
    INCOMPLETE = "INCOMPLETE"


def speakable_color(value: str | None) -> str | None:
    """A colour is read aloud: words only, whitespace collapsed, no markup, symbols or emoji.

    Control characters (which XML 1.0, and so SSML, forbids), unassigned code points and markup are
    refused, never silently dropped.

    Raises ValueError (a pydantic validator's error) with the reason.
    """
    if value is None:
        return None
    text = " ".join(value.split())
    odd = sorted({c for c in text if not (c.isalnum() or c == " " or c in limits.COLOR_PUNCTUATION)})
    if odd:
        raise ValueError(
            f"may hold only letters, digits, spaces and {limits.COLOR_PUNCTUATION}; found {''.join(odd)!r}"
        )
    if not any(c.isalpha() for c in text):
        raise ValueError("must name a colour: it holds no letters")
    return text


class AssessmentInputs(Model):
    """What the yard says about the vehicle; every entry path validates through this model."""

    vin: str
    color: str | None = Field(default=None, min_length=1, max_length=limits.MAX_COLOR_CHARS)
    mileage: int | None = Field(default=None, ge=0, le=limits.MAX_MILEAGE_MILES)
    estimate_usd: EstimateUsd | None = None

    @field_validator("color", mode="before")
    @classmethod
    def _speakable_color(cls, value: Any) -> Any:
        # Every entry path (CLI, API, S3 metadata) comes through here, so the colour that reaches a
        # description, the SSML and the table is one clean line of words; the bounds apply after.
        return speakable_color(value) if isinstance(value, str) else value


class Assessment(Model):
    assessment_id: str
    vin: str
    status: AssessmentStatus
    created_at: datetime
    updated_at: datetime
    inputs: AssessmentInputs
    # How many photos start the workflow (AWS mode); local mode takes whatever it is given.
    expected_photos: int = Field(default=limits.DEFAULT_EXPECTED_PHOTOS, ge=1, le=limits.MAX_EXPECTED_PHOTOS)
    failed_step: str | None = None
    failure_reason: str | None = None
    vin_check: VinCheck | None = None
    vehicle: VehicleFacts | None = None
    encoder: EncoderIdentity | None = None
    photos: list[PhotoRecord] = Field(default_factory=list)
    valuation: Valuation | None = None
    descriptions: list[Description] = Field(default_factory=list)
    audio: list[AudioRecord] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    review_reasons: list[str] = Field(default_factory=list)
    # Descriptions (and their audio) replaced by a regeneration or an edit, oldest first; the
    # current ones are `descriptions` / `audio`. Capped at limits.MAX_SUPERSEDED_DESCRIPTIONS.
    superseded_descriptions: list[Description] = Field(default_factory=list)
    superseded_audio: list[AudioRecord] = Field(default_factory=list)
    # Oldest first; capped at limits.MAX_HISTORY_ENTRIES, dropped entries counted.
    history: list[HistoryEntry] = Field(default_factory=list)
    history_dropped: int = Field(default=0, ge=0)
    # Since when photos of this finished assessment wait for a person (the review queue's order);
    # None while none waits. Kept from the first wait until the last waiting photo is reviewed.
    review_waiting_since: datetime | None = None
    # Optimistic locking: the stored revision this copy was read at (0: never stored). A save
    # succeeds only while the store still holds this revision, so no writer overwrites what
    # another saved after its read.
    revision: int = Field(default=0, ge=0, description="the stored revision this was read at")

    @property
    def needs_review(self) -> bool:
        return bool(self.review_reasons)


class ReviewQueueEntry(Model):
    """One assessment waiting for a person, with why (oldest first in the queue)."""

    assessment_id: str
    vin: str
    status: AssessmentStatus
    waiting_since: datetime  # when the assessment finished with photos awaiting review
    photos: dict[str, list[ReviewReason]]  # photo_id -> why it waits
