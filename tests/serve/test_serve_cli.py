"""`vehicle-assessment serve` as a command: it serves until Ctrl-C, then stops cleanly (exit 0, port freed);
bound beyond localhost without a token it makes one and prints it once."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import run_cli
from vehicle_assessment.cli import EXIT_OK

pytestmark = [pytest.mark.slow, pytest.mark.allow_hosts(["127.0.0.1"])]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _interrupt_when_serving(url: str, seen: dict[str, int]) -> threading.Thread:
    """Ask the page config until the server answers, then send this process Ctrl-C (SIGINT)."""

    def run() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                seen["status"] = requests.get(url, timeout=2).status_code
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_serve_runs_until_ctrl_c_and_stops_cleanly(
    host: str, tmp_path: Path, tiny_model_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    port = _free_port()
    seen: dict[str, int] = {}
    waiter = _interrupt_when_serving(f"http://127.0.0.1:{port}/config.json", seen)
    code, out, err = run_cli(
        capsys,
        "--data-dir",
        str(tmp_path / "data"),
        "--model",
        tiny_model_name,
        "--untrained",
        "serve",
        "--host",
        host,
        "--port",
        str(port),
    )
    waiter.join(5)
    assert code == EXIT_OK, err
    assert seen["status"] == 200
    assert f"serving http://127.0.0.1:{port}" in out and "stopping" in err
    assert "reference index" in err and "is empty" in err  # said at start, not at the first assessment
    if host == "0.0.0.0":
        [line] = [line for line in out.splitlines() if line.startswith("API token")]
        assert len(line.rsplit(" ", 1)[1]) >= 40  # generated, shown once
    else:
        assert "API token" not in out
    with socket.socket() as again:  # nothing listens there any more (closed connections may linger)
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))
        again.listen()
