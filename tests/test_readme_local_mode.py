"""README's local-mode section runs as written: its files exist, its settings and counts are true."""

from __future__ import annotations

import csv
import glob
import re
import shlex

import pytest

from .conftest import REPO_ROOT, SAMPLE_DATA

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
SECTION = README.split("## Local mode\n", 1)[1].split("\n## ", 1)[0]
COMMANDS = re.search(r"```bash\n(.*?)```", SECTION, re.DOTALL)


def _commands() -> list[list[str]]:
    assert COMMANDS, "the local-mode section has a bash block"
    text = COMMANDS.group(1).replace("\\\n", " ")
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    return [shlex.split(line) for line in lines if line]


def test_every_path_in_the_commands_exists() -> None:
    paths = [
        word
        for words in _commands()
        for word in words
        if word.startswith("sample_data/") or word.lower().endswith((".jpg", ".jpeg", ".png", ".webp"))
    ]
    assert any(p.endswith(".jpg") for p in paths), "the assess example names photos"
    for path in paths:
        assert glob.glob(str(REPO_ROOT / path)), f"{path} (in the README) matches no file"


def test_the_demo_settings_are_stated() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    demo_env = re.search(r"^DEMO_ENV := (.*)$", makefile, re.MULTILINE)
    assert demo_env
    settings = [s for s in demo_env.group(1).split() if not s.startswith("VDA_DATA_DIR=")]
    assert settings, "DEMO_ENV sets the offline settings"
    for setting in settings:
        assert setting in SECTION, f"{setting} (Makefile DEMO_ENV) is not in the README's local mode"


def _label_counts(labels: csv.DictReader) -> tuple[int, int]:
    rows = list(labels)
    damaged = sum(1 for row in rows if row["damaged"] == "true")
    return damaged, len(rows) - damaged


def test_the_shipped_reference_photo_counts_are_true() -> None:
    with (SAMPLE_DATA / "reference" / "labels.csv").open(newline="") as handle:
        damaged, undamaged = _label_counts(csv.DictReader(handle))
    assert f"**{damaged + undamaged}** labelled reference photos" in SECTION
    assert f"({damaged} damaged, {undamaged} undamaged;" in SECTION


def test_the_full_set_count_is_true() -> None:
    candidates = [
        root / "shared" / "data" / "reference" / "labels.csv" for root in (REPO_ROOT.parent, REPO_ROOT)
    ]
    labels = next((c for c in candidates if c.is_file()), None)
    if labels is None:
        pytest.skip("the shared data set is not next to this checkout")
    with labels.open(newline="") as handle:
        damaged, undamaged = _label_counts(csv.DictReader(handle))
    assert f"**{damaged + undamaged}** photos ({damaged} damaged, {undamaged} undamaged)" in SECTION
