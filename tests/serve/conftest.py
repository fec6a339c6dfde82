"""A `vehicle-assessment serve` on a free port of 127.0.0.1, in a thread, over a temporary data dir."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vehicle_assessment.ports import ImageEncoder
from vehicle_assessment.serve.wiring import POWERTOOLS_DEFAULTS, RunningServer, build_server
from vehicle_assessment.settings import LocalSettings, SpeechSettings, VpicSettings

VIN = "1FTMW1T88MFA00001"  # a valid 2021 Ford F-150 VIN (check digit ok)


def local_settings(data_dir: Path) -> LocalSettings:
    return LocalSettings(
        data_dir=data_dir, vpic=VpicSettings(enabled=False), speech=SpeechSettings(enabled=True)
    )


def no_encoder() -> ImageEncoder:
    raise AssertionError("this test never completes an assessment: no model is loaded")


StartServer = Callable[..., RunningServer]


@pytest.fixture(autouse=True)
def powertools_environment_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """`build_server` sets Powertools' variables for its process (metrics off, its service name); here
    they are undone after each test, so later tests (e.g. the description-fallback metric) see their
    own environment whatever order the tests run in."""
    for name, value in POWERTOOLS_DEFAULTS.items():
        monkeypatch.setenv(name, os.environ.get(name, value))


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """Start servers (closed after the test): ``start_server(host=..., token=..., encoder=...)``."""
    running: list[RunningServer] = []

    def start(
        host: str = "127.0.0.1",
        token: str | None = None,
        encoder: Callable[[], ImageEncoder] = no_encoder,
        static_dir: Path | None = None,
        settings: LocalSettings | None = None,
    ) -> RunningServer:
        server = build_server(
            settings or local_settings(tmp_path / "data"),
            host,
            0,
            token=token,
            encoder=encoder,
            static_dir=static_dir,
        )
        threading.Thread(target=server.server.serve_forever, daemon=True).start()
        running.append(server)
        return server

    yield start
    for server in running:
        server.close()
