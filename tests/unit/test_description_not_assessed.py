"""Descriptions never present a value as assessed when no photo was, and say when they are provisional."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from vehicle_assessment.domain.description import TemplateDescriber, build_description_request
from vehicle_assessment.domain.models import (
    Assessment,
    AssessmentInputs,
    AssessmentStatus,
    DamageType,
    DescriptionStyle,
    EncoderIdentity,
    PhotoRecord,
    PhotoStatus,
    PhotoVerdict,
    Severity,
    UndamagedValue,
    ValueMethod,
    VehicleFacts,
)
from vehicle_assessment.domain.rules import ValuationSettings
from vehicle_assessment.domain.valuation import value_vehicle

VIN = "1FTFW1E50MFA00001"
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
DESCRIBER = TemplateDescriber()


def _photo(photo_id: str, status: PhotoStatus, verdict: PhotoVerdict | None = None) -> PhotoRecord:
    return PhotoRecord(
        photo_id=photo_id,
        filename=f"{photo_id}.jpg",
        object_key=f"photos/{photo_id}.jpg",
        size_bytes=1000,
        sha256=photo_id * 32,
        status=status,
        reason="image too small" if status == PhotoStatus.REJECTED else None,
        verdict=verdict,
    )


def _verdict(needs_review: bool) -> PhotoVerdict:
    return PhotoVerdict(
        damaged=False,
        damage_type=DamageType.NONE,
        severity=Severity.NONE,
        damaged_share=0.0,
        confidence=0.6 if needs_review else 1.0,
        needs_review=needs_review,
        review_reason="confidence 0.60 is below the 0.70 threshold" if needs_review else None,
        neighbours=[],
    )


def _assessment(photos: list[PhotoRecord], untrained: bool = False) -> Assessment:
    undamaged = UndamagedValue(amount_usd=20_000.0, method=ValueMethod.USER_ESTIMATE, reason="owner estimate")
    return Assessment(
        assessment_id="a1",
        vin=VIN,
        status=AssessmentStatus.PROCESSING,
        created_at=NOW,
        updated_at=NOW,
        inputs=AssessmentInputs(vin=VIN, estimate_usd=20_000.0),
        vehicle=VehicleFacts(vin=VIN, source="vin", model_year=2021),
        encoder=EncoderIdentity(model_name="ViT-L-14", pretrained=None, untrained=untrained, dimension=768),
        photos=photos,
        valuation=value_vehicle(photos, undamaged, ValuationSettings(), untrained_encoder=untrained),
    )


def _texts(assessment: Assessment) -> dict[str, str]:
    request = build_description_request(assessment)
    return {
        language: DESCRIBER.describe(request, DescriptionStyle.STANDARD, language, 0.0).text
        for language in ("en", "es")
    }


ALL_REJECTED = [_photo("01", PhotoStatus.REJECTED), _photo("02", PhotoStatus.REJECTED)]
ALL_NEED_REVIEW = [_photo("01", PhotoStatus.ANALYSED, _verdict(needs_review=True))]


@pytest.mark.parametrize("photos", [ALL_REJECTED, ALL_NEED_REVIEW], ids=["all-rejected", "all-need-review"])
def test_no_assessed_photo_gives_no_damage_figure(photos: list[PhotoRecord]) -> None:
    request = build_description_request(_assessment(photos))
    assert request.photos_assessed == 0
    assert request.adjusted_value_usd is None  # no describer (template or Bedrock) sees one
    texts = _texts(_assessment(photos))
    assert "for damage)" not in texts["en"] and "%" not in texts["en"]
    assert "Estimated value" not in texts["en"]
    assert "no photo could be assessed" in texts["en"]
    assert (
        "Damage not assessed: $20,000 is the undamaged value, before any deduction for damage." in texts["en"]
    )
    assert "%" not in texts["es"] and "Valor estimado" not in texts["es"]
    assert "Daños sin evaluar: 20.000 USD es el valor sin daños" in texts["es"]
    assert "Provisional assessment." in texts["en"] and "Evaluación provisional." in texts["es"]


def test_an_untrained_encoder_makes_every_description_provisional() -> None:
    confident = [_photo("01", PhotoStatus.ANALYSED, _verdict(needs_review=False))]
    assert build_description_request(_assessment(confident)).provisional is False
    assert "Provisional" not in _texts(_assessment(confident))["en"]
    untrained = _assessment(confident, untrained=True)
    assert untrained.valuation and untrained.valuation.provisional
    assert build_description_request(untrained).provisional is True
    texts = _texts(untrained)
    assert "Provisional assessment." in texts["en"] and "Evaluación provisional." in texts["es"]
    assert "Estimated value: $20,000 (undamaged $20,000, less 0% for damage)." in texts["en"]
