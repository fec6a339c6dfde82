"""Every command that opens a damaged local state file exits 3 with one line naming it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from vehicle_assessment.cli import EXIT_NOT_READY

from ..conftest import SAMPLE_DATA, run_cli

VIN = "1FTMW1T88MFA00001"
QUERY = str(next((SAMPLE_DATA / "queries" / "damaged").glob("*.jpg")))


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("VDA_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("VDA_VPIC__ENABLED", "false")


def _garbage(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(3).bytes(4096))


def _commands(data: Path, model: str) -> dict[str, list[str]]:
    tiny = ["--data-dir", str(data), "--model", model, "--untrained"]
    return {
        "assess": [*tiny, "assess", "--vin", VIN, QUERY],
        "index build": [
            *tiny,
            "index",
            "build",
            str(SAMPLE_DATA / "reference"),
            "--labels",
            str(SAMPLE_DATA / "reference" / "labels.csv"),
        ],
        "list": ["--data-dir", str(data), "list", "--vin", VIN],
        "show": ["--data-dir", str(data), "show", "some-id"],
        "evaluate": ["--data-dir", str(data), "evaluate"],
    }


@pytest.mark.parametrize(
    ("command", "damaged_file", "remedy"),
    [
        ("assess", "reference-index.sqlite3", "rebuild the index"),
        ("assess", "assessments.sqlite3", "move the damaged file aside"),
        ("index build", "reference-index.sqlite3", "rebuild the index"),
        ("list", "assessments.sqlite3", "move the damaged file aside"),
        ("show", "assessments.sqlite3", "move the damaged file aside"),
        ("evaluate", "reference-index.sqlite3", "rebuild the index"),
    ],
)
def test_damaged_state_file_exits_3_with_one_line(
    tmp_path, capsys, tiny_model_name, sample_index_path, command, damaged_file, remedy
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(sample_index_path, data / "reference-index.sqlite3")  # a good index unless damaged below
    _garbage(data / damaged_file)
    code, out, err = run_cli(capsys, *_commands(data, tiny_model_name)[command])
    assert code == EXIT_NOT_READY, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert str(data / damaged_file) in lines[0] and remedy in lines[0]
    assert "Traceback" not in err and out == ""
