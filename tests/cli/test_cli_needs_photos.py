"""`vehicle-assessment assess` when no photo can be assessed: NEEDS_PHOTOS and its own exit code."""

from __future__ import annotations

import io
import json
import shutil

import pytest
from PIL import Image

from vehicle_assessment.cli import EPILOG, EXIT_NEEDS_PHOTOS, EXIT_OK, build_parser

from ..conftest import run_cli

pytestmark = pytest.mark.slow

VIN = "1FTMW1T88MFA00001"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in __import__("os").environ if n.startswith("VDA_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("VDA_VPIC__ENABLED", "false")


def test_all_photos_rejected_exits_needs_photos(tmp_path, capsys, tiny_model_name, sample_index_path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(sample_index_path, data / "reference-index.sqlite3")
    photos = []
    for name, size in (("tiny.png", (8, 8)), ("blank.png", (400, 300))):
        buffer = io.BytesIO()
        Image.new("RGB", size, "gray").save(buffer, "PNG")
        path = tmp_path / name
        path.write_bytes(buffer.getvalue())
        photos.append(str(path))
    common = ["--data-dir", str(data), "--model", tiny_model_name, "--untrained"]

    code, out, err = run_cli(
        capsys, *common, "assess", "--vin", VIN, "--estimate", "30000", "--json", *photos
    )
    assert code == EXIT_NEEDS_PHOTOS != EXIT_OK, err
    record = json.loads(out)
    assert record["status"] == "NEEDS_PHOTOS"
    assert [p["status"] for p in record["photos"]] == ["rejected", "rejected"]
    assert record["valuation"]["adjusted_value_usd"] is None
    assert all("%" not in d["text"] for d in record["descriptions"])
    assert "NEEDS PHOTOS" in err

    code, out, _ = run_cli(capsys, *common, "assess", "--vin", VIN, *photos)
    assert code == EXIT_NEEDS_PHOTOS
    assert "NEEDS_PHOTOS" in out and "NEEDS PHOTOS:" in out


def test_the_exit_codes_are_in_the_help() -> None:
    assert f"{EXIT_NEEDS_PHOTOS:<4} the assessment ran but no photo could be assessed" in EPILOG
    assert build_parser().epilog == EPILOG
