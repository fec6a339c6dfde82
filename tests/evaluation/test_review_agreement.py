"""Agreement with reviewers, calibration, and single-source warnings: known answers on constructed data."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from vehicle_assessment.adapters.local.repository import SqliteAssessmentRepository
from vehicle_assessment.adapters.local.vector_index import LocalVectorIndex
from vehicle_assessment.agreement import (
    ReviewedVerdict,
    agreement_metrics,
    cohen_kappa,
    confidence_bucket,
    expected_calibration_error,
    origins_by_class,
    reliability_table,
    reviewed_verdicts,
    single_origin_warnings,
)
from vehicle_assessment.cli import EXIT_OK
from vehicle_assessment.domain.models import (
    Assessment,
    AssessmentInputs,
    AssessmentStatus,
    DamageType,
    Neighbour,
    PhotoRecord,
    PhotoReview,
    PhotoStatus,
    PhotoVerdict,
    ReferenceLabel,
    Severity,
)
from vehicle_assessment.domain.rules import VerdictSettings
from vehicle_assessment.evaluation import evaluate_index, source_metrics
from vehicle_assessment.indexing import origin_of_labels_source

from ..conftest import run_cli

UNDAMAGED = ReferenceLabel(damaged=False, damage_type=DamageType.NONE, severity=Severity.NONE)
MINOR = ReferenceLabel(damaged=True, damage_type=DamageType.SCRATCH, severity=Severity.MINOR)
SEVERE = ReferenceLabel(damaged=True, damage_type=DamageType.BROKEN, severity=Severity.SEVERE)
NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)


def pair(model: ReferenceLabel, reviewer: ReferenceLabel, confidence: float) -> ReviewedVerdict:
    return ReviewedVerdict("a", "01", model, confidence, confidence < 0.7, reviewer)


# --- pure functions ---------------------------------------------------------------------------


def test_confidence_buckets_are_half_open_and_the_last_is_closed() -> None:
    assert confidence_bucket([0.5, 0.59, 0.6, 0.7, 0.89, 0.9, 0.999, 1.0]).tolist() == [
        0,
        0,
        1,
        2,
        3,
        4,
        4,
        4,
    ]


def test_cohen_kappa_known_answers() -> None:
    # Observed 0.75; chance 0.5·0.25 + 0.5·0.75 = 0.5 → κ = 0.5.
    assert cohen_kappa([True, True, False, False], [True, False, False, False]) == pytest.approx(0.5)
    assert cohen_kappa([True, False], [True, False]) == pytest.approx(1.0)
    assert cohen_kappa([True, True], [True, True]) is None  # chance agreement is certain
    assert cohen_kappa([], []) is None


def test_reliability_table_and_expected_calibration_error() -> None:
    confidence = [0.55, 0.55, 0.95, 0.95, 0.95, 0.95]
    correct = [True, False, True, True, True, False]
    table = reliability_table(confidence, correct)
    assert [row["photos"] for row in table] == [2, 0, 0, 0, 4]
    assert table[0]["accuracy"] == 0.5 and table[0]["mean_confidence"] == pytest.approx(0.55)
    assert table[4]["accuracy"] == 0.75 and table[4]["gap"] == pytest.approx(-0.2)
    assert table[1] == {
        "low": 0.6,
        "high": 0.7,
        "photos": 0,
        "mean_confidence": None,
        "accuracy": None,
        "gap": None,
    }
    # 2/6·|0.5−0.55| + 4/6·|0.75−0.95| = 0.01667 + 0.13333 = 0.15
    assert expected_calibration_error(table) == pytest.approx(0.15)
    assert expected_calibration_error(reliability_table([], [])) is None


def test_agreement_on_constructed_reviews() -> None:
    pairs = [
        pair(MINOR, MINOR, 0.95),  # agrees, same severity
        pair(SEVERE, MINOR, 0.95),  # agrees damaged, other severity and type
        pair(UNDAMAGED, MINOR, 0.65),  # missed damage
        pair(UNDAMAGED, UNDAMAGED, 0.65),  # agrees
        pair(MINOR, UNDAMAGED, 0.55),  # false damage
        pair(UNDAMAGED, SEVERE, 0.75),  # missed severe damage
    ]
    metrics = agreement_metrics(pairs, without_verdict=2)
    assert (
        metrics["reviewed_photos"] == 8 and metrics["photos"] == 6 and metrics["without_model_verdict"] == 2
    )
    assert metrics["damaged_agreement"] == pytest.approx(3 / 6)
    assert metrics["severity_agreement"] == pytest.approx(2 / 6)
    assert metrics["damage_type_agreement_when_both_damaged"] == pytest.approx(1 / 2)
    # rows: reviewer undamaged/damaged; cols: model undamaged/damaged
    assert metrics["confusion"]["counts"] == [[1, 1], [2, 2]]
    per = metrics["per_reviewed_severity"]
    assert per["minor"] == {
        "photos": 3,
        "damaged_agreement": pytest.approx(2 / 3),
        "severity_agreement": pytest.approx(1 / 3),
    }
    assert per["severe"] == {"photos": 1, "damaged_agreement": 0.0, "severity_agreement": 0.0}
    assert per["none"]["photos"] == 2 and per["moderate"] == {
        "photos": 0,
        "damaged_agreement": None,
        "severity_agreement": None,
    }
    assert metrics["by_needs_review"] == {
        "needed_review": {"photos": 3, "agreement": pytest.approx(1 / 3)},
        "decided": {"photos": 3, "agreement": pytest.approx(2 / 3)},
    }
    rows = {row["low"]: row for row in metrics["reliability"]}
    assert rows[0.5]["photos"] == 1 and rows[0.5]["accuracy"] == 0.0
    assert rows[0.6]["photos"] == 2 and rows[0.6]["accuracy"] == 0.5
    assert rows[0.7]["photos"] == 1 and rows[0.9]["photos"] == 2 and rows[0.9]["accuracy"] == 1.0
    # 1/6·0.55 + 2/6·|0.5−0.65| + 1/6·0.75 + 2/6·|1−0.95| = 0.0917+0.05+0.125+0.0167
    assert metrics["expected_calibration_error"] == pytest.approx(0.2833, abs=1e-4)


def test_no_reviews_gives_empty_figures_not_errors() -> None:
    metrics = agreement_metrics([])
    assert metrics["photos"] == 0 and metrics["damaged_agreement"] is None
    assert metrics["expected_calibration_error"] is None and metrics["cohen_kappa"] is None


def _verdict(label: ReferenceLabel, confidence: float) -> PhotoVerdict:
    neighbour = Neighbour(reference_id="1", source="s", similarity=0.9, label=label)
    return PhotoVerdict(
        damaged=label.damaged,
        damage_type=label.damage_type,
        severity=label.severity,
        damaged_share=confidence if label.damaged else 1 - confidence,
        confidence=confidence,
        needs_review=confidence < 0.7,
        neighbours=[neighbour],
    )


def _review(label: ReferenceLabel, minutes: int = 0) -> PhotoReview:
    return PhotoReview(
        reviewer="ana",
        reviewed_at=NOW + timedelta(minutes=minutes),
        damaged=label.damaged,
        damage_type=label.damage_type,
        severity=label.severity,
    )


def _photo(photo_id: str, verdict: PhotoVerdict | None, reviews: list[PhotoReview]) -> PhotoRecord:
    return PhotoRecord(
        photo_id=photo_id,
        filename=f"{photo_id}.jpg",
        object_key=f"photos/x/{photo_id}.jpg",
        size_bytes=10,
        sha256=photo_id * 32,
        status=PhotoStatus.ANALYSED if verdict else PhotoStatus.REJECTED,
        verdict=verdict,
        reviews=reviews,
    )


def _assessment(assessment_id: str, photos: list[PhotoRecord], created: datetime = NOW) -> Assessment:
    return Assessment(
        assessment_id=assessment_id,
        vin="1FTMW1T88MFA00001",
        status=AssessmentStatus.COMPLETED,
        created_at=created,
        updated_at=created,
        inputs=AssessmentInputs(vin="1FTMW1T88MFA00001"),
        photos=photos,
    )


def test_reviewed_verdicts_takes_the_last_review_and_counts_photos_without_a_verdict() -> None:
    assessment = _assessment(
        "a1",
        [
            _photo("01", _verdict(MINOR, 0.6), [_review(UNDAMAGED), _review(SEVERE, 5)]),
            _photo("02", _verdict(UNDAMAGED, 0.9), []),  # not reviewed
            _photo("03", None, [_review(MINOR)]),  # rejected, reviewed
        ],
    )
    pairs, without = reviewed_verdicts([assessment])
    assert without == 1
    assert pairs == [ReviewedVerdict("a1", "01", MINOR, 0.6, True, SEVERE)]


# --- sources ----------------------------------------------------------------------------------


def test_origin_is_the_first_word_of_the_labels_source_column() -> None:
    assert origin_of_labels_source("github.com/dermotte/LIRE testdata/ferrari (Flickr photo 1)") == (
        "github.com/dermotte/LIRE"
    )
    assert origin_of_labels_source("") is None and origin_of_labels_source(None) is None


def test_each_class_from_one_source_is_warned_about() -> None:
    by_class = origins_by_class([UNDAMAGED, UNDAMAGED, MINOR], ["street", "street", "closeups"])
    assert by_class == {"undamaged": {"street": 2}, "damaged": {"closeups": 1}}
    warnings = single_origin_warnings(by_class)
    assert len(warnings) == 3
    assert "every undamaged reference (2) comes from one source, street" in warnings[0]
    assert "every damaged reference (1) comes from one source, closeups" in warnings[1]
    assert "no source holds both damaged and undamaged" in warnings[2]


def test_a_source_holding_both_classes_silences_the_warnings_and_unrecorded_ones_are_named() -> None:
    by_class = origins_by_class(
        [UNDAMAGED, MINOR, MINOR, UNDAMAGED], ["street", "closeups", "review", "review"]
    )
    assert single_origin_warnings(by_class) == []
    unrecorded = origins_by_class([UNDAMAGED, MINOR], [None, None])
    assert single_origin_warnings(unrecorded) == [
        "2 references have no recorded source (indexed before sources were kept): "
        "rebuild the index to check them"
    ]


def test_accuracy_within_a_source_judges_photos_by_their_own_source_only() -> None:
    # "mixed" holds both classes, separable within it; "street" only undamaged photos, three lying
    # right on each of mixed's damaged ones: judged with every source, those look undamaged.
    rng = np.random.default_rng(0)
    dim = 16
    rows: list[np.ndarray] = []
    labels: list[ReferenceLabel] = []
    origins: list[str] = []

    def add(vector: np.ndarray, label: ReferenceLabel, origin: str) -> None:
        rows.append(vector)
        labels.append(label)
        origins.append(origin)

    for i in range(6):
        damaged = np.eye(dim)[0] + 0.3 * np.eye(dim)[2 + i]
        add(damaged, MINOR, "mixed")
        add(np.eye(dim)[1] + 0.01 * rng.standard_normal(dim), UNDAMAGED, "mixed")
        for _ in range(3):
            add(damaged + 0.001 * rng.standard_normal(dim), UNDAMAGED, "street")
    matrix = np.asarray(rows, dtype=np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    shas = [str(i) for i in range(len(labels))]
    settings = VerdictSettings(k=3)
    from vehicle_assessment.evaluation import leave_one_out_verdicts

    verdicts = leave_one_out_verdicts(matrix, labels, shas, settings)
    metrics = source_metrics(matrix, labels, shas, origins, verdicts, settings)

    assert metrics["accuracy_by_source"]["mixed"]["accuracy"] == pytest.approx(0.5)  # damaged ones missed
    assert metrics["accuracy_within_source"] == {
        "mixed": {"photos": 12, "accuracy": 1.0, "majority_class_baseline": 0.5}
    }
    assert "street" not in metrics["accuracy_within_source"]
    # Every damaged photo is from "mixed": still one source for that class; but "mixed" holds both.
    assert [w.split(":")[0] for w in metrics["warnings"]] == [
        "every damaged reference (6) comes from one source, mixed"
    ]


def test_the_sample_set_warns_that_each_class_has_one_source(tmp_path: Path, sample_index_path: Path) -> None:
    index = LocalVectorIndex(sample_index_path)
    try:
        result = evaluate_index(index, VerdictSettings(k=5), tmp_path / "out", plots=False)
    finally:
        index.close()
    sources = result.metrics["sources"]
    assert sources["by_class"] == {
        "undamaged": {"github.com/dermotte/LIRE": 20},
        "damaged": {"github.com/heliyahasani/lensor_case_study": 69},
    }
    assert len(sources["warnings"]) == 3 and sources["accuracy_within_source"] == {}
    assert result.metrics["agreement"] is None
    report = result.report_path.read_text()
    assert "every undamaged reference (20) comes from one source, github.com/dermotte/LIRE" in report
    assert "No source holds both classes" in report
    assert "No assessment database" in report


# --- the assessment store: reviewed assessments through an index, and evaluate end to end --------


def _reviewed_store(path: Path) -> SqliteAssessmentRepository:
    repository = SqliteAssessmentRepository(path)
    repository.save(_assessment("plain", [_photo("01", _verdict(MINOR, 0.9), [])], NOW))
    repository.save(_assessment("b", [_photo("01", _verdict(MINOR, 0.6), [_review(UNDAMAGED)])], NOW))
    repository.save(
        _assessment("a", [_photo("01", _verdict(SEVERE, 0.95), [_review(SEVERE)])], NOW - timedelta(days=1))
    )
    return repository


def test_reviewed_assessments_are_read_oldest_first_through_the_partial_index(tmp_path: Path) -> None:
    repository = _reviewed_store(tmp_path / "assessments.sqlite3")
    assert [a.assessment_id for a in repository.reviewed_assessments(page_size=1)] == ["a", "b"]
    with sqlite3.connect(tmp_path / "assessments.sqlite3") as conn:
        plan = " ".join(
            str(row[-1])
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT document FROM assessments WHERE reviewed_photos > 0"
                " AND (created_at, assessment_id) > ('', '') ORDER BY created_at, assessment_id LIMIT 5"
            )
        )
    conn.close()
    assert "assessments_reviewed" in plan and "SCAN assessments" not in plan.replace("USING INDEX", "")


def test_an_assessment_database_from_before_the_column_is_migrated_with_its_counts(tmp_path: Path) -> None:
    path = tmp_path / "assessments.sqlite3"
    reviewed = _assessment("old", [_photo("01", _verdict(MINOR, 0.6), [_review(MINOR)])])
    with sqlite3.connect(path) as conn:
        conn.executescript(
            "CREATE TABLE assessments (assessment_id TEXT PRIMARY KEY, vin TEXT NOT NULL,"
            " status TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,"
            " document TEXT NOT NULL);"
        )
        for assessment in (reviewed, _assessment("plain", [_photo("01", _verdict(MINOR, 0.9), [])])):
            conn.execute(
                "INSERT INTO assessments VALUES (?, ?, ?, ?, ?, ?)",
                (
                    assessment.assessment_id,
                    assessment.vin,
                    assessment.status.value,
                    assessment.created_at.isoformat(),
                    assessment.updated_at.isoformat(),
                    assessment.model_dump_json(),
                ),
            )
    conn.close()

    repository = SqliteAssessmentRepository(path)

    assert [a.assessment_id for a in repository.reviewed_assessments()] == ["old"]
    assert repository.get("plain").assessment_id == "plain"
    SqliteAssessmentRepository(path)  # opening again migrates nothing


def test_cli_evaluate_reports_the_agreement_with_reviewers(
    tmp_path: Path, capsys, monkeypatch, sample_index_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "reference-index.sqlite3").write_bytes(sample_index_path.read_bytes())
    _reviewed_store(data / "assessments.sqlite3")
    out = tmp_path / "out"
    monkeypatch.setattr(
        "vehicle_assessment.evaluation.embedding_maps", lambda *a, **k: {"pca": None, "tsne": None}
    )

    code, stdout, err = run_cli(capsys, "--data-dir", str(data), "evaluate", "--out", str(out), "--k", "5")

    assert code == EXIT_OK, err
    metrics = json.loads((out / "metrics.json").read_text())
    agreement = metrics["agreement"]
    # "a": severe vs severe (agrees); "b": model minor, reviewer undamaged (disagrees).
    assert agreement["photos"] == 2 and agreement["damaged_agreement"] == 0.5
    assert "agreement with reviewers on 2 reviewed photos: 0.500" in stdout
    assert "comes from one source" in err
    assert "## Agreement with reviewers" in (out / "report.md").read_text()
