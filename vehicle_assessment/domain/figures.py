"""How every figure is shown to a person: one rounding rule, so a figure never reads two ways.

The rule: round half up (14.5 -> 15, never to even), on the decimal value as written (0.145 is
14.5 %, not 14.499999...%). Dollars are shown whole, percentages to one decimal with a trailing
".0" dropped (14.5 %, 10 %), ratios to two places. A comparison ("0.695 is below the 0.70
threshold") shows as many places as it takes for the statement to be true as printed.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

_MAX_PLACES = 9


def _decimal(value: float) -> Decimal:
    # repr gives the shortest text that reads back as the same float: 0.145, not 0.14499999...
    return Decimal(repr(float(value)))


def _half_up(value: Decimal, places: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def _grouped(value: Decimal, language: str) -> str:
    text = f"{value:,}"
    if language == "es":  # Spanish swaps the separators: 32.918,5
        text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
    return text


def usd(amount: float, language: str = "en") -> str:
    """Whole US dollars: "$32,918" / "32.918 USD"."""
    whole = _grouped(_half_up(_decimal(amount), 0), language)
    if language == "es":
        return f"{whole} USD"
    return f"-${whole[1:]}" if whole.startswith("-") else f"${whole}"


def percent(fraction: float, language: str = "en") -> str:
    """A fraction as a percentage to one decimal, ".0" dropped: 0.145 -> "14.5%" / "14,5 %"."""
    value = _half_up(_decimal(fraction) * 100, 1)
    if value == value.to_integral_value():
        value = value.quantize(Decimal(1))
    text = _grouped(value, language)
    return f"{text} %" if language == "es" else f"{text}%"


def number(value: float, places: int = 1) -> str:
    """A measurement to `places` decimals, half up: 39.95 -> "40.0"."""
    return str(_half_up(_decimal(value), places))


def ratio(value: float, places: int = 2) -> str:
    """A share or score in 0..1 to two places, half up: 0.695 -> "0.70"."""
    return number(value, places)


def _places_needed(value: Decimal, minimum: int) -> int:
    for places in range(minimum, _MAX_PLACES + 1):
        if _half_up(value, places) == value:
            return places
    return _MAX_PLACES


def compared(value: float, limit: float, places: int = 2) -> tuple[str, str]:
    """`value` and `limit` printed so that their order as printed is their true order.

    Starts at `places` and adds decimals while rounding would make the two look equal (or the
    wrong way round): 0.695 against 0.7 gives ("0.695", "0.70"). The limit is shown exactly at
    the fewest places (at least `places`) that hold it.
    """
    exact_value, exact_limit = _decimal(value), _decimal(limit)
    limit_places = _places_needed(exact_limit, places)
    if exact_value == exact_limit:
        return str(_half_up(exact_value, limit_places)), str(_half_up(exact_limit, limit_places))
    for shown in range(places, _MAX_PLACES + 1):
        rounded = _half_up(exact_value, shown)
        if (rounded > exact_limit) == (exact_value > exact_limit) and rounded != exact_limit:
            return str(rounded), str(_half_up(exact_limit, limit_places))
    return repr(float(value)), str(_half_up(exact_limit, limit_places))
