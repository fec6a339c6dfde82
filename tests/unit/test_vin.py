from datetime import date

import pytest

from vehicle_assessment.domain.vin import InvalidVin, check_digit, check_vin, normalise_vin

TODAY = date(2025, 6, 1)
F150 = "1FTMW1T88MFA00001"  # the recorded vPIC VIN: a 2021 Ford F-150


def test_valid_north_american_vin() -> None:
    check = check_vin(F150, TODAY)
    assert check.vin == F150
    assert check.wmi == "1FT"
    assert check.region == "North America"
    assert check.north_american
    assert check.check_digit_expected == "8"
    assert check.check_digit_valid
    assert check.model_year == 2021
    assert check.manufacturer == "Ford"
    assert check.warnings == []


def test_lower_case_and_surrounding_spaces_are_normalised() -> None:
    assert normalise_vin("  1ftmw1t88mfa00001 \n") == F150
    assert check_vin("  1ftmw1t88mfa00001 \n", TODAY).vin == F150


def test_internal_whitespace_is_an_error() -> None:
    with pytest.raises(InvalidVin, match=r"position\(s\) 10"):
        check_vin("1FTMW1T88 FA00001", TODAY)


@pytest.mark.parametrize(
    ("vin", "positions"),
    [("IFTMW1T88MFA00001", "1"), ("1FTMW1T88MFAO0001", "13"), ("1FTQW1T88MFAO0001", "4, 13")],
)
def test_i_o_q_rejected_with_positions(vin: str, positions: str) -> None:
    with pytest.raises(InvalidVin, match=rf"I, O and Q .* position\(s\) {positions}$"):
        check_vin(vin, TODAY)


@pytest.mark.parametrize("vin", ["1FTMW1T88MFA0001", "1FTMW1T88MFA000012", ""])
def test_wrong_length_names_the_length(vin: str) -> None:
    with pytest.raises(InvalidVin, match=f"this one has {len(vin)}$"):
        check_vin(vin, TODAY)


def test_invalid_vin_is_a_value_error_with_one_line() -> None:
    with pytest.raises(ValueError, match="17 characters") as info:
        check_vin("1FTMW1T88MFA0001", TODAY)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("invalid VIN '1FTMW1T88MFA0001'")


def test_bad_check_digit_on_north_american_vin_is_rejected() -> None:
    with pytest.raises(InvalidVin, match="check digit is 9, expected 8"):
        check_vin("1FTMW1T89MFA00001", TODAY)


def test_bad_check_digit_on_european_vin_only_warns() -> None:
    # European makers often leave position 9 unused ('Z' here).
    check = check_vin("WVWZZZ1JZXW000001", TODAY)
    assert not check.check_digit_valid
    assert check.check_digit_expected == "0"
    assert check.region == "Europe"
    assert not check.north_american
    assert check.manufacturer == "Volkswagen"
    assert any("check digit is Z, expected 0" in w for w in check.warnings)
    assert check.model_year == 1999  # 'X' is 1999 or 2029; 2029 is in the future


def test_check_digit_x() -> None:
    # Remainder 10 is written 'X'.
    assert check_digit("1M8GDM9AXKP042788") == "X"


def test_model_year_numeric_position_7_is_1980s_cycle() -> None:
    check = check_vin("1HGCD5632SA000001", TODAY)
    assert check.model_year == 1995
    assert check.manufacturer == "Honda"


def test_model_year_letter_position_7_is_2010s_cycle() -> None:
    check = check_vin("5YJSA1E20FF000001", TODAY)
    assert check.model_year == 2015
    assert check.manufacturer == "Tesla"


def test_north_american_year_in_future_falls_back_with_warning() -> None:
    # Letter at position 7 with 'Y' would be 2030: impossible in 2025, so the earlier cycle.
    check = check_vin("1FTMW1T80YFA00001", TODAY)
    assert check.model_year == 2000
    assert any("2030" in w for w in check.warnings)


@pytest.mark.parametrize(
    ("vin", "today", "year"),
    [
        ("WVWZZZ1J7RW000001", TODAY, 2024),  # 'R': 1994 or 2024
        ("WBA3A5C50VF000001", TODAY, 1997),  # 'V': 2027 is too far ahead
        ("JTDBR32E4T0000001", TODAY, 2026),  # 'T': next year's model is allowed
        ("JTDBR32E4T0000001", date(2024, 6, 1), 1996),
    ],
)
def test_model_year_outside_north_america_takes_latest_cycle(vin: str, today: date, year: int) -> None:
    assert check_vin(vin, today).model_year == year


def test_region_and_two_character_wmi_fallback() -> None:
    check = check_vin("JTDBR32E4T0000001", TODAY)
    assert check.region == "Asia"
    assert check.manufacturer == "Toyota"  # JTD is not listed; JT* is Toyota


def test_unknown_wmi_gives_no_manufacturer() -> None:
    check = check_vin("XTAAB1234RA000001", TODAY)
    assert check.manufacturer is None
    assert check.region == "Europe"
    assert check.check_digit_valid


@pytest.mark.parametrize(("vin", "code"), [("1FTMW1T88UFA00001", "U"), ("1FTMW1T850FA00001", "0")])
def test_position_10_invalid_code_gives_no_model_year(vin: str, code: str) -> None:
    check = check_vin(vin, TODAY)
    assert check.model_year is None
    assert any(f"position 10 is '{code}'" in w for w in check.warnings)
