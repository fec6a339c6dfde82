"""Leave-one-out evaluation harness: known answers on synthetic embeddings, files, and the CLI."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from vehicle_assessment.adapters.local.vector_index import LocalVectorIndex
from vehicle_assessment.cli import EXIT_NOT_READY, EXIT_OK
from vehicle_assessment.domain.models import DamageType, EncoderIdentity, ReferenceLabel, Severity
from vehicle_assessment.domain.rules import VerdictSettings
from vehicle_assessment.evaluation import (
    PLOT_FILES,
    confusion_matrix,
    evaluate_arrays,
    evaluate_index,
    leave_one_out_top_k,
    leave_one_out_verdicts,
    per_class_scores,
    threshold_curve,
)
from vehicle_assessment.ports import ReferenceItem

from ..conftest import run_cli

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
UNDAMAGED = ReferenceLabel(damaged=False, damage_type=DamageType.NONE, severity=Severity.NONE)
CLUSTER_LABELS = [
    UNDAMAGED,
    ReferenceLabel(damaged=True, damage_type=DamageType.SCRATCH, severity=Severity.MINOR),
    ReferenceLabel(damaged=True, damage_type=DamageType.DENT, severity=Severity.MODERATE),
    ReferenceLabel(damaged=True, damage_type=DamageType.BROKEN, severity=Severity.SEVERE),
]


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _clusters(per_cluster: int = 20, dim: int = 16, noise: float = 0.05, seed: int = 0):
    """One tight cluster per label around orthogonal centres."""
    rng = np.random.default_rng(seed)
    centres = np.eye(dim)[: len(CLUSTER_LABELS)]
    vectors = np.concatenate([c + noise * rng.standard_normal((per_cluster, dim)) for c in centres])
    labels = [lab for lab in CLUSTER_LABELS for _ in range(per_cluster)]
    return _unit(vectors), labels, [f"sha{i}" for i in range(len(labels))]


def test_well_separated_clusters_are_judged_perfectly() -> None:
    matrix, labels, shas = _clusters()
    metrics = evaluate_arrays(matrix, labels, shas, VerdictSettings(k=5))
    assert metrics["judged"] == 80
    assert metrics["damaged"]["accuracy"] == 1.0
    assert metrics["severity"]["accuracy"] == 1.0 and metrics["damage_type"]["accuracy"] == 1.0
    assert metrics["damaged"]["per_class"]["damaged"] == {
        "precision": 1.0,
        "recall": 1.0,
        "f1": 1.0,
        "support": 60,
    }
    assert metrics["review"]["needs_review_rate"] == 0.0
    assert metrics["review"]["accuracy_of_decided"] == 1.0
    assert np.array_equal(metrics["damaged"]["confusion"]["counts"], [[20, 0], [0, 60]])


def test_shuffled_labels_are_near_chance() -> None:
    rng = np.random.default_rng(7)
    n = 400  # two balanced classes of 200
    matrix = _unit(rng.standard_normal((n, 32)))
    labels = [CLUSTER_LABELS[0]] * (n // 2) + [CLUSTER_LABELS[1]] * (n // 2)
    labels = [labels[i] for i in rng.permutation(n)]
    metrics = evaluate_arrays(matrix, labels, [str(i) for i in range(n)], VerdictSettings())
    assert 0.35 <= metrics["damaged"]["accuracy"] <= 0.65


def test_a_photo_never_finds_itself_or_its_duplicate() -> None:
    matrix, labels, shas = _clusters(per_cluster=10)
    # Plant the same photo twice (same sha256, same vector) inside the undamaged cluster, labelled
    # damaged once and undamaged once: neither copy may vote for the other.
    planted = matrix[0] + 0.0
    matrix = np.vstack([matrix, planted, planted])
    damaged = CLUSTER_LABELS[3]
    labels = [*labels, damaged, UNDAMAGED]
    shas = [*shas, "dup", "dup"]
    groups = np.array([*range(40), 40, 40])
    indices, _ = leave_one_out_top_k(matrix, groups, k=5)
    for row, found in enumerate(indices):
        assert row not in found
    assert 41 not in indices[40] and 40 not in indices[41]
    # With k=1, a copy voting for itself would make the damaged copy "damaged".
    verdicts = leave_one_out_verdicts(matrix, labels, shas, VerdictSettings(k=1))
    assert verdicts[40] is not None and not verdicts[40].damaged
    assert all(n.source not in {"40", "41"} for n in verdicts[40].neighbours)


def test_only_duplicates_leaves_a_photo_unjudged() -> None:
    matrix = _unit(np.ones((2, 4)))
    verdicts = leave_one_out_verdicts(matrix, [UNDAMAGED, UNDAMAGED], ["same", "same"], VerdictSettings())
    assert verdicts == [None, None]


def test_threshold_curve_coverage_is_monotone() -> None:
    rng = np.random.default_rng(1)
    confidence = rng.uniform(0.5, 1.0, 300)
    correct = rng.random(300) < confidence  # higher confidence, more often right
    curve = threshold_curve(correct, confidence)
    coverages = [p["coverage"] for p in curve]
    assert curve[0]["threshold"] == 0.5 and curve[-1]["threshold"] == 1.0
    assert coverages[0] == 1.0
    assert all(a >= b for a, b in itertools.pairwise(coverages))


def test_confusion_and_scores_on_known_arrays() -> None:
    truth = ["minor", "minor", "severe", "moderate"]
    pred = ["minor", "none", "severe", "severe"]
    counts = confusion_matrix(
        truth, pred, ["minor", "moderate", "severe"], ["none", "minor", "moderate", "severe"]
    )
    assert counts.tolist() == [[1, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 1]]
    scores = per_class_scores(truth, pred, ["minor", "moderate", "severe"])
    assert scores["minor"]["precision"] == 1.0 and scores["minor"]["recall"] == 0.5
    assert scores["moderate"]["precision"] is None and scores["moderate"]["f1"] == 0.0
    assert scores["severe"]["precision"] == 0.5 and scores["severe"]["recall"] == 1.0


def _synthetic_index(path: Path, untrained: bool) -> LocalVectorIndex:
    matrix, labels, shas = _clusters(per_cluster=8)
    index = LocalVectorIndex(path)
    index.bind(
        EncoderIdentity(
            model_name="synthetic",
            pretrained=None if untrained else "x",
            untrained=untrained,
            dimension=16,
            weights_fingerprint="5" * 64,
        )
    )
    index.add(
        [
            ReferenceItem(source=f"p{i}.jpg", sha256=s, label=lab, vector=v)
            for i, (v, lab, s) in enumerate(zip(matrix, labels, shas, strict=True))
        ]
    )
    return index


@pytest.mark.parametrize("untrained", [True, False])
def test_evaluate_index_writes_every_file(tmp_path: Path, untrained: bool) -> None:
    index = _synthetic_index(tmp_path / "index.sqlite3", untrained)
    result = evaluate_index(index, VerdictSettings(k=3), tmp_path / "out")
    index.close()
    for name in PLOT_FILES:
        assert (tmp_path / "out" / name).read_bytes()[:8] == PNG_MAGIC, name
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["photos"] == 32 and metrics["damaged"]["accuracy"] == 1.0
    assert metrics["encoder"]["model_name"] == "synthetic"
    report = result.report_path.read_text()
    assert "synthetic" in report and "100.0 %" in report
    if untrained:
        assert report.startswith("> **WARNING") and "NOT MEANINGFUL" in report.splitlines()[0]
    else:
        assert "not meaningful" not in report.lower()


@pytest.mark.slow
def test_cli_evaluate_on_the_tiny_model_index(tmp_path, capsys, monkeypatch, sample_index_path) -> None:
    for name in [n for n in __import__("os").environ if n.startswith("VDA_")]:
        monkeypatch.delenv(name)
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(sample_index_path, data / "reference-index.sqlite3")
    out = tmp_path / "eval"
    code, stdout, err = run_cli(capsys, "--data-dir", str(data), "evaluate", "--out", str(out), "--k", "5")
    assert code == EXIT_OK, err
    assert str(out / "report.md") in stdout
    assert "not meaningful" in err.lower()  # the tiny model is untrained: said on stderr too
    for name in [*PLOT_FILES]:
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["photos"] == 89 and metrics["settings"]["k"] == 5
    assert "NOT MEANINGFUL" in (out / "report.md").read_text().splitlines()[0]


def test_cli_evaluate_refuses_an_empty_index(tmp_path, capsys, monkeypatch) -> None:
    for name in [n for n in __import__("os").environ if n.startswith("VDA_")]:
        monkeypatch.delenv(name)
    code, _, err = run_cli(capsys, "--data-dir", str(tmp_path / "empty"), "evaluate")
    assert code == EXIT_NOT_READY
    assert "empty" in err and "index build" in err


def test_cli_evaluate_rejects_a_bad_threshold(tmp_path, capsys) -> None:
    code, _, err = run_cli(capsys, "--data-dir", str(tmp_path), "evaluate", "--confidence-threshold", "1.5")
    assert code == 2 and "confidence" in err
