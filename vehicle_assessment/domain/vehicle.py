"""Vehicle facts from a vPIC answer, or from the VIN alone when vPIC cannot be reached.

Pure functions, no I/O. vPIC says "unknown" with empty strings (or nulls in the DecodeVin form),
and a field that does not parse is reported, never guessed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from vehicle_assessment.domain.models import VehicleFacts, VinCheck

OFFLINE_WARNING = "decoded offline from the VIN only"

# DecodeVin (the unflattened form) names each value by VariableId and Variable; map both onto the
# flat DecodeVinValues keys so that one reader handles every form.
_VARIABLES: dict[str, tuple[int, str]] = {
    "ErrorCode": (143, "Error Code"),
    "ErrorText": (191, "Error Text"),
    "AdditionalErrorText": (156, "Additional Error Text"),
    "Make": (26, "Make"),
    "Manufacturer": (27, "Manufacturer Name"),
    "Model": (28, "Model"),
    "ModelYear": (29, "Model Year"),
    "Trim": (38, "Trim"),
    "BodyClass": (5, "Body Class"),
    "VehicleType": (39, "Vehicle Type"),
    "DriveType": (15, "Drive Type"),
    "FuelTypePrimary": (24, "Fuel Type - Primary"),
    "FuelTypeSecondary": (66, "Fuel Type - Secondary"),
    "ElectrificationLevel": (126, "Electrification Level"),
    "DisplacementL": (13, "Displacement (L)"),
    "EngineCylinders": (9, "Engine Number of Cylinders"),
    "EngineHP": (71, "Engine Brake (hp) From"),
    "Doors": (14, "Doors"),
    "BasePrice": (136, "Base Price ($)"),
}
_T = TypeVar("_T")

_BY_ID = {variable_id: key for key, (variable_id, _) in _VARIABLES.items()}
_BY_NAME = {name.casefold(): key for key, (_, name) in _VARIABLES.items()}

# Fuels burnt in an engine; with "Electric" beside one of them the vehicle is a hybrid.
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


def _flatten_decode_vin(results: list[Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for item in results:
        if not isinstance(item, Mapping):
            continue
        variable_id = str(item.get("VariableId") or "").strip()
        key = _BY_ID.get(int(variable_id)) if variable_id.isdigit() else None
        if key is None:
            key = _BY_NAME.get(str(item.get("Variable") or "").strip().casefold())
        if key is not None:
            flat[key] = item.get("Value")
    return flat


def _result_row(body: Any) -> dict[str, Any]:
    if not isinstance(body, Mapping):
        raise TypeError(f"a vPIC response body is a JSON object, not {type(body).__name__}")
    results = body.get("Results")
    if not results or not isinstance(results, list) or not isinstance(results[0], Mapping):
        message = " ".join(str(body.get("Message") or "").split())
        raise ValueError("vPIC response has no Results" + (f" (message: {message})" if message else ""))
    first = results[0]
    if "Variable" in first or "VariableId" in first:
        return _flatten_decode_vin(results)
    return dict(first)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()  # vPIC pads some values, e.g. "TRUCK "
    return text or None


def _number(text: str) -> float:
    # Lenient: "3.5", "6", "375", and prices written "$35,000".
    number = float(text.replace(",", "").removeprefix("$").strip())
    if not math.isfinite(number) or number < 0:
        raise ValueError("not a finite, non-negative number")
    return number


def _integer(text: str) -> int:
    number = _number(text)  # "6.0" is fine, "6.5" is not
    if not number.is_integer():
        raise ValueError("not a whole number")
    return int(number)


class _Reader:
    """Reads fields off one flat vPIC row, collecting a warning for each that does not parse."""

    def __init__(self, row: Mapping[str, Any]) -> None:
        self.row = row
        self.warnings: list[str] = []

    def text(self, key: str) -> str | None:
        return _text(self.row.get(key))

    def parsed(self, key: str, parse: Callable[[str], _T]) -> _T | None:
        raw = self.text(key)
        if raw is None:
            return None
        try:
            return parse(raw)
        except ValueError:
            self.warnings.append(f"vPIC field {key} has unreadable value {raw!r}; treated as unknown")
            return None


def _error_codes(raw: str | None) -> list[str]:
    if raw is None:
        return []
    return [code.strip() for code in raw.split(",") if code.strip()]


def _is_combustion(fuel: str | None) -> bool:
    return fuel is not None and any(word in fuel.casefold() for word in _COMBUSTION_FUELS)


def _is_electric_fuel(fuel: str | None) -> bool:
    return fuel is not None and fuel.casefold().startswith("electric")


def classify_powertrain(
    electrification_level: str | None, fuel_primary: str | None, fuel_secondary: str | None
) -> tuple[bool, bool]:
    """(is_hybrid, is_electric), never both. The electrification level, when given, decides."""
    level = (electrification_level or "").casefold()
    if "hev" in level or "hybrid" in level:  # Strong HEV, Mild HEV, PHEV, "HEV - Level Unknown"
        return True, False
    if level.startswith("bev") or "battery electric" in level:
        return False, True
    fuels = (fuel_primary, fuel_secondary)
    if any(_is_electric_fuel(f) for f in fuels) and any(_is_combustion(f) for f in fuels):
        return True, False
    if _is_electric_fuel(fuel_primary) and not _is_combustion(fuel_secondary):
        return False, True
    return False, False


def parse_vpic_response(body: dict[str, Any], vin: str) -> VehicleFacts:
    """Facts from a DecodeVinValues(Extended) or DecodeVin body; raise ValueError if it has no Results."""
    row = _result_row(body)
    read = _Reader(row)

    error_codes = _error_codes(read.text("ErrorCode"))
    error_text = read.text("ErrorText")
    warnings: list[str] = []
    if any(code != "0" for code in error_codes):
        # vPIC still returns what it could decode; say that it is partial.
        detail = "; ".join(t for t in (error_text, read.text("AdditionalErrorText")) if t)
        warnings.append(
            f"vPIC decoded the VIN only partly (error codes {', '.join(error_codes)})"
            + (f": {detail}" if detail else "")
        )
    answered_vin = read.text("VIN")
    if answered_vin is not None and answered_vin.upper() != vin.upper():
        warnings.append(f"vPIC answered for VIN {answered_vin}, not {vin}")

    fuel_primary = read.text("FuelTypePrimary")
    fuel_secondary = read.text("FuelTypeSecondary")
    electrification = read.text("ElectrificationLevel")
    is_hybrid, is_electric = classify_powertrain(electrification, fuel_primary, fuel_secondary)

    return VehicleFacts(
        vin=vin,
        source="vpic",
        make=read.text("Make"),
        manufacturer=read.text("Manufacturer"),
        model=read.text("Model"),
        model_year=read.parsed("ModelYear", _integer),
        trim=read.text("Trim"),
        body_class=read.text("BodyClass"),
        vehicle_type=read.text("VehicleType"),
        drive_type=read.text("DriveType"),
        fuel_type_primary=fuel_primary,
        fuel_type_secondary=fuel_secondary,
        electrification_level=electrification,
        engine_displacement_l=read.parsed("DisplacementL", _number),
        engine_cylinders=read.parsed("EngineCylinders", _integer),
        engine_hp=read.parsed("EngineHP", _number),
        doors=read.parsed("Doors", _integer),
        base_price_usd=read.parsed("BasePrice", _number),
        is_hybrid=is_hybrid,
        is_electric=is_electric,
        error_codes=error_codes,
        error_text=error_text,
        warnings=warnings + read.warnings,  # last: the reads above fill read.warnings
    )


def facts_from_vin(check: VinCheck) -> VehicleFacts:
    """The offline fallback: only what the VIN itself says; everything else stays unknown."""
    return VehicleFacts(
        vin=check.vin,
        source="vin",
        make=check.manufacturer,
        manufacturer=check.manufacturer,
        model_year=check.model_year,
        warnings=[OFFLINE_WARNING],
    )
