"""Vehicle facts: vPIC's wire format read by the adapter, the powertrain and fallback rules of the domain."""

import ast
import copy
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from vehicle_assessment.adapters.vpic import AnswerNotForThisVin, answer_covers, parse_vpic_response
from vehicle_assessment.domain import vehicle as vehicle_rules
from vehicle_assessment.domain.description import TemplateDescriber
from vehicle_assessment.domain.models import (
    DescriptionRequest,
    DescriptionStyle,
    Powertrain,
    PowertrainEvidence,
    VehicleFacts,
)
from vehicle_assessment.domain.vehicle import OFFLINE_WARNING, classify_powertrain, facts_from_vin
from vehicle_assessment.domain.vin import check_vin

VPIC_DIR = Path(__file__).resolve().parents[1] / "data" / "vpic"
VIN = "1FTMW1T88MFA00001"
TESLA_VIN = "5YJSA3DS2EF100001"
DECODE_FILES = [
    "decode-vin.json",
    "decode-vin-extended.json",
    "decode-vin-with-modelyear.json",
    "decode-vin-unflattened.json",
]


def recorded(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((VPIC_DIR / name).read_text())["body"]
    return body


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
    assert facts.powertrain == Powertrain.COMBUSTION
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
    assert facts.powertrain == Powertrain.BATTERY_ELECTRIC
    assert facts.is_electric
    assert not facts.is_hybrid
    assert facts.engine_displacement_l is None
    assert facts.engine_cylinders is None
    assert facts.warnings == []


def test_electric_fuel_without_electrification_level_is_electric() -> None:
    facts = parse_vpic_response(
        flat_with(FuelTypePrimary="Electric", DisplacementL="", EngineCylinders=""), VIN
    )
    assert facts.powertrain == Powertrain.BATTERY_ELECTRIC


def test_strong_hybrid() -> None:
    facts = parse_vpic_response(flat_with(ElectrificationLevel="Strong HEV (Hybrid Electric Vehicle)"), VIN)
    assert facts.powertrain == Powertrain.HYBRID
    assert facts.is_hybrid
    assert not facts.is_electric


def test_hybrid_from_fuel_types() -> None:
    facts = parse_vpic_response(flat_with(FuelTypePrimary="Electric", FuelTypeSecondary="Gasoline"), VIN)
    assert facts.powertrain == Powertrain.HYBRID  # no charger reported: not known to plug in
    assert facts.fuel_type_secondary == "Gasoline"


def test_plug_in_hybrid_from_electrification_level() -> None:
    body = flat_with(ElectrificationLevel="PHEV (Plug-in Hybrid Electric Vehicle)")
    assert parse_vpic_response(body, VIN).powertrain == Powertrain.PLUG_IN_HYBRID


def test_not_applicable_is_unknown() -> None:
    facts = parse_vpic_response(flat_with(FuelTypeSecondary="Not Applicable", Trim="not applicable"), VIN)
    assert facts.fuel_type_secondary is None
    assert facts.trim is None
    assert facts.warnings == []


# --- constructed rows of each powertrain (tests/data/vpic/constructed) ---------------------------


def constructed(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((VPIC_DIR / "constructed" / name).read_text())["body"]
    return body


@pytest.mark.parametrize(
    ("name", "vin", "powertrain"),
    [
        ("bev-tesla-model-s.json", TESLA_VIN, Powertrain.BATTERY_ELECTRIC),
        ("bev-without-fuel-type.json", "1G1FX6S05H4100002", Powertrain.BATTERY_ELECTRIC),
        ("phev-chevrolet-volt.json", "1G1RC6S51HU100003", Powertrain.PLUG_IN_HYBRID),
        ("hev-toyota-prius.json", "JTDKARFU6G3100004", Powertrain.HYBRID),
        ("mild-hev-ram-1500.json", "1C6SRFJT5KN100005", Powertrain.HYBRID),
        ("fcev-toyota-mirai.json", "JTDBVRBD2GA100006", Powertrain.FUEL_CELL_ELECTRIC),
        ("bmw-x3.json", "5UXWX7C56BA100007", Powertrain.COMBUSTION),
        ("empty-decode.json", "1G1ZZ9Z95LZ100008", None),
    ],
)
def test_powertrain_of_each_kind(name: str, vin: str, powertrain: Powertrain | None) -> None:
    facts = parse_vpic_response(constructed(name), vin)
    assert facts.powertrain == powertrain
    assert facts.is_electric == (powertrain is not None and powertrain.is_electric)
    assert facts.is_hybrid == (powertrain is not None and powertrain.is_hybrid)


def test_bev_without_fuel_type_is_described_as_electric() -> None:
    """The Bolt row has empty FuelTypePrimary, ElectrificationLevel and DisplacementL."""
    facts = parse_vpic_response(constructed("bev-without-fuel-type.json"), "1G1FX6S05H4100002")
    assert (facts.fuel_type_primary, facts.electrification_level, facts.engine_displacement_l) == (None,) * 3
    english, spanish = describe(facts, "en"), describe(facts, "es")
    assert "electric drive" in english and "engine" not in english
    assert "motor eléctrico" in spanish and "cilindros" not in spanish


def test_unknown_powertrain_is_not_described() -> None:
    facts = parse_vpic_response(constructed("empty-decode.json"), "1G1ZZ9Z95LZ100008")
    english, spanish = describe(facts, "en"), describe(facts, "es")
    for word in ("electric", "hybrid", "engine", "gasoline"):
        assert word not in english.casefold()
    for word in ("eléctrico", "híbrido", "motor", "gasolina"):
        assert word not in spanish.casefold()


def describe(facts: VehicleFacts, language: str) -> str:
    request = DescriptionRequest(
        vehicle=facts,
        color=None,
        mileage=None,
        damage_summary={},
        photos_assessed=1,
        photos_need_review=0,
        undamaged_value_usd=None,
        adjusted_value_usd=None,
        combined_depreciation=0.0,
        untrained_encoder=False,
    )
    return TemplateDescriber().describe(request, DescriptionStyle.STANDARD, language, 0.0).text


def test_battery_fields_read_from_the_decode_vin_form() -> None:
    body = copy.deepcopy(recorded("decode-vin-unflattened.json"))
    values = {59: "75", 72: "Dual Motor", 13: None, 24: None, 9: None}  # variable id -> value
    for item in body["Results"]:
        if item["VariableId"] in values:
            item["Value"] = values[item["VariableId"]]
    assert parse_vpic_response(body, VIN).powertrain == Powertrain.BATTERY_ELECTRIC


# --- classify_powertrain: the domain rule on plain facts -----------------------------------------

BEV, FCEV, PHEV, HEV, ICE = (
    Powertrain.BATTERY_ELECTRIC,
    Powertrain.FUEL_CELL_ELECTRIC,
    Powertrain.PLUG_IN_HYBRID,
    Powertrain.HYBRID,
    Powertrain.COMBUSTION,
)


@pytest.mark.parametrize(
    ("evidence", "expected"),
    [
        # the electrification level decides when it names a kind
        ({"electrification_level": "BEV (Battery Electric Vehicle)"}, BEV),
        ({"electrification_level": "FCEV (Fuel Cell Electric Vehicle)"}, FCEV),
        ({"electrification_level": "PHEV (Plug-in Hybrid Electric Vehicle)"}, PHEV),
        ({"electrification_level": "Strong HEV (Hybrid Electric Vehicle)"}, HEV),
        ({"electrification_level": "Mild HEV (Hybrid Electric Vehicle)"}, HEV),
        ({"electrification_level": "HEV (Hybrid Electric Vehicle) - Level Unknown"}, HEV),
        ({"electrification_level": "Mild HEV (Hybrid Electric Vehicle)", "charger_level": "Level 2"}, HEV),
        # a level this rule does not know leaves the decision to the other fields
        ({"electrification_level": "Something New", "fuel_type_primary": "Diesel"}, ICE),
        # BEV without fuel type or level: the battery, drive unit or charger says so
        ({"battery_kwh": 60.0}, BEV),
        ({"battery_type": "Lithium-Ion/Li-Ion"}, BEV),
        ({"ev_drive_unit": "Single Motor"}, BEV),
        ({"charger_level": "Level 2"}, BEV),
        ({"charger_power_kw": 7.2}, BEV),
        ({"fuel_type_primary": "Electric", "engine_displacement_l": 0.0}, BEV),
        # an electric drive beside an engine
        ({"fuel_type_primary": "Gasoline", "fuel_type_secondary": "Electric"}, HEV),
        (
            {"fuel_type_primary": "Gasoline", "fuel_type_secondary": "Electric", "charger_level": "Level 2"},
            PHEV,
        ),
        ({"battery_kwh": 18.4, "engine_displacement_l": 1.5, "charger_power_kw": 3.6}, PHEV),
        ({"battery_type": "Nickel-Metal-Hydride/NiMH", "engine_cylinders": 4}, HEV),
        ({"fuel_type_primary": "Electric", "engine_displacement_l": 0.65}, HEV),  # range extender
        # fuel cells
        ({"fuel_type_primary": "Fuel Cell"}, FCEV),
        ({"fuel_type_primary": "Compressed Hydrogen/Hydrogen", "fuel_type_secondary": "Electric"}, FCEV),
        ({"fuel_type_primary": "Compressed Hydrogen/Hydrogen"}, None),  # engine or fuel cell: unknown
        # combustion
        ({"fuel_type_primary": "Gasoline"}, ICE),
        ({"fuel_type_primary": "Flexible Fuel Vehicle (FFV)", "fuel_type_secondary": "Ethanol (E85)"}, ICE),
        ({"engine_displacement_l": 2.0}, ICE),
        ({"engine_cylinders": 6}, ICE),
        # nothing known
        ({}, None),
        ({"battery_kwh": 0.0, "engine_displacement_l": 0.0, "engine_cylinders": 0}, None),
    ],
)
def test_classify_powertrain(evidence: dict[str, Any], expected: Powertrain | None) -> None:
    assert classify_powertrain(PowertrainEvidence(**evidence)) == expected


def test_flags_follow_the_powertrain() -> None:
    facts = VehicleFacts(vin=VIN, source="vpic", powertrain=Powertrain.PLUG_IN_HYBRID)
    assert (facts.is_hybrid, facts.is_electric) == (True, False)
    with pytest.raises(ValidationError, match="contradict"):
        VehicleFacts(vin=VIN, source="vpic", powertrain=Powertrain.COMBUSTION, is_electric=True)
    with pytest.raises(ValidationError, match="not both"):
        VehicleFacts(vin=VIN, source="vpic", is_hybrid=True, is_electric=True)


# --- which vehicle an answer is for ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("answered", "covers"),
    [
        (TESLA_VIN, True),
        (TESLA_VIN.lower(), True),
        ("5YJSA3DS*EF", True),  # vPIC's batch example: masked check digit, first 11 characters
        ("5YJSA3DS*EF******", True),
        ("5YJ", True),  # a partial VIN names only the manufacturer; its facts are that coarse
        ("5UXWX7C5*BA", False),  # the BMW X3 of the same batch
        ("5YJSA3DS*EG", False),  # another model year
        ("5YJSA3DS2EF100002", False),  # one character off
        ("5YJSA3DS2EF1000011", False),  # longer than the VIN
        ("***SA3DS2EF100001", False),  # the manufacturer must be stated
        ("5Y", False),
        ("", False),
    ],
)
def test_answer_covers(answered: str, covers: bool) -> None:
    assert answer_covers(answered, TESLA_VIN) is covers


def test_batch_picks_the_row_of_the_requested_vin() -> None:
    batch = constructed("batch-bmw-then-tesla.json")
    tesla = parse_vpic_response(batch, TESLA_VIN)
    assert (tesla.make, tesla.model, tesla.model_year, tesla.powertrain) == (
        "TESLA",
        "Model S",
        2014,
        Powertrain.BATTERY_ELECTRIC,
    )
    assert tesla.warnings[0] == (
        f"vPIC decoded the VIN pattern 5YJSA3DS*EF, which covers {TESLA_VIN}, not the full VIN"
    )
    assert "partly (error codes 6)" in tesla.warnings[1]
    bmw = parse_vpic_response(batch, "5UXWX7C56BA100007")
    assert (bmw.make, bmw.model, bmw.powertrain) == ("BMW", "X3", Powertrain.COMBUSTION)


def test_the_most_specific_covering_row_wins() -> None:
    batch = copy.deepcopy(constructed("batch-bmw-then-tesla.json"))
    exact = {**batch["Results"][1], "VIN": TESLA_VIN, "Trim": "P85", "ErrorCode": "0"}
    batch["Results"].append(exact)
    facts = parse_vpic_response(batch, TESLA_VIN)
    assert facts.trim == "P85"
    assert facts.error_codes == ["0"]


def test_an_answer_for_another_vin_is_refused() -> None:
    with pytest.raises(
        AnswerNotForThisVin, match=f"another vehicle \\(VIN 5UXWX7C56BA100007\\), not {TESLA_VIN}"
    ):
        parse_vpic_response(constructed("bmw-x3.json"), TESLA_VIN)
    with pytest.raises(AnswerNotForThisVin, match="5UXWX7C5\\*BA, 5YJSA3DS\\*EF"):
        parse_vpic_response(constructed("batch-bmw-then-tesla.json"), VIN)


def test_an_answer_naming_no_vin_is_refused() -> None:
    body = flat_with(VIN="")
    body["SearchCriteria"] = ""
    with pytest.raises(AnswerNotForThisVin, match="names no VIN"):
        parse_vpic_response(body, VIN)


def test_the_envelope_names_the_vin_of_a_row_without_one() -> None:
    body = flat_with(VIN="")  # SearchCriteria "VIN(s): 1FTMW1T88MFA00001" still names it
    assert parse_vpic_response(body, VIN).model == "F-150"
    body["SearchCriteria"] = "VIN(s): 5UXWX7C56BA100007"
    with pytest.raises(AnswerNotForThisVin):
        parse_vpic_response(body, VIN)


# --- parsing details -------------------------------------------------------------------------------


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
    facts = parse_vpic_response(flat_with(DisplacementL="abc", EngineCylinders="6.5", BatteryKWh="lots"), VIN)
    assert facts.engine_displacement_l is None
    assert facts.engine_cylinders is None
    assert any("DisplacementL" in w and "'abc'" in w for w in facts.warnings)
    assert any("EngineCylinders" in w for w in facts.warnings)
    assert any("BatteryKWh" in w for w in facts.warnings)
    assert facts.model_year == 2021
    assert facts.powertrain == Powertrain.COMBUSTION  # the fuel type still says so


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


# --- the fallback: the VIN alone -------------------------------------------------------------------


def test_offline_facts_from_vin() -> None:
    facts = facts_from_vin(check_vin(VIN, date(2025, 6, 1)))
    assert facts.source == "vin"
    assert facts.model_year == 2021
    assert facts.make == "Ford"
    assert facts.manufacturer == "Ford"
    assert facts.model is None
    assert facts.base_price_usd is None
    assert facts.engine_displacement_l is None
    assert facts.powertrain is None
    assert facts.warnings == [OFFLINE_WARNING]


def test_vehicle_rules_import_only_the_domain() -> None:
    """vPIC's wire format stays in the adapter; the domain rules see plain facts."""
    tree = ast.parse(Path(vehicle_rules.__file__).read_text())
    imported = {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)} | {
        alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    assert {name for name in imported if not name.startswith("vehicle_assessment.domain")} <= {"__future__"}
