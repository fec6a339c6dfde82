"""VinDecoder backed by the public NHTSA vPIC API, with retries and a small SQLite cache.

A VIN's decode does not change, so a successful answer is kept forever, keyed by the request
URL; a cache hit makes no request. Every failure becomes VinDecoderUnavailable so that the
pipeline falls back to the offline VIN decode. Plain HTTPS, so local mode and the decode-VIN
Lambda share it (the Lambda keeps its cache in /tmp for the container's life).
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

from vehicle_assessment.domain.models import VehicleFacts
from vehicle_assessment.domain.text import one_line
from vehicle_assessment.domain.vehicle import parse_vpic_response
from vehicle_assessment.ports import VinDecoderUnavailable
from vehicle_assessment.settings import VpicSettings

_SCHEMA = """
CREATE TABLE IF NOT EXISTS vpic_cache (
    url TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    fetched_at TEXT NOT NULL
)
"""


class VpicVinDecoder:
    """Implements the VinDecoder port."""

    def __init__(self, settings: VpicSettings, cache_path: Path) -> None:
        self._settings = settings
        self._cache_path = Path(cache_path)
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
            with closing(self._connect()) as db, db:
                db.execute(_SCHEMA)

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
        cached = self._cached(url)
        if cached is not None:
            try:
                return parse_vpic_response(cached, vin)
            except (ValueError, TypeError):
                pass  # an unusable cached body is refetched below
        body = self._fetch(url)
        try:
            facts = parse_vpic_response(body, vin)
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

    def _cached(self, url: str) -> dict[str, Any] | None:
        with closing(self._connect()) as db:
            row = db.execute("SELECT body FROM vpic_cache WHERE url = ?", (url,)).fetchone()
        if row is None:
            return None
        try:
            body = json.loads(row[0])
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def _store(self, url: str, body: dict[str, Any]) -> None:
        fetched_at = datetime.now(UTC).isoformat(timespec="seconds")
        with closing(self._connect()) as db, db:
            db.execute(
                "INSERT OR REPLACE INTO vpic_cache (url, body, fetched_at) VALUES (?, ?, ?)",
                (url, json.dumps(body), fetched_at),
            )
