"""scripts/measure_reuse.py on a few sample photos: copies are found, the configured layout is reported,
and the cache reproduces the report without measuring again."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "measure_reuse.py"


@pytest.fixture(scope="module")
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("measure_reuse_script", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["measure_reuse_script"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def test_a_small_run_reports_the_chosen_threshold_and_the_bands(script, tmp_path, capsys) -> None:
    cache = tmp_path / "distances.npz"
    queries = str(REPO / "sample_data" / "queries")
    assert script.main([queries, "--cache", str(cache)]) == 0
    first = capsys.readouterr().out
    assert "3 distinct photos, 3 pairs of different photos, 16 copies each" in first
    chosen = next(line for line in first.splitlines() if line.startswith("CHOSEN: dhash-64, distance <= 6"))
    assert "recall on copies" in chosen and "of 3 pairs" in chosen
    assert "4 bands of 16 bits, radius 1: 68 lookups per photo" in first and "<- configured" in first
    # Re-encoded and resized copies of these photos are found at every threshold the table shows.
    per_kind = first.split("recall per kind of copy by threshold", 1)[1]
    row = next(line for line in per_kind.splitlines() if line.strip().startswith("jpeg q70 + resize 70%"))
    assert row.split("%", 1)[1].split() == ["100%"] * 11, row
    assert cache.is_file()
    assert script.main(["no-such-directory", "--cache", str(cache)]) == 0  # read back, not measured
    second = capsys.readouterr().out
    assert second.split("\n", 1)[0] == first.split("\n\n", 1)[1].split("\n", 1)[0]
