"""The review loop in local mode, through the command: assess with the tiny model → a photo needs
review → `reviews` lists it → `review` → the valuation and descriptions change, `show` prints the
review, both description versions and the history → the photo reviewed "as reference" is in the index
with its provenance → `evaluate` reports the agreement with reviewers. Bad input is one line and exit 2."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from vehicle_assessment.adapters.local.vector_index import LocalVectorIndex
from vehicle_assessment.cli import EXIT_BAD_INPUT, EXIT_OK

from ..conftest import SAMPLE_DATA, run_cli

pytestmark = pytest.mark.slow

VIN = "1FTMW1T88MFA00001"
QUERIES = sorted(str(p) for p in (SAMPLE_DATA / "queries").glob("*/*.jpg"))


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in __import__("os").environ if n.startswith("VDA_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("VDA_VPIC__ENABLED", "false")
    # Every verdict short of unanimous needs a person: with random weights and a mixed index, the
    # neighbours of every photo disagree, so every photo waits for review.
    monkeypatch.setenv("VDA_RULES__VERDICT__CONFIDENCE_THRESHOLD", "1.0")


@pytest.fixture
def assessed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_model_name: str
) -> tuple[list[str], dict]:
    with (SAMPLE_DATA / "reference" / "labels.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    chosen = [r for r in rows if r["damaged"] == "false"][:5] + [r for r in rows if r["damaged"] == "true"][
        :7
    ]
    labels = tmp_path / "labels.csv"
    with labels.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(chosen)
    common = ["--data-dir", str(tmp_path / "data"), "--model", tiny_model_name, "--untrained"]
    code, _, err = run_cli(
        capsys, *common, "index", "build", str(SAMPLE_DATA / "reference"), "--labels", str(labels)
    )
    assert code == EXIT_OK, err
    code, out, err = run_cli(
        capsys, *common, "assess", "--vin", VIN, "--estimate", "30000", "--json", *QUERIES[:2]
    )
    assert code == EXIT_OK, err
    return ["--data-dir", str(tmp_path / "data")], json.loads(out)


def test_the_review_loop_in_local_mode(
    assessed: tuple[list[str], dict], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data, record = assessed
    assessment_id = record["assessment_id"]
    waiting = [p["photo_id"] for p in record["photos"] if p["verdict"] and p["verdict"]["needs_review"]]
    assert waiting, "the fixture must leave a photo for review"
    assert record["valuation"]["provisional"]

    code, out, _ = run_cli(capsys, *data, "reviews", "--json")
    assert code == EXIT_OK
    [entry] = json.loads(out)["entries"]
    assert entry["assessment_id"] == assessment_id
    assert entry["photos"] == {pid: ["low_confidence"] for pid in waiting}
    code, out, _ = run_cli(capsys, *data, "reviews")
    assert assessment_id in out and "low_confidence" in out

    first = waiting[0]
    code, out, err = run_cli(
        capsys,
        *data,
        "review",
        assessment_id,
        first,
        "--damaged",
        "yes",
        "--type",
        "broken",
        "--severity",
        "severe",
        "--note",
        "headlamp smashed",
        "--reviewer",
        "ana",
        "--as-reference",
        "--json",
    )
    assert code == EXIT_OK, err
    reviewed = json.loads(out)
    photo = next(p for p in reviewed["photos"] if p["photo_id"] == first)
    assert photo["reviews"][0]["reviewer"] == "ana" and photo["reviews"][0]["severity"] == "severe"
    row = next(p for p in reviewed["valuation"]["photos"] if p["photo_id"] == first)
    assert row["counted"] and row["severity"] == "severe"
    assert reviewed["valuation"]["adjusted_value_usd"] != record["valuation"]["adjusted_value_usd"]
    english = next(d for d in reviewed["descriptions"] if d["language"] == "en")
    assert english["version"] == 2 and english["text"] != next(
        d["text"] for d in record["descriptions"] if d["language"] == "en"
    )
    assert {d["version"] for d in reviewed["superseded_descriptions"]} == {1}

    # The rest reviewed without --reviewer: the OS user decides.
    for photo_id in waiting[1:]:
        code, _, err = run_cli(capsys, *data, "review", assessment_id, photo_id, "--damaged", "no")
        assert code == EXIT_OK, err
    code, out, _ = run_cli(capsys, *data, "reviews", "--json")
    assert json.loads(out)["entries"] == []

    code, out, _ = run_cli(capsys, *data, "show", assessment_id)
    assert code == EXIT_OK
    assert "REVIEWED by ana" in out and "note: headlamp smashed" in out
    assert "Earlier descriptions" in out and "v1, template" in out and "v2, template" in out
    assert "History (oldest first)" in out
    assert "ana: reviewed photo" in out and "revalued after the review" in out
    assert "Valuation  (PROVISIONAL)" not in out  # every photo is now judged by a person

    # The photo reviewed "as reference" joined the index, with its reviewed label and provenance.
    index = LocalVectorIndex(Path(data[1]) / "reference-index.sqlite3")
    try:
        references, _ = index.vectors_and_labels()
    finally:
        index.close()
    [learnt] = [r for r in references if r.provenance is not None]
    assert learnt.source == f"review/{assessment_id}/{first}"
    assert (learnt.label.damage_type.value, learnt.label.severity.value) == ("broken", "severe")
    assert (learnt.provenance.assessment_id, learnt.provenance.photo_id) == (assessment_id, first)
    assert learnt.provenance.reviewer == "ana"

    # `evaluate` reports how often the model agreed with the reviewers on these photos.
    monkeypatch.setattr(
        "vehicle_assessment.evaluation.embedding_maps", lambda *a, **k: {"pca": None, "tsne": None}
    )
    out_dir = Path(data[1]).parent / "evaluation"
    code, out, err = run_cli(capsys, *data, "evaluate", "--out", str(out_dir), "--k", "5")
    assert code == EXIT_OK, err
    agreement = json.loads((out_dir / "metrics.json").read_text())["agreement"]
    assert agreement["photos"] == len(waiting)
    assert f"agreement with reviewers on {len(waiting)} reviewed photos" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["09", "--damaged", "no"], "has no photo '09'"),
        (["01", "--damaged", "yes", "--type", "dent"], "--damaged yes needs --type and --severity"),
        (["01", "--damaged", "no", "--type", "dent"], "an undamaged photo has damage type none"),
        (
            ["01", "--damaged", "no", "--note", "x" * 1001],
            "--note: String should have at most 1000 characters",
        ),
        (["01", "--damaged", "no", "--reviewer", ""], "--reviewer: String should have at least 1 character"),
    ],
)
def test_bad_reviews_are_one_line_and_exit_2(
    assessed: tuple[list[str], dict], capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    data, record = assessed
    code, _, err = run_cli(capsys, *data, "review", record["assessment_id"], *args)
    assert code == EXIT_BAD_INPUT and message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_reviewing_an_unknown_assessment_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "--data-dir", str(tmp_path), "review", "nope", "01", "--damaged", "no")
    assert code == EXIT_BAD_INPUT and "no assessment with id 'nope'" in err
