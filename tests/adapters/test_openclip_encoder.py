"""The in-process OpenCLIP encoder: every way of getting weights, tested with a tiny model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from vehicle_assessment.adapters.local import openclip_encoder
from vehicle_assessment.adapters.local.openclip_encoder import OpenClipEncoder, weights_fingerprint
from vehicle_assessment.domain.models import UNTRAINED_ENCODER_WARNING
from vehicle_assessment.ports import EncoderUnavailable
from vehicle_assessment.settings import EncoderSettings

from ..conftest import TEST_DATA

pytestmark = pytest.mark.slow


def _torch():
    # Imported when a test runs, not at collection: `make test-fast` deselects these without torch.
    import torch

    return torch


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
    _torch().save(tiny_encoder._model.state_dict(), checkpoint)
    loaded = OpenClipEncoder(EncoderSettings(model_name=tiny_model_name, pretrained=str(checkpoint)))
    assert not loaded.identity.untrained
    assert loaded.identity.pretrained == str(checkpoint)
    # The fingerprint names the weights, however they were had.
    assert loaded.identity.weights_fingerprint == tiny_encoder.identity.weights_fingerprint
    np.testing.assert_allclose(loaded.embed(_photos()), tiny_encoder.embed(_photos()), atol=1e-5)


def _hf_cache_snapshot(cache_dir, org: str, name: str):
    """A tiny-model repo laid out as huggingface_hub writes it: models--ORG--NAME/{refs, snapshots}."""
    repo = cache_dir / f"models--{org}--{name}"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    model_cfg = json.loads((TEST_DATA / "models" / "tiny-test-clip.json").read_text())
    (snapshot / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": model_cfg, "preprocess_cfg": {}})
    )
    return snapshot


def test_hf_hub_name_loads_from_a_local_cache_dir(tmp_path, tiny_encoder) -> None:
    snapshot = _hf_cache_snapshot(tmp_path, "yard", "tiny-clip")
    _torch().save(tiny_encoder._model.state_dict(), snapshot / "open_clip_pytorch_model.bin")
    encoder = OpenClipEncoder(EncoderSettings(model_name="hf-hub:yard/tiny-clip", cache_dir=tmp_path))
    assert not encoder.identity.untrained
    assert encoder.identity.pretrained == "hf-hub:yard/tiny-clip"
    assert encoder.identity.weights_fingerprint == tiny_encoder.identity.weights_fingerprint
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


def test_hf_hub_repo_without_weights_is_not_silently_random(tmp_path) -> None:
    # open_clip itself only warns and builds random weights when the repo's weight file is missing.
    _hf_cache_snapshot(tmp_path, "yard", "no-weights")
    with pytest.raises(EncoderUnavailable, match="could not load"):
        OpenClipEncoder(EncoderSettings(model_name="hf-hub:yard/no-weights", cache_dir=tmp_path))


def test_checkpoint_tag_gives_the_tags_preprocessing_and_identity(tmp_path, tiny_encoder) -> None:
    # A ViT-B-32 file published as laion2b_s34b_b79k must be preprocessed like that tag (mean/std),
    # and its vectors must be labelled with the tag, so an index built by tag accepts them.
    import open_clip

    model = open_clip.create_model("ViT-B-32", pretrained=None)
    checkpoint = tmp_path / "open_clip_pytorch_model.bin"
    _torch().save(model.state_dict(), checkpoint)
    settings = EncoderSettings(
        model_name="ViT-B-32", pretrained=str(checkpoint), checkpoint_tag="laion2b_s34b_b79k"
    )
    encoder = OpenClipEncoder(settings)
    assert encoder.identity.pretrained == "laion2b_s34b_b79k" and not encoder.identity.untrained
    tag_cfg = open_clip.get_pretrained_cfg("ViT-B-32", "laion2b_s34b_b79k")
    normalize = encoder._preprocess.transforms[-1]
    assert tuple(normalize.mean) == tuple(tag_cfg.get("mean", open_clip.OPENAI_DATASET_MEAN))
    with pytest.raises(EncoderUnavailable, match="not an open_clip tag"):
        OpenClipEncoder(settings.model_copy(update={"checkpoint_tag": "no-such-tag"}))


def test_the_production_tag_uses_its_own_normalisation() -> None:
    # ViT-L-14 laion2b_s32b_b82k was trained with mean/std 0.5, not CLIP's defaults.
    import open_clip

    from vehicle_assessment.adapters.local.openclip_encoder import _checkpoint_preprocessing

    settings = EncoderSettings(
        pretrained="/weights/open_clip_pytorch_model.bin", checkpoint_tag="laion2b_s32b_b82k"
    )
    preprocessing = _checkpoint_preprocessing(open_clip, settings)
    assert preprocessing["image_mean"] == (0.5, 0.5, 0.5) and preprocessing["image_std"] == (0.5, 0.5, 0.5)


def test_untrained_weights_are_seeded_without_disturbing_the_callers_rng(
    tiny_model_name, monkeypatch
) -> None:
    import torch

    settings = EncoderSettings(model_name=tiny_model_name, untrained=True)
    torch.manual_seed(1234)
    state = torch.random.get_rng_state()
    first, second = OpenClipEncoder(settings), OpenClipEncoder(settings)
    assert torch.equal(torch.random.get_rng_state(), state), "the caller's RNG state is restored"
    first_weights, second_weights = first._model.state_dict(), second._model.state_dict()
    assert all(torch.equal(first_weights[name], second_weights[name]) for name in first_weights)
    assert first.identity == second.identity and first.identity.weights_fingerprint
    assert "weights " + first.identity.weights_fingerprint[:12] in first.identity.describe()

    # Another seed is another model, and the identity says so although the name is the same.
    monkeypatch.setattr(openclip_encoder, "UNTRAINED_SEED_PREFIX", "another-seed/")
    reseeded = OpenClipEncoder(settings)
    assert reseeded.identity.model_name == first.identity.model_name
    assert reseeded.identity.weights_fingerprint != first.identity.weights_fingerprint


def test_fingerprint_sees_a_perturbed_tensor_and_ignores_precision_moves(tiny_encoder) -> None:
    state = {name: tensor.clone() for name, tensor in tiny_encoder._model.state_dict().items()}
    original = weights_fingerprint(state)
    assert original == tiny_encoder.identity.weights_fingerprint
    assert weights_fingerprint(dict(reversed(list(state.items())))) == original  # order-independent
    # The largest tensor is only sampled: a change to all of it (a fine-tune, another init) shows.
    largest = max(state, key=lambda name: state[name].numel())
    assert state[largest].numel() > openclip_encoder.FINGERPRINT_SAMPLE_ELEMENTS
    perturbed = {**state, largest: state[largest] + 1e-3}
    assert weights_fingerprint(perturbed) != original
    # A small tensor is hashed whole: one changed element shows.
    small = next(name for name in state if 1 < state[name].numel() < 1000)
    nudged = state[small].clone()
    nudged.view(-1)[-1] += 1e-6
    assert weights_fingerprint({**state, small: nudged}) != original
    # Same values under another name are other weights, too.
    renamed = {("renamed." + name if name == small else name): tensor for name, tensor in state.items()}
    assert weights_fingerprint(renamed) != original


def _preprocessing_inputs() -> list[Image.Image]:
    """Intake-sized sample photos as the pipeline embeds them, and images of other modes and sizes."""
    from vehicle_assessment.domain.photo import intake_photo
    from vehicle_assessment.domain.rules import IntakeSettings

    from ..conftest import SAMPLE_DATA

    paths = sorted((SAMPLE_DATA / "queries").rglob("*.jpg"))[:6]
    images = [intake_photo(p.read_bytes(), IntakeSettings()).image for p in paths]
    rng = np.random.default_rng(7)
    noise = Image.fromarray(rng.integers(0, 256, (300, 517, 3), dtype=np.uint8))
    return [
        *images,
        noise,
        noise.convert("L"),
        noise.convert("RGBA"),
        noise.convert("P"),
        noise.resize((50, 81)),
    ]


def test_batch_preprocessing_is_bit_identical_to_the_models_own_transform(tiny_encoder) -> None:
    # The encoder does the ToTensor + Normalize arithmetic with numpy, once per batch (torch's
    # per-image ops spent their time in thread fork/join); the tensors must not change by one bit.
    torch = _torch()
    images = _preprocessing_inputs()
    expected = torch.stack([tiny_encoder.preprocess(image) for image in images])
    batch = tiny_encoder.preprocess_batch(images)
    assert batch.dtype == expected.dtype and torch.equal(batch, expected)
    assert np.array_equal(tiny_encoder.embed(images), tiny_encoder.embed_tensors(expected))


def test_batch_preprocessing_is_bit_identical_with_a_tags_normalisation() -> None:
    # ViT-L-14 laion2b_s32b_b82k normalises with 0.5: any mean/std of open_clip's transform must hold.
    import open_clip

    torch = _torch()
    images = _preprocessing_inputs()
    for mean, std in (
        ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        (open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD),
    ):
        transform = open_clip.image_transform(224, is_train=False, mean=mean, std=std)
        tail = openclip_encoder.split_tensor_tail(transform)
        assert tail is not None
        batch = tail.batch([tail.pixels(image) for image in images])
        assert isinstance(batch, np.ndarray)
        assert torch.equal(torch.from_numpy(batch), torch.stack([transform(image) for image in images]))


def test_a_transform_of_another_shape_is_used_as_it_is(tiny_encoder, monkeypatch, caplog) -> None:
    from torchvision import transforms

    assert openclip_encoder.split_tensor_tail(transforms.Compose([transforms.ToTensor()])) is None
    assert openclip_encoder.split_tensor_tail(lambda image: image) is None
    # PIL steps that give images of different sizes cannot be stacked: said, then done image by image.
    torch = _torch()
    uncropped = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,) * 3, (0.5,) * 3)])
    tail = openclip_encoder.split_tensor_tail(uncropped)
    assert tail is not None
    monkeypatch.setattr(tiny_encoder, "_tensor_tail", tail)
    monkeypatch.setattr(tiny_encoder, "_preprocess", lambda image: torch.zeros(3, 4, 4))
    images = [Image.new("RGB", (4, 4)), Image.new("RGB", (5, 4))]
    assert torch.equal(tiny_encoder.preprocess_batch(images), torch.zeros(2, 3, 4, 4))
    assert "not one RGB size" in caplog.text
