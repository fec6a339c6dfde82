"""Every damage type x severity reads correctly in both template languages (Spanish gender agreement)."""

from __future__ import annotations

import pytest

from vehicle_assessment.domain.description import TemplateDescriber
from vehicle_assessment.domain.models import (
    DamageType,
    DescriptionRequest,
    DescriptionStyle,
    Severity,
    VehicleFacts,
)

# Written out by hand: the adjective agrees with the noun (rayón is masculine, abolladura and
# rotura feminine; leve and grave have one form).
EXPECTED = {
    "en": {
        (DamageType.SCRATCH, Severity.MINOR): "minor scratch",
        (DamageType.SCRATCH, Severity.MODERATE): "moderate scratch",
        (DamageType.SCRATCH, Severity.SEVERE): "severe scratch",
        (DamageType.DENT, Severity.MINOR): "minor dent",
        (DamageType.DENT, Severity.MODERATE): "moderate dent",
        (DamageType.DENT, Severity.SEVERE): "severe dent",
        (DamageType.BROKEN, Severity.MINOR): "minor breakage",
        (DamageType.BROKEN, Severity.MODERATE): "moderate breakage",
        (DamageType.BROKEN, Severity.SEVERE): "severe breakage",
    },
    "es": {
        (DamageType.SCRATCH, Severity.MINOR): "rayón leve",
        (DamageType.SCRATCH, Severity.MODERATE): "rayón moderado",
        (DamageType.SCRATCH, Severity.SEVERE): "rayón grave",
        (DamageType.DENT, Severity.MINOR): "abolladura leve",
        (DamageType.DENT, Severity.MODERATE): "abolladura moderada",
        (DamageType.DENT, Severity.SEVERE): "abolladura grave",
        (DamageType.BROKEN, Severity.MINOR): "rotura leve",
        (DamageType.BROKEN, Severity.MODERATE): "rotura moderada",
        (DamageType.BROKEN, Severity.SEVERE): "rotura grave",
    },
}

# Every member of the enums (a new one must be added above, or this fails).
DAMAGE_TYPES = [t for t in DamageType if t != DamageType.NONE]
SEVERITIES = [s for s in Severity if s != Severity.NONE]


@pytest.mark.parametrize("language", ["en", "es"])
@pytest.mark.parametrize("severity", SEVERITIES)
@pytest.mark.parametrize("damage_type", DAMAGE_TYPES)
def test_damage_phrase(damage_type: DamageType, severity: Severity, language: str) -> None:
    request = DescriptionRequest(
        vehicle=VehicleFacts(vin="1FTMW1T88MFA00001", source="vin"),
        color=None,
        mileage=None,
        damage_summary={f"{damage_type.value}/{severity.value}": 2},
        photos_assessed=2,
        photos_need_review=0,
        undamaged_value_usd=None,
        adjusted_value_usd=None,
        combined_depreciation=0.0,
        untrained_encoder=False,
    )
    text = TemplateDescriber().describe(request, DescriptionStyle.STANDARD, language, 0.0).text
    assert f": {EXPECTED[language][(damage_type, severity)]} (2)." in text, text
