"""What the VIN alone tells (ISO 3779 / 49 CFR 565): validity, region, model year, maker.

Pure functions, no I/O: the pipeline checks the VIN before anything else, and falls back to
this decode when vPIC cannot be reached.
"""

from __future__ import annotations

import datetime

from vehicle_assessment.domain.models import VinCheck

VIN_LENGTH = 17
_ALLOWED = frozenset("ABCDEFGHJKLMNPRSTUVWXYZ0123456789")
# I, O and Q are never used: they read too easily as 1, 0 and 0.
_NEVER_USED = frozenset("IOQ")

# 49 CFR 565.15: letters transliterate to digits; position 9 carries no weight.
_TRANSLITERATION: dict[str, int] = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)

# Position 10: one code per year in a 30-year cycle starting 1980 (I, O, Q, U, Z and 0 unused).
_YEAR_CODES = "ABCDEFGHJKLMNPRSTVWXY123456789"
_CYCLE = len(_YEAR_CODES)  # 30
_FIRST_CYCLE_START = 1980

# World manufacturer identifiers of common makes. Three characters; a two-character entry is a
# fallback used where a maker conventionally owns the whole prefix (e.g. Toyota's JT*).
_WMI: dict[str, str] = {
    # North America
    "1FA": "Ford",
    "1FD": "Ford",
    "1FM": "Ford",
    "1FT": "Ford",
    "3FA": "Ford",
    "1G1": "Chevrolet",
    "1GC": "Chevrolet",
    "1GN": "Chevrolet",
    "1G6": "Cadillac",
    "1GT": "GMC",
    "1G": "General Motors",
    "1C6": "Ram",
    "1J4": "Jeep",
    "1HG": "Honda",
    "2HG": "Honda",
    "5FN": "Honda",
    "1N4": "Nissan",
    "1N6": "Nissan",
    "3N1": "Nissan",
    "5N1": "Nissan",
    "2T1": "Toyota",
    "4T1": "Toyota",
    "5TD": "Toyota",
    "1VW": "Volkswagen",
    "3VW": "Volkswagen",
    "4S3": "Subaru",
    "4S4": "Subaru",
    "5NP": "Hyundai",
    "5YJ": "Tesla",
    "7SA": "Tesla",
    "5UX": "BMW",
    # Asia
    "JHM": "Honda",
    "JM1": "Mazda",
    "JN1": "Nissan",
    "JN8": "Nissan",
    "JF1": "Subaru",
    "JF2": "Subaru",
    "JTH": "Lexus",
    "JTJ": "Lexus",
    "JT": "Toyota",
    "KM8": "Hyundai",
    "KMH": "Hyundai",
    "KNA": "Kia",
    "KND": "Kia",
    "LRW": "Tesla",
    "MA3": "Suzuki",
    "MAL": "Hyundai",
    # Europe
    "SAJ": "Jaguar",
    "SAL": "Land Rover",
    "VF1": "Renault",
    "VF3": "Peugeot",
    "VF7": "Citroën",
    "WAU": "Audi",
    "WA1": "Audi",
    "WBA": "BMW",
    "WBS": "BMW",
    "WBX": "BMW",
    "WDB": "Mercedes-Benz",
    "WDC": "Mercedes-Benz",
    "WDD": "Mercedes-Benz",
    "W1K": "Mercedes-Benz",
    "WP0": "Porsche",
    "WP1": "Porsche",
    "WVW": "Volkswagen",
    "WV1": "Volkswagen",
    "WV2": "Volkswagen",
    "YV1": "Volvo",
    "YS3": "Saab",
    "ZAR": "Alfa Romeo",
    "ZFA": "Fiat",
    "ZFF": "Ferrari",
    "ZHW": "Lamborghini",
}


class InvalidVin(ValueError):
    """The VIN cannot be a real one; the message says why, on one line."""

    def __init__(self, vin: str, reason: str) -> None:
        self.vin = vin
        self.reason = reason
        shown = vin if len(vin) <= 40 else vin[:37] + "..."
        super().__init__(f"invalid VIN {shown!r}: {reason}")


def normalise_vin(raw: str) -> str:
    """Strip surrounding whitespace and upper-case; anything inside is left for check_vin to judge."""
    return raw.strip().upper()


def _positions(vin: str, bad: frozenset[str] | None = None) -> list[int]:
    if bad is not None:
        return [i + 1 for i, c in enumerate(vin) if c in bad]
    return [i + 1 for i, c in enumerate(vin) if c not in _ALLOWED and c not in _NEVER_USED]


def _join(numbers: list[int]) -> str:
    return ", ".join(str(n) for n in numbers)


def check_digit(vin: str) -> str:
    """The check digit a 17-character VIN of allowed characters should carry at position 9."""
    total = sum(_TRANSLITERATION[c] * w for c, w in zip(vin, _WEIGHTS, strict=True))
    remainder = total % 11
    return "X" if remainder == 10 else str(remainder)


def region_of(vin: str) -> str:
    first = vin[0]
    if first in "12345":
        return "North America"
    if first in "67":
        return "Oceania"
    if first in "890":
        return "South America"
    if "A" <= first <= "H":
        return "Africa"
    if "J" <= first <= "R":
        return "Asia"
    return "Europe"  # S-Z


def manufacturer_of(vin: str) -> str | None:
    return _WMI.get(vin[:3]) or _WMI.get(vin[:2])


def _model_year(vin: str, north_american: bool, today: datetime.date) -> tuple[int | None, list[str]]:
    code = vin[9]
    index = _YEAR_CODES.find(code)
    if index < 0:
        return None, [f"position 10 is {code!r}, which is no model-year code; model year unknown"]
    latest_allowed = today.year + 1  # next year's models go on sale during this year
    if north_american:
        # 49 CFR 565.15: for cars, MPVs and light trucks a letter at position 7 marks the 2010-2039
        # cycle, a digit the 1980-2009 one.
        cycle_start = _FIRST_CYCLE_START + (_CYCLE if vin[6].isalpha() else 0)
        year = cycle_start + index
        if year <= latest_allowed:
            return year, []
        # Heavier vehicles need not follow the position-7 rule; a year in the future cannot be right.
        earlier = year - _CYCLE
        return earlier, [
            f"position 7 implies model year {year}, which is in the future; took {earlier} instead"
        ]
    # Outside North America position 7 carries no year information: take the latest cycle
    # that is not in the future.
    year = _FIRST_CYCLE_START + index
    while year + _CYCLE <= latest_allowed:
        year += _CYCLE
    return year, []


def check_vin(raw: str, today: datetime.date) -> VinCheck:
    """Validate a VIN and read what it tells by itself; raise InvalidVin when it cannot be real."""
    vin = normalise_vin(raw)
    if len(vin) != VIN_LENGTH:
        raise InvalidVin(vin, f"a VIN has {VIN_LENGTH} characters, this one has {len(vin)}")
    never_used = _positions(vin, _NEVER_USED)
    if never_used:
        raise InvalidVin(vin, f"I, O and Q are never used in a VIN, found at position(s) {_join(never_used)}")
    other = _positions(vin)
    if other:
        raise InvalidVin(
            vin, f"only letters A-Z and digits 0-9 are allowed, not at position(s) {_join(other)}"
        )

    region = region_of(vin)
    north_american = region == "North America"
    warnings: list[str] = []

    expected = check_digit(vin)
    valid = vin[8] == expected
    if not valid:
        message = f"check digit is {vin[8]}, expected {expected}"
        if north_american:
            # Mandatory in North America since 1981: a mismatch is a typo or a forged VIN.
            raise InvalidVin(vin, message)
        # Elsewhere many makers leave position 9 unused (often 'Z'); it proves nothing.
        warnings.append(f"{message} (not mandatory outside North America)")

    model_year, year_warnings = _model_year(vin, north_american, today)
    warnings.extend(year_warnings)

    return VinCheck(
        vin=vin,
        wmi=vin[:3],
        region=region,
        north_american=north_american,
        check_digit_expected=expected,
        check_digit_valid=valid,
        model_year=model_year,
        manufacturer=manufacturer_of(vin),
        warnings=warnings,
    )
