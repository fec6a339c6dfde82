"""The `vehicle-assessment` command: exit codes, one-line reasons, JSON output."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from vehicle_assessment.cli import EXIT_BAD_INPUT, EXIT_NOT_READY, EXIT_OK
from vehicle_assessment.domain import limits, upload_keys

from ..conftest import SAMPLE_DATA, run_cli

pytestmark = pytest.mark.slow

VIN = "1FTMW1T88MFA00001"
QUERIES = sorted(str(p) for p in (SAMPLE_DATA / "queries").glob("*/*.jpg"))


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in __import__("os").environ if n.startswith("VDA_")]:
        monkeypatch.delenv(name)
    # pytest-socket blocks the network; decode offline from the VIN like a yard without internet.
    monkeypatch.setenv("VDA_VPIC__ENABLED", "false")


@pytest.fixture
def labels(tmp_path: Path) -> Path:
    """Twelve real labelled photos plus two bad rows the build must skip with reasons."""
    with (SAMPLE_DATA / "reference" / "labels.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    chosen = [r for r in rows if r["damaged"] == "false"][:4] + [r for r in rows if r["damaged"] == "true"][
        :8
    ]
    chosen.append({**chosen[0], "path": "damaged/not-there.jpg"})
    chosen.append({**chosen[1], "path": "undamaged/" + Path(chosen[1]["path"]).name, "severity": "severe"})
    path = tmp_path / "labels.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(chosen)
    return path


def _tiny(data_dir: Path, model: str) -> list[str]:
    return ["--data-dir", str(data_dir), "--model", model, "--untrained"]


def test_build_assess_show_list(tmp_path, labels, capsys, tiny_model_name) -> None:
    data = tmp_path / "data"
    common = _tiny(data, tiny_model_name)
    code, out, err = run_cli(
        capsys, *common, "index", "build", str(SAMPLE_DATA / "reference"), "--labels", str(labels)
    )
    assert code == EXIT_OK, err
    assert "12 reference photos (12 added, 0 already there, 2 skipped)" in out
    assert "damaged/not-there.jpg: file not found" in out
    assert "inconsistent label" in out
    assert "untrained encoder" in err
    # Each indexed photo's display copy, for `serve`'s pages: JPEG, longest side at most the limit.
    copies = sorted((data / "objects" / "references").glob("*.jpg"))
    assert len(copies) == 12
    for copy in copies:
        with Image.open(copy) as image:
            assert image.format == "JPEG" and max(image.size) <= limits.REFERENCE_IMAGE_MAX_SIDE

    # Resumable: a second run finds everything already there.
    code, out, _ = run_cli(
        capsys, *common, "index", "build", str(SAMPLE_DATA / "reference"), "--labels", str(labels), "--json"
    )
    summary = json.loads(out)
    assert (
        code == EXIT_OK
        and summary["added"] == 0
        and summary["already_indexed"] == 12
        and summary["total"] == 12
        and summary["display_copies"] == 0  # all there already
    )

    code, out, err = run_cli(
        capsys, *common, "assess", "--vin", VIN, "--mileage", "48,200", "--json", *QUERIES
    )
    assert code == EXIT_OK, err
    record = json.loads(out)
    assert record["status"] == "COMPLETED" and record["vin"] == VIN
    assert record["notice"] == "untrained encoder: verdicts are not meaningful"
    assert len(record["photos"]) == 3 and record["inputs"]["mileage"] == 48200
    neighbours = [n for photo in record["photos"] for n in photo["verdict"]["neighbours"]]
    assert neighbours and all(
        (data / "objects" / upload_keys.reference_image_key(n["sha256"])).is_file() for n in neighbours
    )
    assessment_id = record["assessment_id"]

    code, out, _ = run_cli(capsys, *common, "assess", "--vin", VIN, "--color", "blue", *QUERIES[:1])
    assert code == EXIT_OK
    assert "UNTRAINED ENCODER: VERDICTS ARE NOT MEANINGFUL" in out
    assert "Valuation" in out and "Descriptions" in out and "[standard/es v1, template]" in out

    code, out, _ = run_cli(capsys, "--data-dir", str(data), "show", assessment_id, "--json")
    assert code == EXIT_OK and json.loads(out)["assessment_id"] == assessment_id
    code, out, _ = run_cli(capsys, "--data-dir", str(data), "list", "--vin", VIN.lower(), "--json")
    assert code == EXIT_OK and len(json.loads(out)["assessments"]) == 2
    code, out, _ = run_cli(capsys, "--data-dir", str(data), "list", "--vin", VIN)
    assert code == EXIT_OK and assessment_id in out


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--vin", "1FTMW1T88MFA0000O", *QUERIES], "invalid VIN"),
        (["--vin", "1FTMW1T88MFA0001", *QUERIES], "invalid VIN"),
        (["--vin", "1FTMW1T89MFA00001", *QUERIES], "check digit"),
        (["--vin", VIN, "--mileage", "-5", *QUERIES], "--mileage must be a whole number of miles from 0"),
        (["--vin", VIN, "--mileage", "lots", *QUERIES], "whole number"),
        (["--vin", VIN, "--estimate", "free", *QUERIES], "US dollars"),
        (["--vin", VIN, "missing-photo.jpg"], "not found"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, tiny_model_name, args, reason) -> None:
    code, out, err = run_cli(capsys, *_tiny(tmp_path, tiny_model_name), "assess", *args)
    assert code == EXIT_BAD_INPUT
    assert reason in err
    assert out == ""
    assert len([line for line in err.splitlines() if line.startswith("error") or "error:" in line]) == 1


def test_environment_not_ready_exits_3(tmp_path, capsys, tiny_model_name) -> None:
    code, _, err = run_cli(capsys, *_tiny(tmp_path, tiny_model_name), "assess", "--vin", VIN, *QUERIES)
    assert code == EXIT_NOT_READY and "index build" in err
    args = ["--data-dir", str(tmp_path), "--model", "ViT-B-32", "--pretrained", str(tmp_path / "none.bin")]
    code, _, err = run_cli(capsys, *args, "assess", "--vin", VIN, *QUERIES)
    assert code == EXIT_NOT_READY and "VDA_ENCODER__PRETRAINED" in err and len(err.strip().splitlines()) == 1


def test_unknown_assessment_and_bad_labels(tmp_path, capsys) -> None:
    code, _, err = run_cli(capsys, "--data-dir", str(tmp_path), "show", "no-such-id")
    assert code == EXIT_BAD_INPUT and "no assessment" in err
    bad = tmp_path / "labels.csv"
    bad.write_text("file,label\nx.jpg,1\n")
    code, _, err = run_cli(
        capsys, "--data-dir", str(tmp_path), "index", "build", str(tmp_path), "--labels", str(bad)
    )
    assert code == EXIT_BAD_INPUT and "lacks the column" in err


def test_index_build_prepares_the_ann_file_of_a_large_index(
    tmp_path, labels, capsys, tiny_model_name, monkeypatch
) -> None:
    pytest.importorskip("faiss")
    monkeypatch.setenv("VDA_INDEX__ANN_MIN_VECTORS", "10")  # 12 references count as large here
    data = tmp_path / "data"
    common = _tiny(data, tiny_model_name)
    code, _, err = run_cli(
        capsys, *common, "index", "build", str(SAMPLE_DATA / "reference"), "--labels", str(labels)
    )
    assert code == EXIT_OK, err
    manifest = json.loads((data / "reference-index.faiss.json").read_text(encoding="utf-8"))
    assert manifest["row_count"] == 12 and (data / "reference-index.faiss").is_file()
    code, out, err = run_cli(capsys, *common, "assess", "--vin", VIN, "--json", *QUERIES[:1])
    assert code == EXIT_OK, err
    assert json.loads(out)["status"] == "COMPLETED"
