"""VinDecoder backed by the public NHTSA vPIC API, with retries and a small SQLite cache.

This module is the anti-corruption layer between vPIC and the domain: vPIC's wire format (the
`Results` envelope, flat DecodeVinValues(Extended) and DecodeVINValuesBatch rows, the DecodeVin
Variable/Value list, "" and "Not Applicable" for unknown, "$35,000" numbers) is read here, and the
domain gets plain facts (`VehicleFacts`, `PowertrainEvidence`) and applies its rules to them.

An answer is only used for the VIN it was given for: the row whose VIN matches the requested one
(see `answer_covers`) is read, and an answer without such a row is refused, so that the pipeline
falls back to what the VIN itself tells.

A VIN's decode does not change, so a successful answer is kept forever, keyed by the request
URL; a cache hit makes no request. Every failure becomes VinDecoderUnavailable so that the
pipeline falls back to the offline VIN decode. Plain HTTPS, so local mode and the decode-VIN
Lambda share it (the Lambda keeps its cache in /tmp for the container's life).
"""

from __future__ import annotations

import json
import logging
import math
import re
import sqlite3
from collections.abc import Callable, Mapping
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

from vehicle_assessment.domain.models import PowertrainEvidence, VehicleFacts
from vehicle_assessment.domain.text import one_line
from vehicle_assessment.domain.vehicle import classify_powertrain
from vehicle_assessment.ports import VinDecoderUnavailable
from vehicle_assessment.settings import VpicSettings

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS vpic_cache (
    url TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    fetched_at TEXT NOT NULL
)
"""


# --- vPIC's wire format ------------------------------------------------------------------------


class AnswerNotForThisVin(ValueError):
    """The vPIC answer has no row for the requested VIN (it describes another vehicle)."""


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
    "BatteryKWh": (59, "Battery Energy (kWh) From"),
    "BatteryType": (2, "Battery Type"),
    "EVDriveUnit": (72, "EV Drive Unit"),
    "ChargerLevel": (127, "Charger Level"),
    "ChargerPowerKW": (128, "Charger Power (kW)"),
    "DisplacementL": (13, "Displacement (L)"),
    "EngineCylinders": (9, "Engine Number of Cylinders"),
    "EngineHP": (71, "Engine Brake (hp) From"),
    "Doors": (14, "Doors"),
    "BasePrice": (136, "Base Price ($)"),
}
_T = TypeVar("_T")

_BY_ID = {variable_id: key for key, (variable_id, _) in _VARIABLES.items()}
_BY_NAME = {name.casefold(): key for key, (_, name) in _VARIABLES.items()}

# The envelope's SearchCriteria: "VIN:1FT..." (DecodeVin) or "VIN(s): 1FT..." (DecodeVinValues).
_CRITERIA_VIN = re.compile(r"^\s*VIN(?:\(s\))?\s*:\s*([A-Za-z0-9*]+)\s*$")
# vPIC writes these where a field has no value.
_NO_VALUE = frozenset({"", "not applicable"})
# A VIN pattern must name at least the manufacturer (the WMI, positions 1-3) to say which vehicle.
_WMI_LENGTH = 3


def answer_covers(answered_vin: str, requested_vin: str) -> bool:
    """Whether a row vPIC answered for `answered_vin` describes `requested_vin`.

    vPIC echoes the VIN as it was asked: a full VIN; a VIN masked with "*" at unknown positions
    (batch and partial decodes, e.g. "5YJSA3DS*EF"); or a partial VIN, its first characters only
    ("VINs that are less than 17 characters ... decoded partially with the available characters").
    So: each stated character must equal the requested VIN's at that position, "*" matches any,
    a shorter answer is a prefix, and the first three (the manufacturer) must be stated.
    """
    answered, requested = answered_vin.strip().upper(), requested_vin.strip().upper()
    if len(answered) < _WMI_LENGTH or len(answered) > len(requested) or "*" in answered[:_WMI_LENGTH]:
        return False
    return all(a in ("*", r) for a, r in zip(answered, requested, strict=False))


def _stated_characters(answered_vin: str) -> int:
    return sum(c != "*" for c in answered_vin.strip())


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()  # vPIC pads some values, e.g. "TRUCK "
    return None if text.casefold() in _NO_VALUE else text


def _flatten_decode_vin(results: list[Mapping[str, Any]]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for item in results:
        variable_id = str(item.get("VariableId") or "").strip()
        key = _BY_ID.get(int(variable_id)) if variable_id.isdigit() else None
        if key is None:
            key = _BY_NAME.get(str(item.get("Variable") or "").strip().casefold())
        if key is not None:
            flat[key] = item.get("Value")
    return flat


def _result_rows(body: Any) -> list[tuple[str | None, dict[str, Any]]]:
    """Each decoded row of a vPIC body with the VIN it answers for (None where it names none)."""
    if not isinstance(body, Mapping):
        raise TypeError(f"a vPIC response body is a JSON object, not {type(body).__name__}")
    results = body.get("Results")
    if not results or not isinstance(results, list) or not all(isinstance(r, Mapping) for r in results):
        message = " ".join(str(body.get("Message") or "").split())
        raise ValueError("vPIC response has no Results" + (f" (message: {message})" if message else ""))
    criteria = _CRITERIA_VIN.match(str(body.get("SearchCriteria") or ""))
    criteria_vin = criteria.group(1) if criteria else None
    if "Variable" in results[0] or "VariableId" in results[0]:
        return [(criteria_vin, _flatten_decode_vin(results))]  # DecodeVin: one vehicle, many rows
    rows = [(_text(row.get("VIN")), dict(row)) for row in results]
    if len(rows) == 1 and rows[0][0] is None:
        rows = [(criteria_vin, rows[0][1])]
    return rows


def _row_for(body: Any, vin: str) -> tuple[str, dict[str, Any]]:
    """The row answering for `vin`: the most specific one when several patterns cover it."""
    rows = _result_rows(body)
    covering = [(answered, row) for answered, row in rows if answered and answer_covers(answered, vin)]
    if covering:
        return max(covering, key=lambda item: _stated_characters(item[0]))  # first of equals
    answered_vins = [answered for answered, _ in rows if answered]
    if not answered_vins:
        raise AnswerNotForThisVin(f"vPIC's answer names no VIN, so it cannot be tied to {vin}")
    shown = ", ".join(answered_vins[:3]) + (
        f" and {len(answered_vins) - 3} more" if len(answered_vins) > 3 else ""
    )
    raise AnswerNotForThisVin(f"vPIC answered for another vehicle (VIN {shown}), not {vin}")


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


def parse_vpic_response(body: Any, vin: str) -> VehicleFacts:
    """Facts for `vin` from a DecodeVinValues(Extended), DecodeVINValuesBatch or DecodeVin body.

    Raise AnswerNotForThisVin when no row answers for `vin`, ValueError when there are no Results,
    TypeError when the body is not a JSON object.
    """
    answered_vin, row = _row_for(body, vin)
    read = _Reader(row)

    error_codes = _error_codes(read.text("ErrorCode"))
    error_text = read.text("ErrorText")
    warnings: list[str] = []
    if answered_vin.upper() != vin.upper():
        warnings.append(f"vPIC decoded the VIN pattern {answered_vin}, which covers {vin}, not the full VIN")
    if any(code != "0" for code in error_codes):
        # vPIC still returns what it could decode; say that it is partial.
        detail = "; ".join(t for t in (error_text, read.text("AdditionalErrorText")) if t)
        warnings.append(
            f"vPIC decoded the VIN only partly (error codes {', '.join(error_codes)})"
            + (f": {detail}" if detail else "")
        )

    evidence = PowertrainEvidence(
        fuel_type_primary=read.text("FuelTypePrimary"),
        fuel_type_secondary=read.text("FuelTypeSecondary"),
        electrification_level=read.text("ElectrificationLevel"),
        battery_kwh=read.parsed("BatteryKWh", _number),
        battery_type=read.text("BatteryType"),
        ev_drive_unit=read.text("EVDriveUnit"),
        charger_level=read.text("ChargerLevel"),
        charger_power_kw=read.parsed("ChargerPowerKW", _number),
        engine_displacement_l=read.parsed("DisplacementL", _number),
        engine_cylinders=read.parsed("EngineCylinders", _integer),
    )
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
        fuel_type_primary=evidence.fuel_type_primary,
        fuel_type_secondary=evidence.fuel_type_secondary,
        electrification_level=evidence.electrification_level,
        engine_displacement_l=evidence.engine_displacement_l,
        engine_cylinders=evidence.engine_cylinders,
        engine_hp=read.parsed("EngineHP", _number),
        doors=read.parsed("Doors", _integer),
        base_price_usd=read.parsed("BasePrice", _number),
        powertrain=classify_powertrain(evidence),
        error_codes=error_codes,
        error_text=error_text,
        warnings=warnings + read.warnings,  # last: the reads above fill read.warnings
    )


class VpicVinDecoder:
    """Implements the VinDecoder port."""

    def __init__(self, settings: VpicSettings, cache_path: Path) -> None:
        self._settings = settings
        self._cache_path = Path(cache_path)
        self._cache_enabled = True
        self._timeout = (settings.connect_timeout_s, settings.read_timeout_s)
        self._session = requests.Session()
        retry = Retry(
            total=settings.retries,
            backoff_factor=settings.backoff_factor,
            status_forcelist=(429, 500, 502, 503, 504),
            allowed_methods=frozenset({"GET"}),
            # Hand back the last error response instead of raising, so the reason names the status.
            raise_on_status=False,
            # A long Retry-After would stall the assessment; the VIN fallback is better than waiting.
            respect_retry_after_header=False,
        )
        adapter = HTTPAdapter(max_retries=retry)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        if settings.enabled:
            self._cache_path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._create_cache()
            except sqlite3.DatabaseError as exc:
                self._rebuild_cache(exc)

    def _create_cache(self) -> None:
        with closing(self._connect()) as db, db:
            db.execute(_SCHEMA)
            # A file of another shape (or random bytes) fails here, not halfway through a decode.
            db.execute("SELECT url, body, fetched_at FROM vpic_cache LIMIT 1").fetchall()

    def _rebuild_cache(self, error: sqlite3.DatabaseError) -> None:
        """The cache only saves requests: a damaged one is replaced by an empty one, with a warning."""
        logger.warning(
            "vPIC cache %s is unusable (%s); replacing it with an empty cache", self._cache_path, error
        )
        try:
            self._cache_path.unlink(missing_ok=True)
            self._create_cache()
        except (OSError, sqlite3.DatabaseError) as exc:  # e.g. the path is a directory, or read-only
            logger.warning(
                "vPIC cache %s cannot be recreated (%s); decoding without a cache", self._cache_path, exc
            )
            self._cache_enabled = False

    def close(self) -> None:
        self._session.close()

    def url_for(self, vin: str, model_year: int | None) -> str:
        base = self._settings.base_url.rstrip("/")
        url = f"{base}/DecodeVinValuesExtended/{quote(vin, safe='')}?format=json"
        if model_year is not None:
            url += f"&modelyear={int(model_year)}"
        return url

    def decode(self, vin: str, model_year: int | None) -> VehicleFacts:
        if not self._settings.enabled:
            raise VinDecoderUnavailable("vPIC lookups are disabled")
        url = self.url_for(vin, model_year)
        cached = self._from_cache(url, vin)
        if cached is not None:
            return cached
        body = self._fetch(url)
        try:
            facts = parse_vpic_response(body, vin)
        except AnswerNotForThisVin as exc:
            logger.warning("vPIC answer for %s not used: %s", url, exc)
            raise VinDecoderUnavailable(one_line(exc)) from exc
        except (ValueError, TypeError) as exc:
            raise VinDecoderUnavailable(f"vPIC answered nonsense for {url}: {one_line(exc, 300)}") from exc
        self._store(url, body)
        return facts

    # --- HTTP --------------------------------------------------------------------------------

    def _fetch(self, url: str) -> dict[str, Any]:
        try:
            response = self._session.get(url, timeout=self._timeout)
        except requests.RequestException as exc:
            # requests wraps urllib3's MaxRetryError, whose `reason` names the real cause.
            cause = exc.args[0] if exc.args else exc
            raise VinDecoderUnavailable(
                f"vPIC unreachable ({type(exc).__name__}: {one_line(getattr(cause, 'reason', cause), 200)})"
            ) from exc
        if response.status_code != 200:
            raise VinDecoderUnavailable(f"vPIC answered HTTP {response.status_code} for {url}")
        try:
            body = response.json()
        except ValueError as exc:  # requests' JSONDecodeError is a ValueError
            raise VinDecoderUnavailable(f"vPIC answered non-JSON for {url}") from exc
        if not isinstance(body, dict):
            raise VinDecoderUnavailable(f"vPIC answered JSON that is not an object for {url}")
        return body

    # --- cache -------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self._cache_path, timeout=10)

    def _from_cache(self, url: str, vin: str) -> VehicleFacts | None:
        """The facts of a cached answer; an unusable one (e.g. for another VIN) is dropped and refetched."""
        if not self._cache_enabled:
            return None
        try:
            with closing(self._connect()) as db:
                row = db.execute("SELECT body FROM vpic_cache WHERE url = ?", (url,)).fetchone()
        except sqlite3.DatabaseError as exc:  # damaged since it was opened: a miss, and a fresh cache
            self._rebuild_cache(exc)
            return None
        if row is None:
            return None
        try:
            return parse_vpic_response(json.loads(row[0]), vin)
        except (ValueError, TypeError) as exc:  # json's JSONDecodeError is a ValueError
            logger.warning(
                "dropping the cached vPIC answer for %s and asking again: %s", url, one_line(exc, 300)
            )
        try:
            with closing(self._connect()) as db, db:
                db.execute("DELETE FROM vpic_cache WHERE url = ?", (url,))
        except sqlite3.DatabaseError as exc:
            self._rebuild_cache(exc)
        return None

    def _store(self, url: str, body: dict[str, Any]) -> None:
        fetched_at = datetime.now(UTC).isoformat(timespec="seconds")
        row = (url, json.dumps(body), fetched_at)
        insert = "INSERT OR REPLACE INTO vpic_cache (url, body, fetched_at) VALUES (?, ?, ?)"
        for attempt in (1, 2):
            if not self._cache_enabled:
                return
            try:
                with closing(self._connect()) as db, db:
                    db.execute(insert, row)
                return
            except sqlite3.DatabaseError as exc:
                if attempt == 2:
                    logger.warning(
                        "vPIC cache %s still unusable (%s); answer not cached", self._cache_path, exc
                    )
                    return
                self._rebuild_cache(exc)
