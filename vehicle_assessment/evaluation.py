"""How well does the reference index judge its own photos? Leave-one-out k-NN evaluation.

Each labelled reference photo is searched against all the others — never against itself, nor
against another row of the same photo (same sha256), or a duplicate would vote for itself — and
its verdict comes from the same `decide_verdict` and `VerdictSettings` that assess real photos.

The metrics are pure functions over arrays, so they can be checked on synthetic data;
`evaluate_index` ties them to a `LocalVectorIndex` and writes ``metrics.json``, ``report.md``
and PNG plots (matplotlib Agg, scikit-learn PCA/t-SNE; both imported only when plotting).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vehicle_assessment.adapters.local.vector_index import LocalVectorIndex, top_k
from vehicle_assessment.agreement import (
    DAMAGED_NAMES,
    UNRECORDED_ORIGIN,
    agreement_metrics,
    origins_by_class,
    origins_with_both_classes,
    reviewed_verdicts,
    single_origin_warnings,
)
from vehicle_assessment.domain.models import (
    UNTRAINED_ENCODER_WARNING,
    Assessment,
    DamageType,
    EncoderIdentity,
    Neighbour,
    PhotoVerdict,
    ReferenceLabel,
    Severity,
)
from vehicle_assessment.domain.rules import VerdictSettings
from vehicle_assessment.domain.verdict import decide_verdict

DAMAGED_CLASSES = ("undamaged", "damaged")
SEVERITY_CLASSES = (Severity.MINOR.value, Severity.MODERATE.value, Severity.SEVERE.value)
TYPE_CLASSES = (DamageType.SCRATCH.value, DamageType.DENT.value, DamageType.BROKEN.value)
# Predictions for damaged photos may also be "none" (damage missed): a confusion-matrix column.
SEVERITY_PREDICTED = (Severity.NONE.value, *SEVERITY_CLASSES)
TYPE_PREDICTED = (DamageType.NONE.value, *TYPE_CLASSES)
CURVE_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(11))  # 0.50 .. 1.00
TSNE_MAX_POINTS = 2000  # t-SNE takes ~1 min for 2000 points on one core; larger sets are subsampled

PLOT_FILES = (
    "confusion_damaged.png",
    "confusion_severity.png",
    "confusion_type.png",
    "threshold_curve.png",
    "embedding_pca.png",
    "embedding_tsne.png",
)


# --- leave-one-out search --------------------------------------------------------------------


def duplicate_groups(keys: Sequence[str]) -> np.ndarray:
    """An integer group per row; rows with the same key (sha256) share a group."""
    seen: dict[str, int] = {}
    return np.array([seen.setdefault(key, len(seen)) for key in keys], dtype=np.int64)


def leave_one_out_top_k(
    matrix: np.ndarray, groups: np.ndarray, k: int, chunk: int = 1024
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per row, the indices and scores of its k best neighbours outside its own duplicate group.

    Uses the production `top_k`, fetching enough extra rows that dropping the row's own group
    (itself included) still leaves k. Rows are searched in chunks to bound the score matrix.
    A row whose every other row is a duplicate gets empty arrays.
    """
    n = matrix.shape[0]
    group_sizes = np.bincount(groups) if n else np.zeros(0, dtype=np.int64)
    fetch = min(n, k + int(group_sizes.max(initial=0)))
    indices: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    for start in range(0, n, chunk):
        idx, sc = top_k(matrix, matrix[start : start + chunk], fetch)
        for offset, (row_idx, row_sc) in enumerate(zip(idx, sc, strict=True)):
            keep = groups[row_idx] != groups[start + offset]
            indices.append(row_idx[keep][:k])
            scores.append(row_sc[keep][:k])
    return indices, scores


def leave_one_out_verdicts(
    matrix: np.ndarray,
    labels: Sequence[ReferenceLabel],
    sha256s: Sequence[str],
    settings: VerdictSettings,
    sources: Sequence[str] | None = None,
) -> list[PhotoVerdict | None]:
    """The verdict each photo would get from the others; None where no other photo exists."""
    matrix = np.asarray(matrix, dtype=np.float32)
    sources = list(sources) if sources is not None else [str(i) for i in range(len(labels))]
    indices, scores = leave_one_out_top_k(matrix, duplicate_groups(sha256s), settings.k)
    verdicts: list[PhotoVerdict | None] = []
    for row_idx, row_sc in zip(indices, scores, strict=True):
        neighbours = [
            Neighbour(reference_id=str(i), source=sources[i], similarity=float(s), label=labels[i])
            for i, s in zip(row_idx, row_sc, strict=True)
        ]
        verdicts.append(decide_verdict(neighbours, settings) if neighbours else None)
    return verdicts


# --- metrics over arrays ---------------------------------------------------------------------


def accuracy(y_true: Sequence[Any], y_pred: Sequence[Any]) -> float | None:
    truth, predicted = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean(truth == predicted)) if truth.size else None


def confusion_matrix(
    y_true: Sequence[str], y_pred: Sequence[str], rows: Sequence[str], cols: Sequence[str] | None = None
) -> np.ndarray:
    """Counts[i, j] = photos whose truth is rows[i] and prediction cols[j] (cols default to rows)."""
    cols = rows if cols is None else cols
    row_at = {c: i for i, c in enumerate(rows)}
    col_at = {c: j for j, c in enumerate(cols)}
    counts = np.zeros((len(rows), len(cols)), dtype=np.int64)
    for truth, pred in zip(y_true, y_pred, strict=True):
        counts[row_at[truth], col_at[pred]] += 1
    return counts


def per_class_scores(y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str]) -> dict:
    """Precision, recall, F1 and support per class, plus their unweighted (macro) mean.

    A class never predicted has precision None (undefined), and F1 0 if it has support.
    """
    truth, guess = np.asarray(y_true), np.asarray(y_pred)
    out: dict[str, Any] = {}
    f1s = []
    for c in classes:
        tp = int(np.sum((truth == c) & (guess == c)))
        predicted, support = int(np.sum(guess == c)), int(np.sum(truth == c))
        precision = tp / predicted if predicted else None
        recall = tp / support if support else None
        f1 = (
            2 * precision * recall / (precision + recall)
            if precision and recall
            else (0.0 if support else None)
        )
        out[c] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
        if f1 is not None:
            f1s.append(f1)
    out["macro_f1"] = float(np.mean(f1s)) if f1s else None
    return out


def review_split(correct: Sequence[bool], needs_review: Sequence[bool]) -> dict:
    """Share sent to review, and the accuracy of the photos decided automatically."""
    right, review = np.asarray(correct, dtype=bool), np.asarray(needs_review, dtype=bool)
    decided = ~review
    return {
        "needs_review_rate": float(review.mean()) if review.size else None,
        "decided": int(decided.sum()),
        "accuracy_of_decided": float(right[decided].mean()) if decided.any() else None,
    }


def threshold_curve(
    correct: Sequence[bool], confidence: Sequence[float], thresholds: Sequence[float] = CURVE_THRESHOLDS
) -> list[dict]:
    """Coverage (share decided: confidence >= t) and the accuracy of what is decided, per threshold.

    Coverage never rises with the threshold, since each higher threshold decides a subset.
    """
    right, scores = np.asarray(correct, dtype=bool), np.asarray(confidence, dtype=float)
    curve = []
    for t in thresholds:
        decided = scores >= t
        curve.append(
            {
                "threshold": float(t),
                "coverage": float(decided.mean()) if decided.size else 0.0,
                "accuracy": float(right[decided].mean()) if decided.any() else None,
            }
        )
    return curve


def _confusion_json(matrix: np.ndarray, rows: Sequence[str], cols: Sequence[str]) -> dict:
    return {"rows_true": list(rows), "cols_predicted": list(cols), "counts": matrix.tolist()}


def compute_metrics(
    labels: Sequence[ReferenceLabel], verdicts: Sequence[PhotoVerdict | None], settings: VerdictSettings
) -> dict:
    """Every metric of the report from true labels and leave-one-out verdicts (None = unjudged)."""
    judged = [(lab, v) for lab, v in zip(labels, verdicts, strict=True) if v is not None]
    true_dmg = [DAMAGED_CLASSES[lab.damaged] for lab, _ in judged]
    pred_dmg = [DAMAGED_CLASSES[v.damaged] for _, v in judged]
    correct = [t == p for t, p in zip(true_dmg, pred_dmg, strict=True)]
    majority = max((true_dmg.count(c) for c in DAMAGED_CLASSES), default=0)

    damaged_only = [(lab, v) for lab, v in judged if lab.damaged]
    true_sev = [lab.severity.value for lab, _ in damaged_only]
    pred_sev = [v.severity.value for _, v in damaged_only]
    true_type = [lab.damage_type.value for lab, _ in damaged_only]
    pred_type = [v.damage_type.value for _, v in damaged_only]

    review = review_split(correct, [v.needs_review for _, v in judged])
    return {
        "settings": settings.model_dump(),
        "photos": len(labels),
        "judged": len(judged),
        "unjudged_no_other_photo": len(labels) - len(judged),
        "damaged": {
            "accuracy": accuracy(true_dmg, pred_dmg),
            "majority_class_baseline": majority / len(judged) if judged else None,
            "per_class": per_class_scores(true_dmg, pred_dmg, DAMAGED_CLASSES),
            "confusion": _confusion_json(
                confusion_matrix(true_dmg, pred_dmg, DAMAGED_CLASSES), DAMAGED_CLASSES, DAMAGED_CLASSES
            ),
        },
        # Over truly damaged photos; a prediction of "none" means the damage was missed.
        "severity": {
            "photos": len(damaged_only),
            "accuracy": accuracy(true_sev, pred_sev),
            "per_class": per_class_scores(true_sev, pred_sev, SEVERITY_CLASSES),
            "confusion": _confusion_json(
                confusion_matrix(true_sev, pred_sev, SEVERITY_CLASSES, SEVERITY_PREDICTED),
                SEVERITY_CLASSES,
                SEVERITY_PREDICTED,
            ),
        },
        "damage_type": {
            "photos": len(damaged_only),
            "accuracy": accuracy(true_type, pred_type),
            "per_class": per_class_scores(true_type, pred_type, TYPE_CLASSES),
            "confusion": _confusion_json(
                confusion_matrix(true_type, pred_type, TYPE_CLASSES, TYPE_PREDICTED),
                TYPE_CLASSES,
                TYPE_PREDICTED,
            ),
        },
        "review": {"confidence_threshold": settings.confidence_threshold, **review},
        "threshold_curve": threshold_curve(correct, [v.confidence for _, v in judged]),
    }


def evaluate_arrays(
    matrix: np.ndarray,
    labels: Sequence[ReferenceLabel],
    sha256s: Sequence[str],
    settings: VerdictSettings,
) -> dict:
    """Leave-one-out verdicts and their metrics for an (n, d) matrix of unit rows."""
    return compute_metrics(labels, leave_one_out_verdicts(matrix, labels, sha256s, settings), settings)


def source_metrics(
    matrix: np.ndarray,
    labels: Sequence[ReferenceLabel],
    sha256s: Sequence[str],
    origins: Sequence[str | None],
    verdicts: Sequence[PhotoVerdict | None],
    settings: VerdictSettings,
) -> dict[str, Any]:
    """Where each class's references come from, warnings when a class has one source, the
    leave-one-out accuracy per source, and — for each source holding both classes — the accuracy
    when photos are judged by references of their own source only (no source shortcut possible)."""
    by_class = origins_by_class(labels, origins)
    keys = [origin or UNRECORDED_ORIGIN for origin in origins]
    by_source = {}
    for origin in sorted(set(keys)):
        judged = [
            (lab, v)
            for lab, v, key in zip(labels, verdicts, keys, strict=True)
            if key == origin and v is not None
        ]
        by_source[origin] = {
            "photos": len(judged),
            "accuracy": accuracy([lab.damaged for lab, _ in judged], [v.damaged for _, v in judged]),
        }
    within = {}
    for origin in origins_with_both_classes(by_class):
        rows = np.array([key == origin for key in keys])
        subset = [i for i in range(len(labels)) if rows[i]]
        own_labels = [labels[i] for i in subset]
        own = leave_one_out_verdicts(matrix[rows], own_labels, [sha256s[i] for i in subset], settings)
        judged = [(lab, v) for lab, v in zip(own_labels, own, strict=True) if v is not None]
        truth = [lab.damaged for lab, _ in judged]
        majority = max(sum(truth), len(truth) - sum(truth)) / len(truth) if truth else None
        within[origin] = {
            "photos": len(judged),
            "accuracy": accuracy(truth, [v.damaged for _, v in judged]),
            "majority_class_baseline": majority,
        }
    return {
        "by_class": by_class,
        "warnings": single_origin_warnings(by_class),
        "accuracy_by_source": by_source,
        "accuracy_within_source": within,
    }


# --- plots -----------------------------------------------------------------------------------


def label_name(label: ReferenceLabel) -> str:
    return "undamaged" if not label.damaged else f"{label.damage_type.value}/{label.severity.value}"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: Path, notice: str | None) -> None:
    if notice:  # a picture travels without its report: an untrained model's plots say so themselves
        fig.suptitle(notice.upper(), color="red", fontsize=9, fontweight="bold")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_confusion(confusion: dict, title: str, path: Path, notice: str | None) -> None:
    plt = _pyplot()
    counts = np.asarray(confusion["counts"])
    fig, ax = plt.subplots(figsize=(1.2 * counts.shape[1] + 2.5, 1.0 * counts.shape[0] + 2))
    ax.imshow(counts, cmap="Blues", vmin=0, vmax=max(1, int(counts.max(initial=0))))
    ax.set_xticks(range(counts.shape[1]), confusion["cols_predicted"])
    ax.set_yticks(range(counts.shape[0]), confusion["rows_true"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    half = counts.max(initial=0) / 2
    for (i, j), value in np.ndenumerate(counts):
        ax.text(j, i, str(value), ha="center", va="center", color="white" if value > half else "black")
    _save(plt, fig, path, notice)


def _plot_curve(curve: list[dict], threshold: float, path: Path, notice: str | None) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ts = [p["threshold"] for p in curve]
    ax.plot(ts, [p["coverage"] for p in curve], marker="o", label="coverage (decided share)")
    ax.plot(
        ts,
        [np.nan if p["accuracy"] is None else p["accuracy"] for p in curve],
        marker="s",
        label="accuracy of decided",
    )
    ax.axvline(threshold, color="grey", linestyle="--", label=f"configured {threshold:.2f}")
    ax.set_xlabel("confidence threshold")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("damaged/undamaged: coverage vs accuracy")
    ax.legend(loc="lower left")
    _save(plt, fig, path, notice)


def _plot_map(
    points: np.ndarray | None, names: Sequence[str], title: str, path: Path, notice: str | None
) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 5.5))
    if points is None:
        ax.text(0.5, 0.5, "too few photos for this map", ha="center", va="center")
        ax.set_axis_off()
    else:
        cmap = plt.get_cmap("tab10")
        for i, name in enumerate(sorted(set(names), key=lambda s: (s != "undamaged", s))):
            mask = np.array([n == name for n in names])
            ax.scatter(points[mask, 0], points[mask, 1], s=14, color=cmap(i % 10), label=name, alpha=0.8)
        ax.legend(fontsize=7, markerscale=1.5, loc="best")
    ax.set_title(title)
    _save(plt, fig, path, notice)


def embedding_maps(
    matrix: np.ndarray, names: Sequence[str], out_dir: Path, seed: int = 0, notice: str | None = None
) -> dict[str, str | None]:
    """PCA and t-SNE maps of the embeddings coloured by label; returns notes on what was drawn."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    n = matrix.shape[0]
    notes: dict[str, str | None] = {"pca": None, "tsne": None}
    pca = PCA(n_components=2, random_state=seed).fit_transform(matrix) if n >= 3 else None
    _plot_map(pca, names, f"PCA of {n} embeddings", out_dir / "embedding_pca.png", notice)
    if n < 5:
        notes["tsne"] = "skipped: fewer than 5 photos"
        _plot_map(None, names, "t-SNE", out_dir / "embedding_tsne.png", notice)
        return notes
    chosen = np.arange(n)
    if n > TSNE_MAX_POINTS:
        chosen = np.sort(np.random.default_rng(seed).choice(n, TSNE_MAX_POINTS, replace=False))
        notes["tsne"] = f"random sample of {TSNE_MAX_POINTS} of {n} photos"
    # Perplexity must stay below the number of points; ~n/3 keeps tiny sets well-posed.
    perplexity = float(min(30.0, max(2.0, (len(chosen) - 1) / 3)))
    # One thread: t-SNE's OpenMP loops oversubscribe a busy 2-core machine (measured 20x slower).
    with threadpool_limits(limits=1):
        points = TSNE(
            n_components=2, perplexity=perplexity, init="pca", random_state=seed, metric="cosine"
        ).fit_transform(matrix[chosen])
    _plot_map(
        points,
        [names[int(i)] for i in chosen],
        f"t-SNE of {len(chosen)} embeddings (perplexity {perplexity:.0f})",
        out_dir / "embedding_tsne.png",
        notice,
    )
    return notes


# --- report ----------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _scores_table(per_class: dict, classes: Sequence[str]) -> list[str]:
    lines = ["| class | precision | recall | F1 | photos |", "|---|---|---|---|---|"]
    for c in classes:
        s = per_class[c]
        lines.append(
            f"| {c} | {_num(s['precision'])} | {_num(s['recall'])} | {_num(s['f1'])} | {s['support']} |"
        )
    lines.append(f"| macro F1 | | | {_num(per_class['macro_f1'])} | |")
    return lines


def render_report(metrics: dict) -> str:
    encoder = EncoderIdentity.model_validate(metrics["encoder"])
    lines: list[str] = []
    if encoder.untrained:
        lines += [
            "> **WARNING — UNTRAINED ENCODER: THESE NUMBERS ARE NOT MEANINGFUL.**",
            f"> The index was built with random weights ({UNTRAINED_ENCODER_WARNING}). The evaluation",
            "> below only shows that the harness runs; rebuild the index with real weights to measure.",
            "",
        ]
    dmg, sev, typ, rev = metrics["damaged"], metrics["severity"], metrics["damage_type"], metrics["review"]
    settings = metrics["settings"]
    lines += [
        "# Reference index evaluation (leave-one-out k-NN)",
        "",
        f"- index: `{metrics['index']}`",
        f"- encoder: {encoder.describe()}",
        f"- photos: {metrics['photos']} ({metrics['judged']} judged; each searched against the others, "
        f"never itself or a copy with the same sha256; {metrics['duplicate_rows']} rows share a sha256)",
        f"- verdict settings: k = {settings['k']}, damaged share ≥ {settings['damaged_threshold']}, "
        f"confidence threshold {settings['confidence_threshold']}",
        "",
        "## Damaged vs undamaged",
        "",
        f"Accuracy **{_pct(dmg['accuracy'])}** (always guessing the larger class: "
        f"{_pct(dmg['majority_class_baseline'])}).",
        "",
        *_scores_table(dmg["per_class"], DAMAGED_CLASSES),
        "",
        f"Needs review (confidence < {rev['confidence_threshold']}): **{_pct(rev['needs_review_rate'])}**; "
        f"accuracy of the {rev['decided']} photos decided automatically: "
        f"**{_pct(rev['accuracy_of_decided'])}**.",
        "",
        "| threshold | coverage | accuracy of decided |",
        "|---|---|---|",
        *(
            f"| {p['threshold']:.2f} | {_pct(p['coverage'])} | {_pct(p['accuracy'])} |"
            for p in metrics["threshold_curve"]
        ),
        "",
        f"## Severity (over the {sev['photos']} damaged photos; `none` = damage missed)",
        "",
        f"Accuracy {_pct(sev['accuracy'])}.",
        "",
        *_scores_table(sev["per_class"], SEVERITY_CLASSES),
        "",
        f"## Damage type (over the {typ['photos']} damaged photos)",
        "",
        f"Accuracy {_pct(typ['accuracy'])}.",
        "",
        *_scores_table(typ["per_class"], TYPE_CLASSES),
        "",
        "## Plots",
        "",
        *(f"- [{name}]({name})" for name in PLOT_FILES),
    ]
    if metrics.get("maps", {}).get("tsne"):
        lines.append(f"- t-SNE: {metrics['maps']['tsne']}")
    if "sources" in metrics:
        lines += ["", *_sources_section(metrics["sources"])]
    if "agreement" in metrics:
        lines += ["", *_agreement_section(metrics["agreement"])]
    return "\n".join(lines) + "\n"


def _sources_section(sources: dict[str, Any]) -> list[str]:
    lines = ["## Sources of the references", ""]
    lines += [f"- **Warning:** {warning}" for warning in sources["warnings"]]
    if sources["warnings"]:
        lines.append("")
    lines += ["| class | source | references |", "|---|---|---|"]
    for name in DAMAGED_NAMES:
        for origin, count in sorted(sources["by_class"][name].items()):
            lines.append(f"| {name} | {origin} | {count} |")
    lines += ["", "| source | photos judged | accuracy (neighbours from every source) |", "|---|---|---|"]
    for origin, row in sources["accuracy_by_source"].items():
        lines.append(f"| {origin} | {row['photos']} | {_pct(row['accuracy'])} |")
    within = sources["accuracy_within_source"]
    lines.append("")
    if within:
        lines += [
            "Within a source (each photo judged by references of its own source only):",
            "",
            "| source | photos | accuracy | majority-class baseline |",
            "|---|---|---|---|",
        ]
        for origin, row in within.items():
            lines.append(
                f"| {origin} | {row['photos']} | {_pct(row['accuracy'])} "
                f"| {_pct(row['majority_class_baseline'])} |"
            )
    else:
        lines.append("No source holds both classes, so no accuracy within a source can be measured.")
    return lines


def _agreement_section(agreement: dict[str, Any] | None) -> list[str]:
    lines = ["## Agreement with reviewers", ""]
    if agreement is None:
        return [*lines, "No assessment database: nothing reviewed to compare with."]
    if not agreement["photos"]:
        return [
            *lines,
            f"No reviewed photo with a model verdict yet ({agreement['reviewed_photos']} reviewed photos).",
        ]
    sev = agreement["per_reviewed_severity"]
    split = agreement["by_needs_review"]
    lines += [
        f"{agreement['photos']} reviewed photos with a model verdict ({agreement['without_model_verdict']} "
        "reviewed photos had none). The reviewer's decision is taken as the truth. Reviewed photos are "
        "mostly the ones the model was unsure of, so these figures describe those photos, not all photos.",
        "",
        f"- damaged/undamaged agreement: **{_pct(agreement['damaged_agreement'])}** "
        f"(Cohen's κ {_num(agreement['cohen_kappa'])})",
        f"- same severity: {_pct(agreement['severity_agreement'])}; same damage type when both say damaged: "
        f"{_pct(agreement['damage_type_agreement_when_both_damaged'])}",
        f"- photos the model sent to review: {split['needed_review']['photos']}, agreement "
        f"{_pct(split['needed_review']['agreement'])}; decided with confidence: "
        f"{split['decided']['photos']}, agreement {_pct(split['decided']['agreement'])}",
        "",
        "| reviewer's severity | photos | damaged/undamaged agreement | same severity |",
        "|---|---|---|---|",
        *(
            f"| {name} | {row['photos']} | {_pct(row['damaged_agreement'])} "
            f"| {_pct(row['severity_agreement'])} |"
            for name, row in sev.items()
        ),
        "",
        f"Reliability (expected calibration error **{_num(agreement['expected_calibration_error'])}**; "
        "calibrated: accuracy ≈ mean confidence in each bucket):",
        "",
        "| confidence | photos | mean confidence | agreement | gap |",
        "|---|---|---|---|---|",
        *(
            f"| {row['low']:.1f}–{row['high']:.1f} | {row['photos']} | {_num(row['mean_confidence'])} | "
            f"{_pct(row['accuracy'])} | {_num(row['gap'])} |"
            for row in agreement["reliability"]
        ),
    ]
    return lines


# --- the whole evaluation --------------------------------------------------------------------


@dataclass(frozen=True)
class EvaluationResult:
    out_dir: Path
    metrics: dict

    @property
    def report_path(self) -> Path:
        return self.out_dir / "report.md"


def evaluate_index(
    index: LocalVectorIndex,
    settings: VerdictSettings,
    out_dir: Path,
    plots: bool = True,
    reviewed: Iterable[Assessment] | None = None,
) -> EvaluationResult:
    """Evaluate every photo of the index against the rest; write metrics, report and plots.

    `reviewed`: the assessments with reviewed photos, for the agreement with reviewers (None: no
    assessment store to read; the report says so).
    """
    identity = index.identity
    rows, matrix = index.vectors_and_labels()
    if identity is None or not rows:
        raise ValueError(f"the reference index at {index.path} is empty; run `index build` first")
    labels = [r.label for r in rows]
    sha256s = [r.sha256 for r in rows]
    verdicts = leave_one_out_verdicts(matrix, labels, sha256s, settings, [r.source for r in rows])
    metrics = {
        "index": str(index.path),
        "encoder": identity.model_dump(mode="json"),
        "notice": UNTRAINED_ENCODER_WARNING if identity.untrained else None,
        "duplicate_rows": int(len(sha256s) - len(set(sha256s))),
        **compute_metrics(labels, verdicts, settings),
        "reviewed_references": sum(1 for r in rows if r.provenance is not None),
        "sources": source_metrics(matrix, labels, sha256s, [r.origin for r in rows], verdicts, settings),
        "agreement": None if reviewed is None else agreement_metrics(*reviewed_verdicts(reviewed)),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    if plots:
        notice = metrics["notice"]
        _plot_confusion(
            metrics["damaged"]["confusion"], "damaged vs undamaged", out_dir / PLOT_FILES[0], notice
        )
        _plot_confusion(
            metrics["severity"]["confusion"], "severity (damaged photos)", out_dir / PLOT_FILES[1], notice
        )
        _plot_confusion(
            metrics["damage_type"]["confusion"],
            "damage type (damaged photos)",
            out_dir / PLOT_FILES[2],
            notice,
        )
        _plot_curve(
            metrics["threshold_curve"], settings.confidence_threshold, out_dir / PLOT_FILES[3], notice
        )
        metrics["maps"] = embedding_maps(matrix, [label_name(lab) for lab in labels], out_dir, notice=notice)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    (out_dir / "report.md").write_text(render_report(metrics), encoding="utf-8")
    return EvaluationResult(out_dir=out_dir, metrics=metrics)
