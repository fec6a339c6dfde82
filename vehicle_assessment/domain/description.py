"""Auction descriptions from known facts only, and the deterministic template describer.

The template describer is the local default and the fallback when a language model fails. It
says nothing that is not in the `DescriptionRequest`: unknown fields are left out, and the only
condition it states is the computed assessment.
"""

from __future__ import annotations

from collections import Counter

from vehicle_assessment.domain import figures
from vehicle_assessment.domain.models import (
    Assessment,
    Description,
    DescriptionRequest,
    DescriptionStyle,
    PhotoStatus,
    Powertrain,
)
from vehicle_assessment.domain.review import confidently_labelled, judged_by_model_only, photo_review_reasons

TEMPLATE_LANGUAGES = ("en", "es")


class UnsupportedLanguage(ValueError):
    pass


def build_description_request(assessment: Assessment) -> DescriptionRequest:
    """Collect what a describer may say about this assessment."""
    if assessment.vehicle is None:
        raise ValueError("the vehicle has not been decoded yet")
    # A person's review wins over the model's verdict; an unsure or possibly reused photo says nothing
    # until a person has looked at it (domain/review.py).
    labels = [label for p in assessment.photos if (label := confidently_labelled(p)) is not None]
    damage = Counter(f"{label.damage_type.value}/{label.severity.value}" for label in labels if label.damaged)
    waiting = [p for p in assessment.photos if photo_review_reasons(p) and p.status == PhotoStatus.ANALYSED]
    valuation = assessment.valuation
    # Once people have judged every photo the model judged, the encoder's weights no longer matter.
    reviewed_all = any(p.reviews for p in assessment.photos) and not judged_by_model_only(assessment.photos)
    untrained = bool(assessment.encoder and assessment.encoder.untrained) and not reviewed_all
    return DescriptionRequest(
        vehicle=assessment.vehicle,
        color=assessment.inputs.color,
        mileage=assessment.inputs.mileage,
        damage_summary=dict(sorted(damage.items())),
        photos_assessed=len(labels),
        photos_need_review=len(waiting),
        undamaged_value_usd=valuation.undamaged.amount_usd if valuation else None,
        # Without one confidently assessed photo the damage is unknown: no describer may state a
        # damage-adjusted value (it would read as "0 % for damage").
        adjusted_value_usd=valuation.adjusted_value_usd if valuation and labels else None,
        combined_depreciation=valuation.combined_depreciation if valuation else 0.0,
        untrained_encoder=untrained,
        provisional=bool(valuation and valuation.provisional) or untrained,
    )


def display_make(make: str | None) -> str | None:
    # vPIC spells makes in capitals ("FORD"); short ones are usually acronyms ("BMW").
    # Each word and each hyphenated part is capitalised: "LAND ROVER", "MERCEDES-BENZ".
    if make and make.isupper() and len(make) > 3:
        return " ".join("-".join(part.capitalize() for part in word.split("-")) for word in make.split(" "))
    return make


def vehicle_title(request: DescriptionRequest, language: str) -> str:
    v = request.vehicle
    parts = [display_make(v.make) or v.manufacturer, v.model, v.trim]
    name = " ".join(p for p in parts if p)
    if not name:
        name = "vehículo" if language == "es" else "vehicle"
    if v.model_year is None:
        return name
    # Spanish puts the year after the name ("Ford F-150 2021").
    return f"{name} {v.model_year}" if language == "es" else f"{v.model_year} {name}"


_FUEL_ES = {
    "gasoline": "gasolina",
    "diesel": "diésel",
    "electric": "eléctrico",
    "flexible fuel vehicle (ffv)": "combustible flexible",
}
# "broken" is the label's adjective; the sentence needs a noun ("severe breakage").
_DAMAGE_EN = {"broken": "breakage"}
# Spanish adjectives agree with the noun's gender: "rayón moderado", "abolladura moderada".
_DAMAGE_ES = {"scratch": ("rayón", "m"), "dent": ("abolladura", "f"), "broken": ("rotura", "f")}
_SEVERITY_ES = {
    "minor": {"m": "leve", "f": "leve"},
    "moderate": {"m": "moderado", "f": "moderada"},
    "severe": {"m": "grave", "f": "grave"},
}


def _damage_es(damage_type: str, severity: str) -> str:
    noun, gender = _DAMAGE_ES.get(damage_type, (damage_type, "m"))
    adjective = _SEVERITY_ES.get(severity, {}).get(gender, severity)
    return f"{noun} {adjective}"


def _usd(amount: float, language: str) -> str:
    return figures.usd(amount, language)


def _miles(miles: int, language: str) -> str:
    whole = f"{miles:,}"
    return f"{whole.replace(',', '.')} millas" if language == "es" else f"{whole} miles"


def _powertrain(request: DescriptionRequest, language: str) -> str | None:
    v = request.vehicle
    if v.powertrain == Powertrain.FUEL_CELL_ELECTRIC:
        return "motor eléctrico de pila de combustible" if language == "es" else "fuel-cell electric drive"
    if v.is_electric:
        return "motor eléctrico" if language == "es" else "electric drive"
    plug_in = v.powertrain == Powertrain.PLUG_IN_HYBRID
    fuel = v.fuel_type_primary
    if language == "es":
        fuel = _FUEL_ES.get(fuel.lower(), fuel) if fuel else None
        engine = ("motor híbrido enchufable" if plug_in else "motor híbrido") if v.is_hybrid else "motor"
        # Spanish writes the decimal comma ("2,5 L"); the dot is its thousands separator.
        litres = f"{v.engine_displacement_l:g}".replace(".", ",") if v.engine_displacement_l else None
        details = [f"{litres} L" if litres else None]
        details.append(f"{v.engine_cylinders} cilindros" if v.engine_cylinders else None)
        spec = " y ".join(d for d in details if d)
        text = " ".join(
            p for p in [engine, f"de {fuel}" if fuel else None, f"de {spec}" if spec else None] if p
        )
        return text if (fuel or spec or v.is_hybrid) else None
    details = [f"{v.engine_displacement_l:g} L" if v.engine_displacement_l else None]
    details.append(f"{v.engine_cylinders}-cylinder" if v.engine_cylinders else None)
    details.append(("plug-in hybrid" if plug_in else "hybrid") if v.is_hybrid else None)
    details.append(fuel.lower() if fuel else None)
    spec = " ".join(d for d in details if d)
    return f"{spec} engine" if spec else None


def _damage_phrase(request: DescriptionRequest, language: str) -> str:
    n = request.photos_assessed
    if n == 0:
        return (
            "Estado: ninguna foto pudo evaluarse con confianza."
            if language == "es"
            else "Condition: no photo could be assessed with confidence."
        )
    items = []
    for key, count in request.damage_summary.items():
        damage_type, severity = key.split("/")
        if language == "es":
            items.append(f"{_damage_es(damage_type, severity)} ({count})")
        else:
            items.append(f"{severity} {_DAMAGE_EN.get(damage_type, damage_type)} ({count})")
    if language == "es":
        found = ", ".join(items) if items else "sin daños detectados"
        return f"Estado según {n} foto{'s' if n != 1 else ''}: {found}."
    found = ", ".join(items) if items else "no damage detected"
    return f"Condition from {n} photo{'s' if n != 1 else ''}: {found}."


def _value_phrase(request: DescriptionRequest, language: str) -> str | None:
    if request.adjusted_value_usd is None or request.undamaged_value_usd is None:
        return None
    pct = figures.percent(request.combined_depreciation, language)
    adjusted, base = _usd(request.adjusted_value_usd, language), _usd(request.undamaged_value_usd, language)
    if language == "es":
        return f"Valor estimado: {adjusted} (sin daños {base}, menos {pct} por daños)."
    return f"Estimated value: {adjusted} (undamaged {base}, less {pct} for damage)."


def _not_assessed_value_phrase(request: DescriptionRequest, language: str) -> str | None:
    """The undamaged value, labelled as such, when no photo could be assessed for damage."""
    if request.undamaged_value_usd is None:
        return None
    base = _usd(request.undamaged_value_usd, language)
    if language == "es":
        return f"Daños sin evaluar: {base} es el valor sin daños, antes de descontar daño alguno."
    return f"Damage not assessed: {base} is the undamaged value, before any deduction for damage."


def _provisional_note(request: DescriptionRequest, language: str) -> list[str]:
    if not request.provisional:
        return []
    return ["Evaluación provisional." if language == "es" else "Provisional assessment."]


def _caveats(request: DescriptionRequest, language: str) -> list[str]:
    notes = []
    if request.photos_need_review:
        n = request.photos_need_review
        notes.append(
            f"{n} foto{'s' if n != 1 else ''} pendiente{'s' if n != 1 else ''} de revisión manual."
            if language == "es"
            else f"{n} photo{'s' if n != 1 else ''} awaiting manual review."
        )
    if request.untrained_encoder:
        notes.append(
            "AVISO: evaluación hecha con un modelo sin entrenar; los veredictos no son significativos."
            if language == "es"
            else "WARNING: assessed with an untrained model; the verdicts are not meaningful."
        )
    return notes


class TemplateDescriber:
    """Deterministic descriptions in English and Spanish, standard or auctioneer style."""

    name = "template"

    def describe(
        self, request: DescriptionRequest, style: DescriptionStyle, language: str, creativity: float
    ) -> Description:
        language = language.lower()
        if language not in TEMPLATE_LANGUAGES:
            raise UnsupportedLanguage(
                f"the template describer writes {', '.join(TEMPLATE_LANGUAGES)}; '{language}' needs Bedrock"
            )
        title = vehicle_title(request, language)
        v = request.vehicle
        facts = [p for p in [v.body_class, v.drive_type, _powertrain(request, language)] if p]
        extras = []
        if request.color:
            extras.append(f"Color: {request.color}.")
        if request.mileage is not None:
            label = "Millaje" if language == "es" else "Mileage"
            extras.append(f"{label}: {_miles(request.mileage, language)}.")
        sentences = [
            f"{title}{': ' + ', '.join(facts) if facts else ''}.",
            *extras,
            _damage_phrase(request, language),
        ]
        value = (
            _value_phrase(request, language)
            if request.photos_assessed
            else _not_assessed_value_phrase(request, language)
        )
        if value:
            sentences.append(value)
        body = " ".join(sentences)
        if style == DescriptionStyle.AUCTIONEER:
            if language == "es":
                body = f"¡Atención, postores! Llega {body} ¿Quién abre la puja?"
            else:
                body = f"Up next, folks: {body} Who'll start the bidding?"
        text = " ".join([body, *_provisional_note(request, language), *_caveats(request, language)])
        return Description(
            style=style,
            language=language,
            text=text,
            generator=self.name,
            creativity=creativity,
            note="template output is deterministic; creativity has no effect" if creativity else None,
        )
