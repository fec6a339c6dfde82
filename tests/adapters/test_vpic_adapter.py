"""The vPIC adapter against a local HTTP server serving recorded vPIC answers; no network."""

import json
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from vehicle_assessment.adapters.vpic import VpicVinDecoder
from vehicle_assessment.domain.description import TemplateDescriber, build_description_request
from vehicle_assessment.domain.models import Assessment, AssessmentInputs, AssessmentStatus, DescriptionStyle
from vehicle_assessment.pipeline import decode_vehicle
from vehicle_assessment.ports import VinDecoderUnavailable
from vehicle_assessment.settings import VpicSettings

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

VIN = "1FTMW1T88MFA00001"
EXTENDED = json.loads(
    (Path(__file__).resolve().parents[1] / "data" / "vpic" / "decode-vin-extended.json").read_text()
)
EXTENDED_BODY = json.dumps(EXTENDED["body"]).encode()


class FakeVpic:
    """Answers each request with the next scripted (status, body); the last one repeats."""

    def __init__(self) -> None:
        self.script: list[tuple[int, bytes]] = [(200, EXTENDED_BODY)]
        self.paths: list[str] = []
        self.delay_s = 0.0
        self._lock = threading.Lock()

    def next(self, path: str) -> tuple[int, bytes]:
        with self._lock:
            self.paths.append(path)
            return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    @property
    def hits(self) -> int:
        return len(self.paths)


@pytest.fixture
def vpic() -> Iterator[tuple[FakeVpic, str]]:
    fake = FakeVpic()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = fake.next(self.path)
            time.sleep(fake.delay_s)
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (the timeout test); nothing to report

        def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}/api/vehicles"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def settings(base_url: str, **overrides: object) -> VpicSettings:
    values: dict[str, object] = {"base_url": base_url, "retries": 2, "backoff_factor": 0.0}
    values.update(overrides)
    return VpicSettings(**values)  # type: ignore[arg-type]


def test_decodes_recorded_answer(vpic: tuple[FakeVpic, str], tmp_path: Path) -> None:
    fake, url = vpic
    facts = VpicVinDecoder(settings(url), tmp_path / "cache" / "vpic.sqlite3").decode(VIN, None)
    assert facts.source == "vpic"
    assert facts.make == "FORD"
    assert facts.model == "F-150"
    assert facts.model_year == 2021
    assert facts.engine_displacement_l == 3.5
    assert fake.paths == [f"/api/vehicles/DecodeVinValuesExtended/{VIN}?format=json"]


def test_model_year_is_sent(vpic: tuple[FakeVpic, str], tmp_path: Path) -> None:
    fake, url = vpic
    VpicVinDecoder(settings(url), tmp_path / "vpic.sqlite3").decode(VIN, 2021)
    assert fake.paths == [f"/api/vehicles/DecodeVinValuesExtended/{VIN}?format=json&modelyear=2021"]


def test_second_decode_comes_from_cache(vpic: tuple[FakeVpic, str], tmp_path: Path) -> None:
    fake, url = vpic
    cache = tmp_path / "vpic.sqlite3"
    decoder = VpicVinDecoder(settings(url), cache)
    first = decoder.decode(VIN, None)
    assert fake.hits == 1
    assert decoder.decode(VIN, None) == first
    assert fake.hits == 1
    # A new decoder on the same file (e.g. the next CLI run) also hits the cache.
    assert VpicVinDecoder(settings(url), cache).decode(VIN, None) == first
    assert fake.hits == 1
    # Another model year is another request.
    decoder.decode(VIN, 2021)
    assert fake.hits == 2


def test_retries_on_503_then_succeeds(vpic: tuple[FakeVpic, str], tmp_path: Path) -> None:
    fake, url = vpic
    fake.script = [(503, b"busy"), (503, b"busy"), (200, EXTENDED_BODY)]
    facts = VpicVinDecoder(settings(url, retries=2), tmp_path / "vpic.sqlite3").decode(VIN, None)
    assert facts.model == "F-150"
    assert fake.hits == 3


def test_always_500_is_unavailable(vpic: tuple[FakeVpic, str], tmp_path: Path) -> None:
    fake, url = vpic
    fake.script = [(500, b"oops")]
    decoder = VpicVinDecoder(settings(url, retries=2), tmp_path / "vpic.sqlite3")
    with pytest.raises(VinDecoderUnavailable, match="HTTP 500"):
        decoder.decode(VIN, None)
    assert fake.hits == 3  # the first try and two retries
    # Failures are not cached: once vPIC recovers, the answer comes through.
    fake.script = [(200, EXTENDED_BODY)]
    assert decoder.decode(VIN, None).model == "F-150"


def test_non_json_is_unavailable(vpic: tuple[FakeVpic, str], tmp_path: Path) -> None:
    fake, url = vpic
    fake.script = [(200, b"<html>maintenance</html>")]
    with pytest.raises(VinDecoderUnavailable, match="non-JSON"):
        VpicVinDecoder(settings(url), tmp_path / "vpic.sqlite3").decode(VIN, None)


def test_empty_results_is_unavailable_and_not_cached(vpic: tuple[FakeVpic, str], tmp_path: Path) -> None:
    fake, url = vpic
    fake.script = [(200, b'{"Count": 0, "Message": "No data", "Results": []}'), (200, EXTENDED_BODY)]
    decoder = VpicVinDecoder(settings(url), tmp_path / "vpic.sqlite3")
    with pytest.raises(VinDecoderUnavailable, match="no Results"):
        decoder.decode(VIN, None)
    assert decoder.decode(VIN, None).model == "F-150"
    assert fake.hits == 2


def test_read_timeout_is_unavailable(vpic: tuple[FakeVpic, str], tmp_path: Path) -> None:
    fake, url = vpic
    fake.delay_s = 0.5
    decoder = VpicVinDecoder(settings(url, retries=0, read_timeout_s=0.1), tmp_path / "vpic.sqlite3")
    with pytest.raises(VinDecoderUnavailable, match="vPIC unreachable"):
        decoder.decode(VIN, None)


def test_connection_refused_is_unavailable(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago and has no listener now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    decoder = VpicVinDecoder(settings(f"http://127.0.0.1:{port}/api/vehicles"), tmp_path / "vpic.sqlite3")
    with pytest.raises(VinDecoderUnavailable, match="vPIC unreachable") as info:
        decoder.decode(VIN, None)
    assert "\n" not in str(info.value)


def test_disabled_is_unavailable(vpic: tuple[FakeVpic, str], tmp_path: Path) -> None:
    fake, url = vpic
    cache = tmp_path / "vpic.sqlite3"
    decoder = VpicVinDecoder(settings(url, enabled=False), cache)
    with pytest.raises(VinDecoderUnavailable, match="vPIC lookups are disabled"):
        decoder.decode(VIN, None)
    assert fake.hits == 0
    assert not cache.exists()


# --- which vehicle vPIC answered for ----------------------------------------------------------

CONSTRUCTED = Path(__file__).resolve().parents[1] / "data" / "vpic" / "constructed"
TESLA_VIN = "5YJSA3DS2EF100001"
TODAY = date(2026, 1, 15)


def constructed(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((CONSTRUCTED / name).read_text())["body"]
    return body


def serve(fake: FakeVpic, body: dict[str, Any]) -> None:
    fake.script = [(200, json.dumps(body).encode())]


def test_answer_for_another_vin_is_never_used(
    vpic: tuple[FakeVpic, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake, url = vpic
    serve(fake, constructed("bmw-x3.json"))  # a 2011 BMW X3 (VIN 5UXWX7C56BA100007)
    decoder = VpicVinDecoder(settings(url), tmp_path / "vpic.sqlite3")
    with pytest.raises(VinDecoderUnavailable, match=r"another vehicle.*5UXWX7C56BA100007"):
        decoder.decode(TESLA_VIN, 2014)
    assert any("not used" in r.message and "5UXWX7C56BA100007" in r.message for r in caplog.records)
    # Not cached: the next decode asks again and gets the right answer.
    serve(fake, constructed("bev-tesla-model-s.json"))
    assert decoder.decode(TESLA_VIN, 2014).model == "Model S"
    assert fake.hits == 2


def _assessment(vin: str) -> Assessment:
    return Assessment(
        assessment_id="a-1",
        vin=vin,
        status=AssessmentStatus.PROCESSING,
        created_at=datetime(2026, 1, 15, tzinfo=UTC),
        updated_at=datetime(2026, 1, 15, tzinfo=UTC),
        inputs=AssessmentInputs(vin=vin),
    )


def test_tesla_with_a_bmw_answer_is_described_from_its_vin(
    vpic: tuple[FakeVpic, str], tmp_path: Path
) -> None:
    fake, url = vpic
    serve(fake, constructed("bmw-x3.json"))
    decoder = VpicVinDecoder(settings(url), tmp_path / "vpic.sqlite3")
    assessment = decode_vehicle(_assessment(TESLA_VIN), decoder, TODAY)
    vehicle = assessment.vehicle
    assert vehicle is not None
    assert (vehicle.source, vehicle.make, vehicle.model, vehicle.model_year) == ("vin", "Tesla", None, 2014)
    assert any("another vehicle" in w and "5UXWX7C56BA100007" in w for w in assessment.warnings)
    assert vehicle.warnings == [w for w in assessment.warnings if "another vehicle" in w]
    request = build_description_request(assessment)
    for language in ("en", "es"):
        text = TemplateDescriber().describe(request, DescriptionStyle.STANDARD, language, 0.0).text
        assert "BMW" not in text and "X3" not in text and "2011" not in text
        assert "Tesla" in text and "2014" in text


def test_batch_body_gives_the_row_of_the_requested_vin(vpic: tuple[FakeVpic, str], tmp_path: Path) -> None:
    fake, url = vpic
    serve(fake, constructed("batch-bmw-then-tesla.json"))  # rows 5UXWX7C5*BA, then 5YJSA3DS*EF
    facts = VpicVinDecoder(settings(url), tmp_path / "vpic.sqlite3").decode(TESLA_VIN, None)
    assert (facts.make, facts.model, facts.model_year) == ("TESLA", "Model S", 2014)
    assert facts.is_electric
    assert facts.engine_displacement_l is None  # nothing of the BMW's 3.0 L engine
    assert any("5YJSA3DS*EF" in w for w in facts.warnings)  # facts of a masked VIN: said so


def test_batch_body_without_the_requested_vin_is_unavailable(
    vpic: tuple[FakeVpic, str], tmp_path: Path
) -> None:
    fake, url = vpic
    serve(fake, constructed("batch-bmw-then-tesla.json"))
    with pytest.raises(VinDecoderUnavailable, match="another vehicle"):
        VpicVinDecoder(settings(url), tmp_path / "vpic.sqlite3").decode(VIN, None)


def test_cached_body_for_another_vin_is_not_served(
    vpic: tuple[FakeVpic, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake, url = vpic
    cache = tmp_path / "vpic.sqlite3"
    decoder = VpicVinDecoder(settings(url), cache)
    # A body stored under the Tesla's URL that describes the BMW (an older version's cache, a proxy).
    with closing(sqlite3.connect(cache)) as db, db:
        db.execute(
            "INSERT INTO vpic_cache (url, body, fetched_at) VALUES (?, ?, ?)",
            (decoder.url_for(TESLA_VIN, 2014), json.dumps(constructed("bmw-x3.json")), "2025-01-01T00:00:00"),
        )
    serve(fake, constructed("bev-tesla-model-s.json"))
    facts = decoder.decode(TESLA_VIN, 2014)
    assert (facts.make, facts.model) == ("TESLA", "Model S")
    assert fake.hits == 1  # the poisoned entry was refetched...
    assert any("dropping the cached vPIC answer" in r.message for r in caplog.records)
    assert decoder.decode(TESLA_VIN, 2014) == facts
    assert fake.hits == 1  # ...and replaced by the right answer


# --- powertrain, from every field vPIC offers --------------------------------------------------


@pytest.mark.parametrize(
    ("name", "vin", "is_electric", "is_hybrid"),
    [
        ("bev-tesla-model-s.json", TESLA_VIN, True, False),
        ("bev-without-fuel-type.json", "1G1FX6S05H4100002", True, False),
        ("phev-chevrolet-volt.json", "1G1RC6S51HU100003", False, True),
        ("hev-toyota-prius.json", "JTDKARFU6G3100004", False, True),
        ("mild-hev-ram-1500.json", "1C6SRFJT5KN100005", False, True),
        ("fcev-toyota-mirai.json", "JTDBVRBD2GA100006", True, False),
        ("bmw-x3.json", "5UXWX7C56BA100007", False, False),
        ("empty-decode.json", "1G1ZZ9Z95LZ100008", False, False),
    ],
)
def test_powertrain_flags_of_each_kind(
    vpic: tuple[FakeVpic, str], tmp_path: Path, name: str, vin: str, is_electric: bool, is_hybrid: bool
) -> None:
    fake, url = vpic
    serve(fake, constructed(name))
    facts = VpicVinDecoder(settings(url), tmp_path / "vpic.sqlite3").decode(vin, None)
    assert (facts.is_electric, facts.is_hybrid) == (is_electric, is_hybrid)


def test_unreadable_cached_body_is_refetched(vpic: tuple[FakeVpic, str], tmp_path: Path) -> None:
    fake, url = vpic
    cache = tmp_path / "vpic.sqlite3"
    decoder = VpicVinDecoder(settings(url), cache)
    with closing(sqlite3.connect(cache)) as db, db:
        db.execute(
            "INSERT INTO vpic_cache (url, body, fetched_at) VALUES (?, ?, ?)",
            (decoder.url_for(VIN, None), "{truncated", "2025-01-01T00:00:00"),
        )
    assert decoder.decode(VIN, None).model == "F-150"
    assert decoder.decode(VIN, None).model == "F-150"
    assert fake.hits == 1
