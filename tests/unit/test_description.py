"""The template describer and the description request: known facts only, en/es, two styles."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest

from vehicle_assessment.domain.description import (
    TemplateDescriber,
    UnsupportedLanguage,
    build_description_request,
    display_make,
    vehicle_title,
)
from vehicle_assessment.domain.models import (
    Assessment,
    AssessmentInputs,
    AssessmentStatus,
    DamageType,
    DescriptionRequest,
    DescriptionStyle,
    EncoderIdentity,
    PhotoRecord,
    PhotoStatus,
    PhotoVerdict,
    Severity,
    UndamagedValue,
    Valuation,
    ValueMethod,
    VehicleFacts,
)

VIN = "1FTFW1E50MFA00001"
STANDARD, AUCTIONEER = DescriptionStyle.STANDARD, DescriptionStyle.AUCTIONEER
LANGUAGES = ("en", "es")
STYLES = (STANDARD, AUCTIONEER)
DESCRIBER = TemplateDescriber()


def vehicle(**changes: Any) -> VehicleFacts:
    fields: dict[str, Any] = {
        "vin": VIN,
        "source": "vpic",
        "make": "FORD",
        "manufacturer": "FORD MOTOR COMPANY, USA",
        "model": "F-150",
        "model_year": 2021,
        "trim": "XLT",
        "body_class": "Pickup",
        "drive_type": "4WD",
        "fuel_type_primary": "Gasoline",
        "engine_displacement_l": 3.5,
        "engine_cylinders": 6,
    }
    fields.update(changes)
    return VehicleFacts(**fields)


def bare_vehicle(**changes: Any) -> VehicleFacts:
    """Only what the VIN itself tells."""
    return VehicleFacts(vin=VIN, source="vin", **changes)


def request(**changes: Any) -> DescriptionRequest:
    fields: dict[str, Any] = {
        "vehicle": vehicle(),
        "color": "Blue",
        "mileage": 48_200,
        "damage_summary": {"dent/moderate": 1, "scratch/minor": 2},
        "photos_assessed": 4,
        "photos_need_review": 0,
        "undamaged_value_usd": 32_918.0,
        "adjusted_value_usd": 24_688.5,
        "combined_depreciation": 0.25,
        "untrained_encoder": False,
    }
    fields.update(changes)
    return DescriptionRequest(**fields)


def minimal_request(**changes: Any) -> DescriptionRequest:
    """Nothing known but the VIN: no colour, mileage, value or confident photo."""
    fields: dict[str, Any] = {
        "vehicle": bare_vehicle(),
        "color": None,
        "mileage": None,
        "damage_summary": {},
        "photos_assessed": 0,
        "photos_need_review": 0,
        "undamaged_value_usd": None,
        "adjusted_value_usd": None,
        "combined_depreciation": 0.0,
        "untrained_encoder": False,
    }
    fields.update(changes)
    return DescriptionRequest(**fields)


def text(req: DescriptionRequest, language: str = "en", style: DescriptionStyle = STANDARD) -> str:
    return DESCRIBER.describe(req, style, language, 0.0).text


# --- numbers: the text may only state numbers from the request ----------------------------------

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def _renderings(value: float) -> set[str]:
    """Every way a describer may write a number of the request, in either language."""
    forms = {str(value), f"{value:g}", f"{value:g}".replace(".", ",")}
    if float(value).is_integer() or isinstance(value, int):
        whole = int(value)
        forms |= {str(whole), f"{whole:,}", f"{whole:,}".replace(",", ".")}
    # Half up, never to even (domain/figures.py): 24,688.5 is written 24,689.
    rounded = int(Decimal(repr(float(value))).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    forms |= {str(rounded), f"{rounded:,}", f"{rounded:,}".replace(",", ".")}
    return forms


def allowed_numbers(req: DescriptionRequest) -> set[str]:
    v = req.vehicle
    allowed: set[str] = set()
    numeric = [
        v.model_year,
        v.engine_displacement_l,
        v.engine_cylinders,
        v.engine_hp,
        v.doors,
        req.mileage,
        req.photos_assessed,
        req.photos_need_review,
        req.undamaged_value_usd,
        req.adjusted_value_usd,
        req.combined_depreciation * 100,
        *req.damage_summary.values(),
    ]
    for value in numeric:
        if value is not None:
            allowed |= _renderings(value)
    for words in [v.make, v.model, v.trim, v.body_class, v.drive_type, req.color]:
        allowed |= set(_NUMBER.findall(words or ""))
    return allowed


def numbers_in(description: str) -> list[str]:
    return _NUMBER.findall(description)


NUMBER_CASES = [
    request(),
    request(
        mileage=123_456, undamaged_value_usd=9_999.49, adjusted_value_usd=5_999.69, combined_depreciation=0.4
    ),
    request(vehicle=vehicle(is_hybrid=True, engine_displacement_l=2.5, engine_cylinders=4, model="RAV4")),
    request(photos_need_review=3, untrained_encoder=True, damage_summary={"broken/severe": 5}),
    minimal_request(),
    minimal_request(vehicle=bare_vehicle(model_year=2019, manufacturer="TOYOTA")),
]


@pytest.mark.parametrize(
    ("case", "language", "style"), list(itertools.product(NUMBER_CASES, LANGUAGES, STYLES))
)
def test_every_number_in_the_text_comes_from_the_request(
    case: DescriptionRequest, language: str, style: DescriptionStyle
) -> None:
    description = text(case, language, style)
    allowed = allowed_numbers(case)
    invented = [n for n in numbers_in(description) if n not in allowed]
    assert invented == [], f"{invented} not in the request: {description}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_year_mileage_and_values_are_stated(language: str) -> None:
    description = text(request(), language)
    found = numbers_in(description)
    assert "2021" in found
    if language == "en":
        assert {"48,200", "32,918", "24,689"} <= set(found)
    else:
        assert {"48.200", "32.918", "24.689"} <= set(found)


# --- English and Spanish, standard and auctioneer ----------------------------------------------


def test_english_standard_full_text() -> None:
    assert text(request(), "en", STANDARD) == (
        "2021 Ford F-150 XLT: Pickup, 4WD, 3.5 L 6-cylinder gasoline engine. Color: Blue. "
        "Mileage: 48,200 miles. Condition from 4 photos: moderate dent (1), minor scratch (2). "
        "Estimated value: $24,689 (undamaged $32,918, less 25% for damage)."
    )


def test_spanish_standard_full_text() -> None:
    assert text(request(), "es", STANDARD) == (
        "Ford F-150 XLT 2021: Pickup, 4WD, motor de gasolina de 3,5 L y 6 cilindros. Color: Blue. "
        "Millaje: 48.200 millas. Estado según 4 fotos: abolladura moderada (1), rayón leve (2). "
        "Valor estimado: 24.689 USD (sin daños 32.918 USD, menos 25 % por daños)."
    )


def test_english_auctioneer_wraps_the_standard_text() -> None:
    standard = text(request(), "en", STANDARD)
    auctioneer = text(request(), "en", AUCTIONEER)
    assert auctioneer == f"Up next, folks: {standard} Who'll start the bidding?"


def test_spanish_auctioneer_wraps_the_standard_text() -> None:
    standard = text(request(), "es", STANDARD)
    auctioneer = text(request(), "es", AUCTIONEER)
    assert auctioneer == f"¡Atención, postores! Llega {standard} ¿Quién abre la puja?"


def test_caveats_follow_the_auctioneer_closing() -> None:
    description = text(request(photos_need_review=1, untrained_encoder=True), "en", AUCTIONEER)
    assert description.index("Who'll start the bidding?") < description.index("awaiting manual review")
    assert description.endswith("the verdicts are not meaningful.")


@pytest.mark.parametrize(("language", "style"), list(itertools.product(LANGUAGES, STYLES)))
def test_description_records_style_language_and_generator(language: str, style: DescriptionStyle) -> None:
    description = DESCRIBER.describe(request(), style, language, 0.0)
    assert description.style == style
    assert description.language == language
    assert description.generator == "template"
    assert description.text


def test_language_is_case_insensitive() -> None:
    description = DESCRIBER.describe(request(), STANDARD, "ES", 0.0)
    assert description.language == "es"
    assert description.text == text(request(), "es")


@pytest.mark.parametrize("language", ["fr", "de", "pt-BR", ""])
def test_unsupported_language_raises(language: str) -> None:
    with pytest.raises(UnsupportedLanguage):
        DESCRIBER.describe(request(), STANDARD, language, 0.0)


def test_unsupported_language_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="'fr'"):
        DESCRIBER.describe(request(), STANDARD, "fr", 0.0)


# --- unknown fields are left out ---------------------------------------------------------------


@pytest.mark.parametrize(("language", "style"), list(itertools.product(LANGUAGES, STYLES)))
def test_unknown_fields_are_omitted(language: str, style: DescriptionStyle) -> None:
    description = text(minimal_request(), language, style)
    lowered = description.lower()
    assert "none" not in lowered
    assert "unknown" not in lowered
    assert "desconocid" not in lowered
    assert "color" not in lowered
    assert "mileage" not in lowered
    assert "millaje" not in lowered
    assert "$" not in description
    assert "usd" not in lowered
    assert "engine" not in lowered
    assert "motor" not in lowered
    assert "  " not in description
    assert " ." not in description
    assert ",," not in description
    assert ": ." not in description


def test_minimal_request_texts() -> None:
    assert text(minimal_request(), "en") == (
        "vehicle. Condition: no photo could be assessed with confidence."
    )
    assert text(minimal_request(), "es") == ("vehículo. Estado: ninguna foto pudo evaluarse con confianza.")


def test_no_color_sentence_when_color_is_none() -> None:
    for language in LANGUAGES:
        assert "Color:" not in text(request(color=None), language)
        assert "Color: Blue." in text(request(), language)


def test_no_mileage_sentence_when_mileage_is_none() -> None:
    assert "Mileage" not in text(request(mileage=None), "en")
    assert "Millaje" not in text(request(mileage=None), "es")


def test_zero_mileage_is_stated() -> None:
    assert "Mileage: 0 miles." in text(request(mileage=0), "en")
    assert "Millaje: 0 millas." in text(request(mileage=0), "es")


@pytest.mark.parametrize("language", LANGUAGES)
def test_no_value_sentence_when_adjusted_value_is_none(language: str) -> None:
    description = text(request(adjusted_value_usd=None), language)
    assert "Estimated value" not in description
    assert "Valor estimado" not in description
    assert "$" not in description
    assert "USD" not in description
    assert "32" not in description


@pytest.mark.parametrize("language", LANGUAGES)
def test_no_value_sentence_when_undamaged_value_is_none(language: str) -> None:
    description = text(request(undamaged_value_usd=None), language)
    assert "$" not in description
    assert "USD" not in description


def test_electric_vehicle_has_no_engine_phrase() -> None:
    ev = vehicle(
        make="TESLA",
        model="Model 3",
        trim=None,
        body_class="Sedan",
        drive_type="AWD",
        fuel_type_primary="Electric",
        engine_displacement_l=None,
        engine_cylinders=None,
        is_electric=True,
    )
    english = text(request(vehicle=ev), "en")
    spanish = text(request(vehicle=ev), "es")
    assert "engine" not in english
    assert "cylinder" not in english
    assert "electric drive" in english
    assert "2021 Tesla Model 3: Sedan, AWD, electric drive." in english
    assert "motor eléctrico" in spanish
    assert "cilindros" not in spanish
    assert "gasolina" not in spanish


def test_no_engine_phrase_when_nothing_about_the_engine_is_known() -> None:
    plain = vehicle(fuel_type_primary=None, engine_displacement_l=None, engine_cylinders=None)
    assert "2021 Ford F-150 XLT: Pickup, 4WD. Color" in text(request(vehicle=plain), "en")
    assert "Ford F-150 XLT 2021: Pickup, 4WD. Color" in text(request(vehicle=plain), "es")


def test_partial_engine_facts() -> None:
    only_cylinders = vehicle(fuel_type_primary=None, engine_displacement_l=None, engine_cylinders=4)
    assert "4-cylinder engine" in text(request(vehicle=only_cylinders), "en")
    assert "motor de 4 cilindros" in text(request(vehicle=only_cylinders), "es")
    only_fuel = vehicle(fuel_type_primary="Diesel", engine_displacement_l=None, engine_cylinders=None)
    assert "diesel engine" in text(request(vehicle=only_fuel), "en")
    assert "motor de diésel" in text(request(vehicle=only_fuel), "es")


def test_title_without_year_or_trim() -> None:
    no_year = vehicle(model_year=None, trim=None)
    assert vehicle_title(request(vehicle=no_year), "en") == "Ford F-150"
    assert vehicle_title(request(vehicle=no_year), "es") == "Ford F-150"


def test_title_falls_back_to_the_manufacturer_then_a_generic_noun() -> None:
    by_manufacturer = bare_vehicle(manufacturer="Toyota", model_year=2019)
    assert vehicle_title(minimal_request(vehicle=by_manufacturer), "en") == "2019 Toyota"
    assert vehicle_title(minimal_request(vehicle=by_manufacturer), "es") == "Toyota 2019"
    only_year = bare_vehicle(model_year=2019)
    assert vehicle_title(minimal_request(vehicle=only_year), "en") == "2019 vehicle"
    assert vehicle_title(minimal_request(vehicle=only_year), "es") == "vehículo 2019"


# --- powertrain --------------------------------------------------------------------------------


def test_hybrid_is_mentioned_in_both_languages() -> None:
    hybrid = vehicle(
        make="TOYOTA", model="RAV4", trim=None, engine_displacement_l=2.5, engine_cylinders=4, is_hybrid=True
    )
    english = text(request(vehicle=hybrid), "en")
    spanish = text(request(vehicle=hybrid), "es")
    assert "2.5 L 4-cylinder hybrid gasoline engine" in english
    assert "motor híbrido de gasolina de 2,5 L y 4 cilindros" in spanish


def test_hybrid_alone_is_still_mentioned() -> None:
    hybrid = vehicle(
        fuel_type_primary=None, engine_displacement_l=None, engine_cylinders=None, is_hybrid=True
    )
    assert "hybrid engine" in text(request(vehicle=hybrid), "en")
    assert "motor híbrido" in text(request(vehicle=hybrid), "es")


def test_plug_in_hybrid_and_fuel_cell_are_named_as_such() -> None:
    phev = vehicle(make="CHEVROLET", model="Volt", powertrain="plug_in_hybrid", engine_displacement_l=1.5)
    assert "plug-in hybrid gasoline engine" in text(request(vehicle=phev), "en")
    assert "motor híbrido enchufable de gasolina" in text(request(vehicle=phev), "es")
    fcev = vehicle(
        make="TOYOTA",
        model="Mirai",
        powertrain="fuel_cell_electric",
        fuel_type_primary="Hydrogen",
        engine_displacement_l=None,
        engine_cylinders=None,
    )
    assert "fuel-cell electric drive" in text(request(vehicle=fcev), "en")
    assert "motor eléctrico de pila de combustible" in text(request(vehicle=fcev), "es")


def test_non_hybrid_is_not_called_hybrid() -> None:
    assert "hybrid" not in text(request(), "en")
    assert "híbrido" not in text(request(), "es")


# --- condition and caveats ---------------------------------------------------------------------


def test_no_damage_found() -> None:
    no_damage = request(damage_summary={}, photos_assessed=1)
    assert "Condition from 1 photo: no damage detected." in text(no_damage, "en")
    assert "Estado según 1 foto: sin daños detectados." in text(no_damage, "es")


def test_damage_summary_translated_to_spanish() -> None:
    summary = {"broken/severe": 1, "dent/minor": 3}
    description = text(request(damage_summary=summary), "es")
    assert "rotura grave (1), abolladura leve (3)" in description


@pytest.mark.parametrize(
    ("count", "english", "spanish"),
    [
        (1, "1 photo awaiting manual review.", "1 foto pendiente de revisión manual."),
        (3, "3 photos awaiting manual review.", "3 fotos pendientes de revisión manual."),
    ],
)
def test_needs_review_count_sentence(count: int, english: str, spanish: str) -> None:
    assert english in text(request(photos_need_review=count), "en")
    assert spanish in text(request(photos_need_review=count), "es")


def test_no_review_sentence_when_nothing_awaits_review() -> None:
    assert "review" not in text(request(), "en")
    assert "revisión" not in text(request(), "es")


@pytest.mark.parametrize("style", STYLES)
def test_untrained_warning_in_both_languages(style: DescriptionStyle) -> None:
    flagged = request(untrained_encoder=True)
    english = text(flagged, "en", style)
    spanish = text(flagged, "es", style)
    assert "WARNING: assessed with an untrained model; the verdicts are not meaningful." in english
    assert (
        "AVISO: evaluación hecha con un modelo sin entrenar; los veredictos no son significativos." in spanish
    )
    assert "WARNING" not in text(request(), "en", style)
    assert "AVISO" not in text(request(), "es", style)


# --- determinism and creativity ----------------------------------------------------------------


@pytest.mark.parametrize(("language", "style"), list(itertools.product(LANGUAGES, STYLES)))
def test_deterministic(language: str, style: DescriptionStyle) -> None:
    first = DESCRIBER.describe(request(), style, language, 0.0)
    second = TemplateDescriber().describe(request(), style, language, 0.0)
    assert first == second


def test_creativity_is_recorded_and_noted_but_has_no_effect() -> None:
    plain = DESCRIBER.describe(request(), STANDARD, "en", 0.0)
    creative = DESCRIBER.describe(request(), STANDARD, "en", 0.8)
    assert plain.creativity == 0.0
    assert plain.note is None
    assert creative.creativity == 0.8
    assert creative.note is not None
    assert "creativity has no effect" in creative.note
    assert creative.text == plain.text


# --- number formatting -------------------------------------------------------------------------


def test_spanish_number_formatting() -> None:
    description = text(request(), "es")
    assert "48.200 millas" in description
    assert "32.918 USD" in description
    assert "24.689 USD" in description
    assert "25 %" in description


def test_english_number_formatting() -> None:
    description = text(request(), "en")
    assert "48,200 miles" in description
    assert "$32,918" in description
    assert "$24,689" in description
    assert "25%" in description


def test_large_and_small_numbers() -> None:
    req = request(mileage=1_234_567, undamaged_value_usd=999.0, adjusted_value_usd=899.6)
    assert "1,234,567 miles" in text(req, "en")
    assert "1.234.567 millas" in text(req, "es")
    assert "$900 (undamaged $999" in text(req, "en")
    assert "900 USD (sin daños 999 USD" in text(req, "es")


def test_spanish_displacement_uses_a_decimal_comma() -> None:
    assert "3,5 L" in text(request(), "es")
    assert "3.5 L" in text(request(), "en")


def test_whole_displacement_has_no_decimals() -> None:
    five = vehicle(engine_displacement_l=5.0, engine_cylinders=8)
    assert "5 L 8-cylinder" in text(request(vehicle=five), "en")
    assert "de 5 L y 8 cilindros" in text(request(vehicle=five), "es")


# --- display_make ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "shown"),
    [
        ("FORD", "Ford"),
        ("TOYOTA", "Toyota"),
        ("BMW", "BMW"),
        ("KIA", "KIA"),
        ("MERCEDES-BENZ", "Mercedes-Benz"),
        ("ROLLS-ROYCE", "Rolls-Royce"),
        ("LAND ROVER", "Land Rover"),
        ("ALFA ROMEO", "Alfa Romeo"),
        ("Tesla", "Tesla"),
        ("McLaren", "McLaren"),
        (None, None),
        ("", ""),
    ],
)
def test_display_make(make: str | None, shown: str | None) -> None:
    assert display_make(make) == shown


# --- build_description_request -----------------------------------------------------------------

_ids = itertools.count()
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def verdict(
    damage_type: DamageType = DamageType.NONE,
    severity: Severity = Severity.NONE,
    needs_review: bool = False,
) -> PhotoVerdict:
    is_damaged = damage_type != DamageType.NONE
    return PhotoVerdict(
        damaged=is_damaged,
        damage_type=damage_type,
        severity=severity,
        damaged_share=1.0 if is_damaged else 0.0,
        confidence=0.6 if needs_review else 1.0,
        needs_review=needs_review,
        review_reason="confidence 0.60 is below the 0.70 threshold" if needs_review else None,
        neighbours=[],
    )


def photo(status: PhotoStatus = PhotoStatus.ANALYSED, verdict: PhotoVerdict | None = None) -> PhotoRecord:
    n = next(_ids)
    return PhotoRecord(
        photo_id=f"p{n}",
        filename=f"p{n}.jpg",
        object_key=f"photos/p{n}.jpg",
        size_bytes=1000,
        sha256=f"{n:064x}",
        status=status,
        reason="too dark" if status == PhotoStatus.REJECTED else None,
        verdict=verdict,
    )


def valuation(undamaged: float | None = 20_000.0, adjusted: float | None = 16_400.0) -> Valuation:
    return Valuation(
        undamaged=UndamagedValue(
            amount_usd=undamaged,
            method=ValueMethod.USER_ESTIMATE if undamaged else ValueMethod.UNKNOWN,
            reason="owner estimate",
        ),
        photos=[],
        combined_depreciation=0.18,
        adjusted_value_usd=adjusted,
        rule="rule",
        provisional=False,
    )


def encoder(untrained: bool) -> EncoderIdentity:
    return EncoderIdentity(model_name="ViT-L-14", pretrained=None, untrained=untrained, dimension=768)


def assessment(**changes: Any) -> Assessment:
    fields: dict[str, Any] = {
        "assessment_id": "a1",
        "vin": VIN,
        "status": AssessmentStatus.PROCESSING,
        "created_at": NOW,
        "updated_at": NOW,
        "inputs": AssessmentInputs(vin=VIN, color="Red", mileage=30_000),
        "vehicle": vehicle(),
    }
    fields.update(changes)
    return Assessment(**fields)


MIXED_PHOTOS = [
    photo(verdict=verdict(DamageType.SCRATCH, Severity.MINOR)),
    photo(verdict=verdict(DamageType.SCRATCH, Severity.MINOR)),
    photo(verdict=verdict(DamageType.DENT, Severity.SEVERE)),
    photo(verdict=verdict()),  # confident, undamaged
    photo(verdict=verdict(DamageType.BROKEN, Severity.SEVERE, needs_review=True)),
    photo(verdict=verdict(needs_review=True)),
    photo(PhotoStatus.REJECTED),
    photo(PhotoStatus.RECEIVED),
]


def test_request_counts_confident_and_review_photos() -> None:
    req = build_description_request(
        assessment(photos=MIXED_PHOTOS, valuation=valuation(), encoder=encoder(False))
    )
    assert req.photos_assessed == 4
    assert req.photos_need_review == 2
    # only confident damaged photos are summarised; the broken/severe one awaits review
    assert req.damage_summary == {"dent/severe": 1, "scratch/minor": 2}
    assert list(req.damage_summary) == sorted(req.damage_summary)
    assert req.vehicle == vehicle()
    assert req.color == "Red"
    assert req.mileage == 30_000
    assert req.undamaged_value_usd == 20_000.0
    assert req.adjusted_value_usd == 16_400.0
    assert req.combined_depreciation == 0.18
    assert req.untrained_encoder is False


def test_request_from_a_fresh_assessment() -> None:
    req = build_description_request(assessment(inputs=AssessmentInputs(vin=VIN)))
    assert req.photos_assessed == 0
    assert req.photos_need_review == 0
    assert req.damage_summary == {}
    assert req.color is None
    assert req.mileage is None
    assert req.undamaged_value_usd is None
    assert req.adjusted_value_usd is None
    assert req.combined_depreciation == 0.0
    assert req.untrained_encoder is False


def test_request_flags_an_untrained_encoder() -> None:
    assert build_description_request(assessment(encoder=encoder(True))).untrained_encoder is True
    assert build_description_request(assessment(encoder=encoder(False))).untrained_encoder is False


def test_request_passes_an_unknown_value_through() -> None:
    req = build_description_request(assessment(valuation=valuation(undamaged=None, adjusted=None)))
    assert req.undamaged_value_usd is None
    assert req.adjusted_value_usd is None
    assert "Estimated value" not in text(req, "en")


def test_request_needs_a_decoded_vehicle() -> None:
    with pytest.raises(ValueError, match="not been decoded"):
        build_description_request(assessment(vehicle=None))


def test_request_text_end_to_end() -> None:
    req = build_description_request(assessment(photos=MIXED_PHOTOS, valuation=valuation()))
    english = text(req, "en")
    assert "Condition from 4 photos: severe dent (1), minor scratch (2)." in english
    assert "2 photos awaiting manual review." in english
    assert "broken" not in english
    invented = [n for n in numbers_in(english) if n not in allowed_numbers(req)]
    assert invented == []
