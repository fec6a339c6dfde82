"""Copy the demo/test subset of ../shared/data/reference into sample_data/ (reproducible).

Picks a fixed number of photos per (damaged, type, severity) label with a seeded shuffle, three
query photos that are NOT in the index, and writes labels.csv (with each photo's licence and
attribution) plus ATTRIBUTION.md. Run from the repository root:

    python scripts/make_sample_data.py --source ../shared/data/reference
"""

from __future__ import annotations

import argparse
import csv
import random
import shutil
from collections import defaultdict
from pathlib import Path

PER_LABEL = {
    ("true", "scratch", "minor"): 14,
    ("true", "scratch", "moderate"): 10,
    ("true", "scratch", "severe"): 4,
    ("true", "dent", "minor"): 10,
    ("true", "dent", "moderate"): 10,
    ("true", "dent", "severe"): 5,
    ("true", "broken", "moderate"): 6,
    ("true", "broken", "severe"): 10,
    ("false", "none", "none"): 20,
}
# One query per kind of answer the demo should show: undamaged, a dent, a severe break.
QUERY_LABELS = [("false", "none", "none"), ("true", "dent", "moderate"), ("true", "broken", "severe")]
SEED = 20261127


def write_attribution(out: Path, rows: list[dict[str, str]]) -> None:
    lines = [
        "# Sample data: sources and licences",
        "",
        "Copied by `scripts/make_sample_data.py` from the project's shared reference set. Each photo's",
        "licence and attribution are also in the `license` and `attribution` columns of the",
        "`labels.csv` beside it.",
        "",
        "- Damaged photos (`*/damaged/`): Roboflow Universe vehicle-damage dataset, CC BY 4.0",
        "  (https://creativecommons.org/licenses/by/4.0/), as published in",
        "  github.com/heliyahasani/lensor_case_study (dataset/). Severity and damage type were derived",
        "  from the dataset's polygon annotations.",
        "- Undamaged photos (`*/undamaged/`): Flickr photos from the test set of github.com/dermotte/LIRE",
        "  (testdata/ferrari), resized to 640 px on the long side. CC BY 2.0",
        "  (https://creativecommons.org/licenses/by/2.0/) or CC BY-SA 2.0",
        "  (https://creativecommons.org/licenses/by-sa/2.0/) as listed below; the CC BY-SA ones stay",
        "  CC BY-SA in any derived form.",
        "",
        "| file | licence | attribution |",
        "|---|---|---|",
    ]
    for row in sorted(rows, key=lambda r: r["path"]):
        if row["damaged"] == "false":
            lines.append(f"| {row['path']} | {row['license']} | {row['attribution']} |")
    (out / "ATTRIBUTION.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, default=Path("../shared/data/reference"))
    parser.add_argument("--out", type=Path, default=Path("sample_data"))
    args = parser.parse_args()

    with (args.source / "labels.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None:
            raise SystemExit(f"{args.source / 'labels.csv'} is empty: expected a header row")
        fields = list(reader.fieldnames)
        rows = list(reader)
    by_label = defaultdict(list)
    for row in sorted(rows, key=lambda r: r["path"]):
        by_label[(row["damaged"], row["damage_type"], row["severity"])].append(row)
    rng = random.Random(SEED)
    chosen, queries = [], []
    for label, count in PER_LABEL.items():
        pool = by_label[label]
        rng.shuffle(pool)
        if label in QUERY_LABELS:
            queries.append(pool.pop())
        chosen.extend(pool[:count])

    if args.out.exists():
        shutil.rmtree(args.out)
    for subset, subset_rows in (("reference", chosen), ("queries", queries)):
        for row in subset_rows:
            target = args.out / subset / row["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(args.source / row["path"], target)
        with (args.out / subset / "labels.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(subset_rows)
    write_attribution(args.out, chosen + queries)
    print(f"{len(chosen)} reference photos and {len(queries)} query photos written to {args.out}")


if __name__ == "__main__":
    main()
