"""The benchmark's Lambda probes measure every handler as Lambda imports it (the figures are printed,
not asserted: this checks only that each probe runs and what it finds)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow  # one fresh interpreter per handler and probe

spec = importlib.util.spec_from_file_location("benchmark", REPO_ROOT / "scripts" / "benchmark.py")
assert spec is not None and spec.loader is not None
benchmark = importlib.util.module_from_spec(spec)
sys.modules["benchmark"] = benchmark  # its dataclasses and typing look their module up
spec.loader.exec_module(benchmark)

ENV = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.mark.parametrize("probe", ["_IMPORT_PROBE", "_SNAPSTART_PROBE"])
def test_each_probe_runs_on_every_handler(probe: str) -> None:
    # The API handler once failed the probe (loaded by path, outside its package), and its row printed
    # FAIL for a reason Lambda never meets.
    modules = benchmark.handler_modules()
    assert len(modules) >= 10
    results, failures = benchmark._probe_each(getattr(benchmark, probe), modules, ENV)
    assert failures == []
    assert set(results) == {path.stem for path in modules}
    if probe == "_IMPORT_PROBE":
        assert all(result["heavy"] == [] for result in results.values())  # no torch in a handler
