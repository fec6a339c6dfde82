"""CLI limits and help: bounded inputs, paging, Ctrl-C, help text on every option, global options anywhere."""

from __future__ import annotations

import argparse
import csv
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vehicle_assessment.adapters.local.repository import SqliteAssessmentRepository
from vehicle_assessment.cli import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    build_parser,
    settings_from_args,
)
from vehicle_assessment.domain import limits
from vehicle_assessment.domain.models import Assessment, AssessmentInputs, AssessmentStatus

from ..conftest import SAMPLE_DATA, run_cli

VIN = "1FTMW1T88MFA00001"
QUERY = str(next((SAMPLE_DATA / "queries" / "damaged").glob("*.jpg")))


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("VDA_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("VDA_VPIC__ENABLED", "false")


# --- inputs are bounded by AssessmentInputs, and the error names the bound ---------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--mileage", "3,000,000"], "--mileage must be a whole number of miles from 0 to 2,000,000"),
        (["--mileage", "-1"], "--mileage must be a whole number of miles from 0 to 2,000,000"),
        (["--estimate", "0.5"], "--estimate must be an amount in US dollars from $1 to $50,000,000"),
        (["--estimate", "60000000"], "--estimate must be an amount in US dollars from $1 to $50,000,000"),
        (["--estimate", "nan"], "--estimate must be an amount in US dollars"),
        (["--color", "x" * (limits.MAX_COLOR_CHARS + 1)], "--color must be a colour name of 1 to 40"),
        (["--color", "Red 🚗🚗"], "found '🚗'"),
        (["--color", "<speak>loud</speak>"], "found '<>'"),
        (["--color", "12345"], "holds no letters"),
        (["--color", "   "], "holds no letters"),
    ],
)
def test_out_of_bounds_input_is_one_line_naming_the_bound(tmp_path, capsys, args, expected) -> None:
    code, out, err = run_cli(capsys, "--data-dir", str(tmp_path), "assess", "--vin", VIN, *args, QUERY)
    assert code == EXIT_BAD_INPUT, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], err
    assert out == ""


def test_colour_whitespace_is_collapsed() -> None:
    assert AssessmentInputs(vin=VIN, color="  Oxford \n White ").color == "Oxford White"
    assert (
        AssessmentInputs(vin=VIN, color="Rapid Red Metallic (Tinted)").color == "Rapid Red Metallic (Tinted)"
    )
    assert AssessmentInputs(vin=VIN, color="Azul Océano").color == "Azul Océano"


def test_a_directory_passed_as_a_photo_is_named_a_directory(tmp_path, capsys) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    code, _, err = run_cli(capsys, "--data-dir", str(tmp_path), "assess", "--vin", VIN, str(folder))
    assert code == EXIT_BAD_INPUT
    assert f"photo {folder} is a directory" in err and "not found" not in err


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_batch_size_must_be_a_positive_whole_number(tmp_path, capsys, value) -> None:
    code, _, err = run_cli(
        capsys, "--data-dir", str(tmp_path), "index", "build", str(tmp_path), "--labels", "x.csv",
        "--batch-size", value,
    )  # fmt: skip
    assert code == EXIT_BAD_INPUT
    assert "argument --batch-size: must be" in err and "Traceback" not in err


# --- list pages like the API: a limit and a next token ------------------------------------------


def _store(data: Path, count: int) -> list[str]:
    repository = SqliteAssessmentRepository(data / "assessments.sqlite3")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ids = []
    for number in range(count):
        created = start + timedelta(minutes=number // 2)  # pairs share a timestamp: ties must page too
        assessment_id = f"a{number:02d}"
        repository.save(
            Assessment(
                assessment_id=assessment_id,
                vin=VIN,
                status=AssessmentStatus.COMPLETED,
                created_at=created,
                updated_at=created,
                inputs=AssessmentInputs(vin=VIN),
            )
        )
        ids.append(assessment_id)
    return ids


def test_list_says_when_there_is_more_and_pages_through_everything(tmp_path, capsys) -> None:
    ids = _store(tmp_path, 7)
    seen: list[str] = []
    token: list[str] = []
    for _ in range(10):
        code, out, err = run_cli(
            capsys, "--data-dir", str(tmp_path), "list", "--vin", VIN, "--limit", "3", *token
        )
        assert code == EXIT_OK, err
        lines = out.strip().splitlines()
        seen += [line.split()[0] for line in lines if line.startswith("a")]
        if not lines[-1].startswith("showing"):
            break
        assert lines[-1].startswith("showing 3 of more; next page: vehicle-assessment list")
        token = ["--next", lines[-1].split("--next ")[1]]
    assert seen == sorted(ids, reverse=True)  # newest first, none twice, none missed


def test_list_default_limit_is_announced_and_json_carries_the_token(tmp_path, capsys) -> None:
    _store(tmp_path, 52)
    code, out, _ = run_cli(capsys, "--data-dir", str(tmp_path), "list", "--vin", VIN)
    assert code == EXIT_OK and "showing 50 of more" in out
    code, out, _ = run_cli(capsys, "--data-dir", str(tmp_path), "list", "--vin", VIN, "--json")
    page = json.loads(out)
    assert len(page["assessments"]) == 50 and page["next_token"]
    code, out, _ = run_cli(
        capsys, "--data-dir", str(tmp_path), "list", "--vin", VIN, "--json", "--next", page["next_token"]
    )
    rest = json.loads(out)
    assert len(rest["assessments"]) == 2 and rest["next_token"] is None


def test_list_refuses_a_token_it_did_not_print(tmp_path, capsys) -> None:
    code, _, err = run_cli(capsys, "--data-dir", str(tmp_path), "list", "--vin", VIN, "--next", "bogus!")
    assert code == EXIT_BAD_INPUT and "--next:" in err and "not a page token" in err


# --- Ctrl-C during index build -------------------------------------------------------------------


class _InterruptedEncoder:
    """The tiny encoder, with Ctrl-C pressed during its second batch."""

    def __init__(self, encoder) -> None:
        self._encoder = encoder
        self.identity = encoder.identity
        self.calls = 0

    def embed(self, images):
        self.calls += 1
        if self.calls == 2:
            raise KeyboardInterrupt
        return self._encoder.embed(images)


def test_ctrl_c_during_index_build_keeps_finished_batches_and_says_so(
    tmp_path, capsys, monkeypatch, tiny_model_name, tiny_encoder
) -> None:
    import vehicle_assessment.adapters.local.openclip_encoder as openclip_encoder

    with (SAMPLE_DATA / "reference" / "labels.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))[:10]
    labels = tmp_path / "labels.csv"
    with labels.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    command = [
        "--data-dir", str(tmp_path / "data"), "--model", tiny_model_name, "--untrained",
        "index", "build", str(SAMPLE_DATA / "reference"), "--labels", str(labels), "--batch-size", "4",
    ]  # fmt: skip

    monkeypatch.setattr(openclip_encoder, "load_encoder", lambda settings: _InterruptedEncoder(tiny_encoder))
    code, _, err = run_cli(capsys, *command)
    assert code == EXIT_INTERRUPTED
    assert "interrupted: 4 photos indexed by this run were kept (4 in " in err
    assert "rerun the same command to resume" in err and "Traceback" not in err

    monkeypatch.setattr(openclip_encoder, "load_encoder", lambda settings: tiny_encoder)
    code, out, err = run_cli(capsys, *command)
    assert code == EXIT_OK, err
    assert "10 reference photos (6 added, 4 already there, 0 skipped)" in out


# --- help ----------------------------------------------------------------------------------------


def _parsers(parser: argparse.ArgumentParser, path: str = "vehicle-assessment"):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def test_every_option_and_argument_has_help() -> None:
    missing = []
    for path, parser in _parsers(build_parser()):
        for action in parser._actions:
            if not (action.help and action.help.strip()) or action.help == argparse.SUPPRESS:
                missing.append(f"{path}: {action.dest}")
            if isinstance(action, argparse._SubParsersAction):
                missing += [f"{path} {a.dest}" for a in action._choices_actions if not a.help]
    assert missing == []


def test_help_shows_exit_codes_and_limits(capsys) -> None:
    for command in ([], ["assess"], ["index", "build"]):
        code, out, _ = run_cli(capsys, *command, "--help")
        assert code == 0
        for expected in ("exit codes:", "  2 ", "  3 ", "  4 ", "  130 ", "2,000,000", "$50,000,000",
                         f"{limits.MAX_PHOTO_PIXELS:,} pixels"):  # fmt: skip
            assert expected in out, (command, expected)


def test_global_options_may_follow_the_command(tmp_path, capsys) -> None:
    parser = build_parser()
    after = parser.parse_args(["list", "--vin", VIN, "--data-dir", str(tmp_path / "x"), "-v"])
    assert after.data_dir == tmp_path / "x" and after.verbose
    before = parser.parse_args(["--data-dir", str(tmp_path / "y"), "--untrained", "list", "--vin", VIN])
    assert before.data_dir == tmp_path / "y" and before.untrained  # not reset by the command's defaults
    both = parser.parse_args(["--data-dir", "first", "list", "--vin", VIN, "--data-dir", "second"])
    assert both.data_dir == Path("second")
    assert settings_from_args(after).data_dir == tmp_path / "x"

    _store(tmp_path, 1)
    code, out, err = run_cli(capsys, "show", "a00", "--data-dir", str(tmp_path))
    assert code == EXIT_OK and "Assessment a00" in out, err
    code, out, _ = run_cli(capsys, "index", "--data-dir", str(tmp_path), "build", "--help")
    assert code == 0 and "--batch-size" in out
