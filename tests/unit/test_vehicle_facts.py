import copy
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from vehicle_assessment.domain.vehicle import OFFLINE_WARNING, facts_from_vin, parse_vpic_response
from vehicle_assessment.domain.vin import check_vin

VPIC_DIR = Path(__file__).resolve().parents[1] / "data" / "vpic"
VIN = "1FTMW1T88MFA00001"
DECODE_FILES = [
    "decode-vin.json",
    "decode-vin-extended.json",
    "decode-vin-with-modelyear.json",
    "decode-vin-unflattened.json",
]


def recorded(name: str) -> dict[str, Any]:
    return json.loads((VPIC_DIR / name).read_text())["body"]


def flat_with(**changes: str) -> dict[str, Any]:
    """The recorded extended body with some fields replaced."""
    body = copy.deepcopy(recorded("decode-vin-extended.json"))
    body["Results"][0].update(changes)
    return body


@pytest.mark.parametrize("name", DECODE_FILES)
def test_recorded_bodies_decode_to_the_f150(name: str) -> None:
    facts = parse_vpic_response(recorded(name), VIN)
    assert facts.vin == VIN
    assert facts.source == "vpic"
    assert facts.make == "FORD"
    assert facts.manufacturer == "FORD MOTOR COMPANY, USA"
    assert facts.model == "F-150"
    assert facts.model_year == 2021
    assert facts.trim == "SuperCrew-SSV"
    assert facts.body_class == "Pickup"
    assert facts.vehicle_type == "TRUCK"  # vPIC pads it with a space
    assert facts.drive_type == "4WD/4-Wheel Drive/4x4"
    assert facts.fuel_type_primary == "Gasoline"
    assert facts.fuel_type_secondary is None
    assert facts.electrification_level is None
    assert facts.engine_displacement_l == 3.5
    assert facts.engine_cylinders == 6
    assert facts.engine_hp == 375.0
    assert facts.doors is None
    assert facts.base_price_usd is None  # empty string (null in the DecodeVin form)
    assert not facts.is_hybrid
    assert not facts.is_electric
    assert facts.error_codes == ["0"]
    assert facts.error_text == "0 - VIN decoded clean. Check Digit (9th position) is correct"
    assert facts.warnings == []


def test_battery_electric_vehicle() -> None:
    body = flat_with(
        ElectrificationLevel="BEV (Battery Electric Vehicle)",
        FuelTypePrimary="Electric",
        DisplacementL="",
        EngineCylinders="",
    )
    facts = parse_vpic_response(body, VIN)
    assert facts.is_electric
    assert not facts.is_hybrid
    assert facts.engine_displacement_l is None
    assert facts.engine_cylinders is None
    assert facts.warnings == []


def test_electric_fuel_without_electrification_level_is_electric() -> None:
    facts = parse_vpic_response(flat_with(FuelTypePrimary="Electric", DisplacementL=""), VIN)
    assert facts.is_electric
    assert not facts.is_hybrid


def test_strong_hybrid() -> None:
    facts = parse_vpic_response(flat_with(ElectrificationLevel="Strong HEV (Hybrid Electric Vehicle)"), VIN)
    assert facts.is_hybrid
    assert not facts.is_electric


def test_plug_in_hybrid_from_fuel_types() -> None:
    facts = parse_vpic_response(flat_with(FuelTypePrimary="Electric", FuelTypeSecondary="Gasoline"), VIN)
    assert facts.is_hybrid
    assert not facts.is_electric
    assert facts.fuel_type_secondary == "Gasoline"


def test_plug_in_hybrid_from_electrification_level() -> None:
    body = flat_with(ElectrificationLevel="PHEV (Plug-in Hybrid Electric Vehicle)")
    assert parse_vpic_response(body, VIN).is_hybrid


def test_partial_decode_keeps_codes_and_warns() -> None:
    text = "1 - Check Digit (9th position) does not calculate properly; 14 - Unable to provide information"
    facts = parse_vpic_response(flat_with(ErrorCode="1,14", ErrorText=text), VIN)
    assert facts.error_codes == ["1", "14"]
    assert facts.error_text == text
    assert len(facts.warnings) == 1
    assert "partly" in facts.warnings[0]
    assert "1, 14" in facts.warnings[0]
    assert facts.model == "F-150"  # what was decoded is kept


def test_unreadable_number_becomes_none_with_warning() -> None:
    facts = parse_vpic_response(flat_with(DisplacementL="abc", EngineCylinders="6.5"), VIN)
    assert facts.engine_displacement_l is None
    assert facts.engine_cylinders is None
    assert any("DisplacementL" in w and "'abc'" in w for w in facts.warnings)
    assert any("EngineCylinders" in w for w in facts.warnings)
    assert facts.model_year == 2021


def test_lenient_numbers() -> None:
    facts = parse_vpic_response(flat_with(BasePrice="$35,500", Doors="4", EngineCylinders="8.0"), VIN)
    assert facts.base_price_usd == 35_500.0
    assert facts.doors == 4
    assert facts.engine_cylinders == 8


def test_unflattened_edit_by_variable_name() -> None:
    body = copy.deepcopy(recorded("decode-vin-unflattened.json"))
    for item in body["Results"]:
        if item["Variable"] == "Base Price ($)":
            item["Value"] = "52000"
            item["VariableId"] = None  # mapping falls back to the name
    assert parse_vpic_response(body, VIN).base_price_usd == 52_000.0


@pytest.mark.parametrize("body", [{"Count": 0, "Message": "No data", "Results": []}, {"Count": 0}])
def test_no_results_is_a_value_error(body: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="no Results"):
        parse_vpic_response(body, VIN)


def test_offline_facts_from_vin() -> None:
    facts = facts_from_vin(check_vin(VIN, date(2025, 6, 1)))
    assert facts.source == "vin"
    assert facts.model_year == 2021
    assert facts.make == "Ford"
    assert facts.manufacturer == "Ford"
    assert facts.model is None
    assert facts.base_price_usd is None
    assert facts.engine_displacement_l is None
    assert facts.warnings == [OFFLINE_WARNING]
