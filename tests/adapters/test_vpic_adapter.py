"""The vPIC adapter against a local HTTP server serving recorded vPIC answers; no network."""

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from vehicle_assessment.adapters.vpic import VpicVinDecoder
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
