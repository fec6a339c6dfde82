"""Vehicle rules on plain facts: the powertrain from what a decoder reports, and the facts the
VIN alone gives when no decoder answer can be used.

Pure functions, no I/O. How a decoding service writes its answer (vPIC's variable names, its
`Results` envelope, its "" and "Not Applicable") is the adapter's business: it hands over plain
facts (`PowertrainEvidence`, `VehicleFacts`).
"""

from __future__ import annotations

from vehicle_assessment.domain.models import Powertrain, PowertrainEvidence, VehicleFacts, VinCheck

OFFLINE_WARNING = "decoded offline from the VIN only"

# Fuels burnt in an engine. With an electric drive beside one of them the vehicle is a hybrid.
_COMBUSTION_FUELS = (
    "gasoline",
    "diesel",
    "ethanol",
    "flexible",
    "natural gas",
    "cng",
    "lpg",
    "propane",
    "methanol",
)


def _has(text: str | None, *words: str) -> bool:
    folded = (text or "").casefold()
    return any(word in folded for word in words)


def _is_combustion_fuel(fuel: str | None) -> bool:
    return _has(fuel, *_COMBUSTION_FUELS)


def _is_electric_fuel(fuel: str | None) -> bool:
    return (fuel or "").casefold().startswith("electric")


def _positive(number: float | None) -> bool:
    return number is not None and number > 0


def _from_electrification_level(level: str | None) -> Powertrain | None:
    folded = (level or "").casefold()
    # The order matters: "PHEV" contains "HEV", "Plug-in Hybrid" contains "Hybrid".
    if folded.startswith("fcev") or "fuel cell" in folded:
        return Powertrain.FUEL_CELL_ELECTRIC
    if folded.startswith("phev") or "plug-in" in folded:
        return Powertrain.PLUG_IN_HYBRID
    if folded.startswith("bev") or "battery electric" in folded:
        return Powertrain.BATTERY_ELECTRIC
    if "hev" in folded or "hybrid" in folded:  # Strong HEV, Mild HEV, "HEV ... - Level Unknown"
        return Powertrain.HYBRID
    return None  # absent, or a level this rule does not know: the other fields decide


def classify_powertrain(evidence: PowertrainEvidence) -> Powertrain | None:
    """The powertrain from every reported field; None (unknown) when nothing points anywhere.

    Deciding fields, first match wins:

    1. The electrification level, when it names a kind: FCEV, PHEV, BEV, HEV (strong, mild or
       level unknown). It is the decoder's own classification.
    2. A fuel cell (either fuel type says "fuel cell", or hydrogen beside an electric drive) → FCEV.
    3. An electric drive and an engine → hybrid; plug-in hybrid when a charger is reported.
       Electric drive: a fuel type "Electric", a battery capacity (kWh > 0), a battery type, an
       EV drive unit or a charger (level or power). Engine: a combustion fuel (gasoline, diesel,
       ethanol, flex fuel, natural gas, LPG, methanol) or a displacement or cylinder count above 0.
    4. An electric drive and no sign of an engine → battery-electric. vPIC leaves the fuel type,
       the electrification level and the displacement of some BEVs empty; their battery, drive
       unit or charger fields still say so.
    5. An engine and no sign of an electric drive → combustion.
    6. Nothing of the above → None: unknown, never a guess.
    """
    by_level = _from_electrification_level(evidence.electrification_level)
    if by_level is not None:
        return by_level

    fuels = (evidence.fuel_type_primary, evidence.fuel_type_secondary)
    charger = evidence.charger_level is not None or _positive(evidence.charger_power_kw)
    electric_drive = (
        any(_is_electric_fuel(fuel) for fuel in fuels)
        or _positive(evidence.battery_kwh)
        or evidence.battery_type is not None
        or evidence.ev_drive_unit is not None
        or charger
    )
    if any(_has(fuel, "fuel cell") for fuel in fuels) or (
        electric_drive and any(_has(fuel, "hydrogen") for fuel in fuels)
    ):
        return Powertrain.FUEL_CELL_ELECTRIC
    engine = (
        any(_is_combustion_fuel(fuel) for fuel in fuels)
        or _positive(evidence.engine_displacement_l)
        or _positive(evidence.engine_cylinders)
    )
    if electric_drive and engine:
        return Powertrain.PLUG_IN_HYBRID if charger else Powertrain.HYBRID
    if electric_drive:
        return Powertrain.BATTERY_ELECTRIC
    if engine:
        return Powertrain.COMBUSTION
    return None


def facts_from_vin(check: VinCheck) -> VehicleFacts:
    """The fallback: only what the VIN itself says; everything else stays unknown."""
    return VehicleFacts(
        vin=check.vin,
        source="vin",
        make=check.manufacturer,
        manufacturer=check.manufacturer,
        model_year=check.model_year,
        warnings=[OFFLINE_WARNING],
    )
