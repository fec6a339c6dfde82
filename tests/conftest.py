"""Shared fixtures. Tests never reach the network: pytest-socket blocks it (see pyproject)."""

from __future__ import annotations

import os
from pathlib import Path

# huggingface_hub reads this when first imported: no test may wait on hub retries.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
TEST_DATA = REPO_ROOT / "tests" / "data"
SAMPLE_DATA = REPO_ROOT / "sample_data"
TINY_MODEL = "tiny-test-clip"


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`vehicle-assessment ARGS` in-process: exit code, stdout, stderr."""
    from vehicle_assessment.cli import main

    try:
        code = main(list(args))
    except SystemExit as exit_:  # argparse usage errors
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="session")
def tiny_model_name() -> str:
    """A 64-d, 2-layer open_clip architecture with random weights (~3.6M parameters)."""
    from vehicle_assessment.adapters.local.openclip_encoder import register_model_config

    register_model_config(TEST_DATA / "models" / f"{TINY_MODEL}.json")
    return TINY_MODEL


@pytest.fixture(scope="session")
def tiny_encoder(tiny_model_name: str):
    from vehicle_assessment.adapters.local.openclip_encoder import load_encoder
    from vehicle_assessment.settings import EncoderSettings

    return load_encoder(EncoderSettings(model_name=tiny_model_name, untrained=True, threads=2))


@pytest.fixture(scope="session")
def sample_index_path(tmp_path_factory: pytest.TempPathFactory, tiny_encoder) -> Path:
    """The sample reference photos embedded once per session with the tiny model."""
    from vehicle_assessment.adapters.local.vector_index import LocalVectorIndex
    from vehicle_assessment.domain.rules import IntakeSettings
    from vehicle_assessment.indexing import build_index, read_labels

    path = tmp_path_factory.mktemp("index") / "reference-index.sqlite3"
    photos, skipped = read_labels(SAMPLE_DATA / "reference", SAMPLE_DATA / "reference" / "labels.csv")
    assert not skipped
    index = LocalVectorIndex(path)
    report = build_index(photos, tiny_encoder, index, IntakeSettings())
    assert report.added == len(photos)
    index.close()
    return path
