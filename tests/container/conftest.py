"""Fixtures for the endpoint container: model directories built from the tiny test model."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from ..conftest import REPO_ROOT, TEST_DATA, TINY_MODEL

# inference.py / serve.py are top-level modules in the image (/opt/program); mirror that here.
CONTAINER_DIR = REPO_ROOT / "containers" / "openclip"
if str(CONTAINER_DIR) not in sys.path:
    sys.path.insert(0, str(CONTAINER_DIR))

TINY_CONFIG = TEST_DATA / "models" / f"{TINY_MODEL}.json"


def write_model_dir(path: Path, spec: dict, checkpoint_from=None) -> Path:
    """A model directory as SageMaker extracts it: model.json, the architecture JSON, weights."""
    import torch

    path.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(TINY_CONFIG, path / TINY_CONFIG.name)
    if checkpoint_from is not None:
        torch.save(checkpoint_from.state_dict(), path / spec["pretrained"])
    (path / "model.json").write_text(json.dumps(spec))
    return path


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_encoder) -> Path:
    """Weights saved from the session's tiny encoder, so both must embed identically."""
    spec = {
        "model_name": TINY_MODEL,
        "pretrained": "open_clip_pytorch_model.bin",
        "architecture_config": TINY_CONFIG.name,
        "pretrained_label": "tiny-weights-v1",
    }
    return write_model_dir(tmp_path_factory.mktemp("model-trained"), spec, tiny_encoder._model)


@pytest.fixture(scope="session")
def served_model(trained_model_dir: Path, tiny_model_name: str):
    import inference

    return inference.model_fn(trained_model_dir, device="cpu")
