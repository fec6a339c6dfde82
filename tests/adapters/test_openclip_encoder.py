"""The in-process OpenCLIP encoder: every way of getting weights, tested with a tiny model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from vehicle_assessment.adapters.local.openclip_encoder import OpenClipEncoder
from vehicle_assessment.domain.models import UNTRAINED_ENCODER_WARNING
from vehicle_assessment.ports import EncoderUnavailable
from vehicle_assessment.settings import EncoderSettings

from ..conftest import TEST_DATA

pytestmark = pytest.mark.slow


def _photos() -> list[Image.Image]:
    return [Image.open(p).convert("RGB") for p in sorted((TEST_DATA / "photos").glob("*.jpg"))]


def test_untrained_encoder_outputs_unit_vectors_deterministically(tiny_encoder) -> None:
    assert tiny_encoder.identity.untrained and tiny_encoder.identity.pretrained is None
    assert tiny_encoder.identity.dimension == 64
    batch = tiny_encoder.embed(_photos())
    assert batch.shape == (2, 64) and batch.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    # The same photo gives the same embedding, alone or in a batch.
    np.testing.assert_allclose(tiny_encoder.embed(_photos()[:1])[0], batch[0], atol=1e-5)
    assert tiny_encoder.embed([]).shape == (0, 64)


def test_batches_larger_than_batch_size_are_split(tiny_model_name) -> None:
    encoder = OpenClipEncoder(EncoderSettings(model_name=tiny_model_name, untrained=True, batch_size=1))
    assert encoder.embed(_photos() * 2).shape == (4, 64)


def test_local_checkpoint_path_loads_those_weights(tmp_path, tiny_encoder, tiny_model_name) -> None:
    checkpoint = tmp_path / "open_clip_pytorch_model.bin"
    torch.save(tiny_encoder._model.state_dict(), checkpoint)
    loaded = OpenClipEncoder(EncoderSettings(model_name=tiny_model_name, pretrained=str(checkpoint)))
    assert not loaded.identity.untrained
    assert loaded.identity.pretrained == str(checkpoint)
    np.testing.assert_allclose(loaded.embed(_photos()), tiny_encoder.embed(_photos()), atol=1e-5)


def test_hf_hub_name_loads_from_a_local_cache_dir(tmp_path, tiny_encoder) -> None:
    # The layout huggingface_hub writes: models--ORG--NAME/{refs/main, snapshots/REV/...}.
    repo = tmp_path / "models--yard--tiny-clip"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    model_cfg = json.loads((TEST_DATA / "models" / "tiny-test-clip.json").read_text())
    (snapshot / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": model_cfg, "preprocess_cfg": {}})
    )
    torch.save(tiny_encoder._model.state_dict(), snapshot / "open_clip_pytorch_model.bin")
    encoder = OpenClipEncoder(EncoderSettings(model_name="hf-hub:yard/tiny-clip", cache_dir=tmp_path))
    assert not encoder.identity.untrained
    assert encoder.identity.pretrained == "hf-hub:yard/tiny-clip"
    np.testing.assert_allclose(encoder.embed(_photos()), tiny_encoder.embed(_photos()), atol=1e-5)


def test_missing_weights_fail_with_instructions(tiny_model_name, tmp_path) -> None:
    settings = EncoderSettings(model_name="ViT-B-32", pretrained="laion2b_s34b_b79k", cache_dir=tmp_path)
    with pytest.raises(EncoderUnavailable) as failure:
        OpenClipEncoder(settings)
    message = str(failure.value)
    assert "ViT-B-32" in message and "VDA_ENCODER__PRETRAINED" in message and "--untrained" in message


def test_fallback_to_untrained_is_explicit_and_loud(tiny_model_name, tmp_path) -> None:
    settings = EncoderSettings(
        model_name="ViT-B-32",
        pretrained=str(tmp_path / "missing.bin"),
        fallback_untrained_model=tiny_model_name,
    )
    encoder = OpenClipEncoder(settings)
    assert encoder.identity.untrained and encoder.identity.model_name == tiny_model_name
    assert any(UNTRAINED_ENCODER_WARNING in w and "RANDOM" in w for w in encoder.warnings)
