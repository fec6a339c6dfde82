"""The undamaged value of the vehicle: the owner's estimate, else a depreciation curve.

Pure function, no I/O. When neither an estimate nor a base price with a model year is known
the amount stays None with the reason: a made-up number would look as real as a computed one.
"""

from __future__ import annotations

import math
from datetime import date

from vehicle_assessment.domain import figures
from vehicle_assessment.domain.models import UndamagedValue, ValueMethod, VehicleFacts
from vehicle_assessment.domain.rules import ValueCurveSettings


def _usd(amount: float) -> str:
    return figures.usd(amount)


def _pct(share: float) -> str:
    return figures.percent(share)


def _unknown(facts: VehicleFacts | None, today: date) -> UndamagedValue:
    if facts is None:
        missing = "no vehicle facts were decoded"
    else:
        lacks = []
        if facts.base_price_usd is None or facts.base_price_usd <= 0:
            lacks.append(
                "vPIC has no base price for this vehicle"
                if facts.source == "vpic"
                else f"no base price is known (vehicle facts from source {facts.source!r})"
            )
        if facts.model_year is None:
            lacks.append("the model year is unknown")
        elif facts.model_year > today.year + 1:
            lacks.append(f"model year {facts.model_year} is more than a year after {today.year}")
        missing = " and ".join(lacks)
    return UndamagedValue(
        amount_usd=None,
        method=ValueMethod.UNKNOWN,
        reason=f"undamaged value unknown: no owner estimate was given and {missing}",
    )


def estimate_undamaged_value(
    facts: VehicleFacts | None,
    mileage: int | None,
    estimate_usd: float | None,
    today: date,
    curve: ValueCurveSettings,
) -> UndamagedValue:
    """The owner's estimate if given; else base price depreciated by age and mileage; else unknown."""
    if mileage is not None and mileage < 0:
        raise ValueError(f"mileage must not be negative, got {mileage}")
    if estimate_usd is not None and not (math.isfinite(estimate_usd) and estimate_usd > 0):
        raise ValueError(f"the owner's estimate must be a positive amount, got {estimate_usd}")

    if estimate_usd is not None:
        # The owner (or adjuster) knows this car; a curve only knows the model.
        return UndamagedValue(
            amount_usd=float(estimate_usd),
            method=ValueMethod.USER_ESTIMATE,
            reason=f"owner's estimate of {_usd(estimate_usd)}",
        )

    base = facts.base_price_usd if facts is not None else None
    year = facts.model_year if facts is not None else None
    if base is None or base <= 0 or year is None or year > today.year + 1:
        return _unknown(facts, today)

    # A model year one ahead of today is sold new this year: age 0.
    age = max(0, today.year - year)
    if age == 0:
        value = base
        steps = [f"base price {_usd(base)} for model year {year}, age 0: no depreciation"]
    else:
        value = base * (1 - curve.first_year_loss) * (1 - curve.later_yearly_loss) ** (age - 1)
        steps = [
            f"base price {_usd(base)} for model year {year}, age {age} year(s): "
            f"{_pct(curve.first_year_loss)} first-year loss"
            + (f", then {_pct(curve.later_yearly_loss)} a year for {age - 1} more" if age > 1 else "")
            + f" gives {_usd(value)}"
        ]
    floor = curve.floor_share * base
    if value < floor:
        value = floor
        steps.append(f"raised to the floor of {_pct(curve.floor_share)} of base, {_usd(floor)}")

    if mileage is not None:
        # Usage beyond (or below) the typical miles for the age moves the value proportionally.
        expected = curve.miles_per_year * max(age, 1)
        raw = -(mileage - expected) / 1000 * curve.per_1000_miles_adjustment
        adjustment = max(-curve.max_mileage_adjustment, min(curve.max_mileage_adjustment, raw))
        value *= 1 + adjustment
        clamped = f" (capped at ±{_pct(curve.max_mileage_adjustment)})" if adjustment != raw else ""
        steps.append(
            f"{mileage:,} miles against {expected:,} expected: "
            f"{'+' if adjustment >= 0 else ''}{_pct(adjustment)}{clamped} gives {_usd(value)}"
        )
        if value < floor:
            # The floor holds whatever the mileage.
            value = floor
            steps.append(f"raised to the floor of {_pct(curve.floor_share)} of base, {_usd(floor)}")
    else:
        steps.append("mileage not given, no mileage adjustment")

    return UndamagedValue(
        amount_usd=float(round(value)),
        method=ValueMethod.DEPRECIATION_CURVE,
        reason="depreciation curve: " + "; ".join(steps),
    )
