"""In-process OpenCLIP image encoder (local mode, and the model inside the SageMaker container).

Weights come from, in this order of precedence:
  * an ``hf-hub:org/repo`` model name (downloaded to / read from ``cache_dir``);
  * ``pretrained`` as a local checkpoint path (e.g. ``open_clip_pytorch_model.bin``);
  * ``pretrained`` as an open_clip tag (e.g. ``laion2b_s32b_b82k``, fetched via the HF hub cache).
If they cannot be had, loading fails with instructions — unless the user explicitly chose random
weights (``untrained``) or a ``fallback_untrained_model``; then the identity says ``untrained``
and every output carries the warning.

Random weights are not random per process: they are drawn from a torch generator seeded with
`untrained_seed(model_name)`, so every process builds the same untrained model and the same photo
always embeds the same. Whatever the weights, the identity carries `weights_fingerprint`
(see `weights_fingerprint`), so an index refuses vectors of other weights even under the same name.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
from PIL import Image

from vehicle_assessment.domain.models import UNTRAINED_ENCODER_WARNING, EncoderIdentity
from vehicle_assessment.ports import EncoderUnavailable
from vehicle_assessment.settings import EncoderSettings

logger = logging.getLogger(__name__)


# The seed of untrained weights: sha256 of this prefix + the model name, first 8 bytes (big-endian).
UNTRAINED_SEED_PREFIX = "vehicle-assessment/untrained/"
# Elements hashed per tensor: all of a tensor up to this size, an evenly strided sample of larger ones.
FINGERPRINT_SAMPLE_ELEMENTS = 65_536
_FINGERPRINT_SCHEME = b"vehicle-assessment/weights-fingerprint/v1\0"


def untrained_seed(model_name: str) -> int:
    """The fixed seed the untrained weights of `model_name` are drawn with (documented in README)."""
    digest = hashlib.sha256(f"{UNTRAINED_SEED_PREFIX}{model_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


@contextlib.contextmanager
def seeded_initialisation(torch: Any, seed: int) -> Iterator[None]:
    """Run model creation with the CPU generator seeded, then restore the caller's RNG state.

    open_clip builds every model on the CPU before moving it to its device, so only the CPU
    generator decides the initial weights; `fork_rng(devices=[])` saves and restores just that one,
    and seeding `default_generator` (not `torch.manual_seed`) leaves the CUDA generators untouched.
    """
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        yield


def weights_fingerprint(state: Mapping[str, Any]) -> str:
    """sha256 over a canonical serialisation of a model's state dict (parameters and buffers).

    Every tensor contributes its name, dtype and shape, and its values: all of them for tensors of up
    to FINGERPRINT_SAMPLE_ELEMENTS elements, an evenly strided sample of that many for larger ones.
    This bounds the cost (ViT-L-14 has ~430M parameters) while any re-initialisation, fine-tune or
    different checkpoint changes it; a change confined to unsampled elements of a large tensor is
    the one thing it cannot see. Hash the weights as loaded, before any fp16 cast, so the same
    checkpoint gives the same fingerprint on CPU and GPU.
    """
    import torch

    same_width_integer = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
    digest = hashlib.sha256(_FINGERPRINT_SCHEME)
    for name in sorted(state):
        tensor = state[name].detach()
        flat = tensor.reshape(-1)
        step = max(1, -(-flat.numel() // FINGERPRINT_SAMPLE_ELEMENTS))  # ceil division
        # Reinterpreted as same-width integers (bfloat16 has no numpy type); numpy's strided copy is
        # ~10x faster than torch's for this gather. Every supported host is little-endian.
        sample = flat[::step].cpu().view(same_width_integer[tensor.element_size()]).numpy()
        header = f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0{step}\0"
        digest.update(header.encode())
        digest.update(sample.tobytes())
    return digest.hexdigest()


def _weights_help(settings: EncoderSettings) -> str:
    return (
        "To supply weights: (a) download the checkpoint on a connected machine and set "
        "VDA_ENCODER__PRETRAINED=/path/to/open_clip_pytorch_model.bin with "
        f"VDA_ENCODER__CHECKPOINT_TAG={settings.pretrained or 'TAG'}; or (b) copy a Hugging Face "
        "cache that holds them and set VDA_ENCODER__CACHE_DIR "
        f"(now {settings.cache_dir or 'the HF default'}); "
        "or (c) choose random weights explicitly with --untrained (verdicts are then not meaningful)."
    )


def _checkpoint_preprocessing(open_clip, settings: EncoderSettings) -> dict:
    """The published tag's preprocessing for a checkpoint file loaded by path.

    open_clip applies a tag's mean/std only when loading by tag (ViT-L-14 laion2b_s32b_b82k uses 0.5,
    not CLIP's defaults); the same weights loaded from a file would otherwise embed differently.
    """
    if not settings.checkpoint_tag or settings.untrained:
        return {}
    cfg = open_clip.get_pretrained_cfg(settings.model_name, settings.checkpoint_tag)
    if not cfg:
        raise EncoderUnavailable(
            f"{settings.checkpoint_tag!r} is not an open_clip tag of {settings.model_name}; "
            f"known: {', '.join(open_clip.list_pretrained_tags_by_model(settings.model_name))}"
        )
    return {
        "image_mean": cfg.get("mean"),
        "image_std": cfg.get("std"),
        "image_interpolation": cfg.get("interpolation"),
        "image_resize_mode": cfg.get("resize_mode"),
    }


@dataclass(frozen=True)
class _TensorTail:
    """open_clip's transform split where it leaves PIL: the PIL steps (resize, crop, RGB), then the
    ToTensor + Normalize arithmetic, done here by numpy on the whole batch."""

    pil_steps: Callable[[Image.Image], Image.Image]
    mean: np.ndarray  # (3, 1, 1) float32, as torchvision's normalize casts it
    std: np.ndarray

    def pixels(self, image: Image.Image) -> np.ndarray:
        return np.asarray(self.pil_steps(image))

    def batch(self, pixels: Sequence[np.ndarray]) -> np.ndarray | str:
        """The PIL steps' arrays as the (n, 3, h, w) float32 batch ToTensor + Normalize give, or why
        they cannot make one (then nothing is done)."""
        shapes = {(a.shape, a.dtype.str) for a in pixels}
        if (
            len(shapes) != 1
            or len(pixels[0].shape) != 3
            or pixels[0].shape[2] != 3
            or pixels[0].dtype != np.uint8
        ):
            return f"the PIL steps gave arrays {sorted(shapes)}, not one RGB size"
        height, width, _ = pixels[0].shape
        batch = np.empty((len(pixels), 3, height, width), dtype=np.float32)
        for slot, array in zip(batch, pixels, strict=True):
            slot[...] = array.transpose(2, 0, 1)  # HWC uint8 -> CHW float32, exact
        batch /= np.float32(255)
        batch -= self.mean
        batch /= self.std
        return batch


@dataclass(frozen=True)
class PreparedImage:
    """An image made ready for `OpenClipEncoder.embed_prepared` on the caller's thread."""

    image: Image.Image
    pixels: np.ndarray | None  # the PIL steps' result; None when the transform cannot be split


def split_tensor_tail(preprocess: Any) -> _TensorTail | None:
    """The batch form of `preprocess` when it ends in ToTensor + Normalize, as open_clip's do; None
    for any other transform (then each image goes through `preprocess` itself).

    Why: torchvision runs ToTensor and Normalize as five torch ops per image on a 150k-element
    tensor, each split over torch's intra-op threads; their fork/join, not the arithmetic, was most
    of the preprocessing time, and under load a multiple of it. numpy does the same float32
    operations in the same order (x / 255, then - mean, then / std), so the tensors are bit-identical
    (tests/adapters/test_openclip_encoder.py checks it against the model's own transform).
    """
    from open_clip.transform import MaybeToTensor
    from torchvision import transforms

    steps = list(getattr(preprocess, "transforms", []))
    if len(steps) < 2:
        return None
    to_tensor, normalize = steps[-2:]
    if type(to_tensor) not in (transforms.ToTensor, MaybeToTensor):
        return None
    if type(normalize) is not transforms.Normalize or len(normalize.mean) != 3 or len(normalize.std) != 3:
        return None
    return _TensorTail(
        pil_steps=transforms.Compose(steps[:-2]),
        mean=np.asarray(normalize.mean, dtype=np.float32).reshape(3, 1, 1),
        std=np.asarray(normalize.std, dtype=np.float32).reshape(3, 1, 1),
    )


class OpenClipEncoder:
    """Loads the model once; `embed` runs whole batches under `torch.inference_mode`."""

    def __init__(self, settings: EncoderSettings) -> None:
        import open_clip  # heavy: imported only when an encoder is really built
        import torch

        self._torch = torch
        self.settings = settings
        self.warnings: list[str] = []
        if settings.threads:
            torch.set_num_threads(settings.threads)
        cache_dir = str(settings.cache_dir) if settings.cache_dir else None

        model_name, pretrained, untrained = settings.model_name, settings.pretrained, settings.untrained
        if model_name.startswith("hf-hub:"):
            pretrained = None  # the hub repo carries its own weights
        if untrained:
            pretrained = None
        # A bad checkpoint_tag is a configuration error: never a reason to fall back.
        preprocessing = _checkpoint_preprocessing(open_clip, settings)
        try:
            with seeded_initialisation(torch, untrained_seed(model_name)):
                model, _, preprocess = open_clip.create_model_and_transforms(
                    model_name,
                    pretrained=pretrained,
                    load_weights=not untrained,
                    # open_clip only warns and goes on with random weights when an hf-hub repo lacks them.
                    require_pretrained=not untrained,
                    cache_dir=cache_dir,
                    device=settings.device,
                    **preprocessing,
                )
        except Exception as exc:  # open_clip/HF raise RuntimeError, OSError, HTTP errors...
            if settings.fallback_untrained_model is None:
                raise EncoderUnavailable(
                    f"could not load {model_name} weights ({pretrained or 'hf-hub'}): {exc}. "
                    + _weights_help(settings)
                ) from exc
            model_name, pretrained, untrained = settings.fallback_untrained_model, None, True
            message = (
                f"could not load {settings.model_name} [{settings.pretrained}] ({exc}); falling back to "
                f"{model_name} with RANDOM weights as configured — {UNTRAINED_ENCODER_WARNING}"
            )
            logger.warning(message)
            self.warnings.append(message)
            with seeded_initialisation(torch, untrained_seed(model_name)):
                model, _, preprocess = open_clip.create_model_and_transforms(
                    model_name, pretrained=None, load_weights=False, device=settings.device
                )
        model.eval()
        # Before the fp16 cast: the fingerprint names the weights, not the precision they run in.
        fingerprint = weights_fingerprint(model.state_dict())
        self._model = model
        self._preprocess = preprocess
        self._tensor_tail = split_tensor_tail(preprocess)
        if self._tensor_tail is None:
            logger.info(
                "%s: its preprocessing does not end in ToTensor + Normalize; each image is "
                "preprocessed by its own transform (slower, same result)",
                model_name,
            )
        self._half = settings.device.startswith("cuda")
        if self._half:
            self._model = self._model.half()
        dimension = int(getattr(model.visual, "output_dim", 0)) or self._probe_dimension()
        if untrained:
            label = None
        elif pretrained:
            label = settings.checkpoint_tag or str(pretrained)
        else:
            label = model_name  # hf-hub: the repo name says which weights
        self._identity = EncoderIdentity(
            model_name=model_name,
            pretrained=label,
            untrained=untrained,
            dimension=dimension,
            weights_fingerprint=fingerprint,
        )
        if untrained:
            logger.info(
                "untrained %s: weights seeded with %d, fingerprint %s",
                model_name,
                untrained_seed(model_name),
                fingerprint[:12],
            )

    def _probe_dimension(self) -> int:
        return int(self.embed([Image.new("RGB", (32, 32))]).shape[1])

    @property
    def placement(self) -> tuple[str, str]:
        """Where the weights live and their dtype, e.g. ("cuda:0", "torch.float16")."""
        parameter = next(self._model.parameters())
        return str(parameter.device), str(parameter.dtype)

    @property
    def identity(self) -> EncoderIdentity:
        return self._identity

    def preprocess(self, image: Image.Image):  # -> torch.Tensor
        """The model's own resize/crop/normalise; usable in worker threads before `embed_tensors`."""
        return self._preprocess(image)

    def prepare(self, image: Image.Image) -> PreparedImage:
        """The per-image part of preprocessing (resize, crop: most of its time), on the caller's
        thread: the local pipeline and the index build do it in their intake threads, so only the
        batch arithmetic and the forward pass wait for the batch."""
        tail = self._tensor_tail
        return PreparedImage(image=image, pixels=tail.pixels(image) if tail is not None else None)

    def preprocess_batch(self, images: Sequence[Image.Image]):  # -> torch.Tensor (n, 3, h, w) float32
        """`preprocess` of each image, stacked: bit-identical, with the tensor arithmetic done once
        for the batch by numpy (see split_tensor_tail)."""
        return self._stack([self.prepare(image) for image in images])

    def _stack(self, prepared: Sequence[PreparedImage]):  # -> torch.Tensor (n, 3, h, w) float32
        torch = self._torch
        pixels = [item.pixels for item in prepared]
        if self._tensor_tail is not None and pixels and all(array is not None for array in pixels):
            batch = self._tensor_tail.batch(cast(list[np.ndarray], pixels))
            if isinstance(batch, np.ndarray):
                return torch.from_numpy(batch)
            logger.warning(
                "%s: %s; each image is preprocessed by its own transform", self._identity.describe(), batch
            )
        return torch.stack([self._preprocess(item.image) for item in prepared])

    def embed_tensors(self, batch) -> np.ndarray:  # batch: torch.Tensor (n, 3, h, w)
        torch = self._torch
        with torch.inference_mode():
            batch = batch.to(self.settings.device)
            if self._half:
                batch = batch.half()
            features = self._model.encode_image(batch).float()
            # open_clip's encode_image output is not normalised; cosine search needs unit rows.
            features = torch.nn.functional.normalize(features, dim=-1)
        return features.cpu().numpy().astype(np.float32)

    def embed_prepared(self, prepared: Sequence[PreparedImage]) -> np.ndarray:
        """`prepare`d images in, an (n, d) float32 array of L2-normalised rows out (batches of
        settings.batch_size)."""
        if not prepared:
            return np.zeros((0, self._identity.dimension), dtype=np.float32)
        size = self.settings.batch_size
        parts = [
            self.embed_tensors(self._stack(prepared[start : start + size]))
            for start in range(0, len(prepared), size)
        ]
        return np.concatenate(parts, axis=0)

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.embed_prepared([self.prepare(image) for image in images])


@functools.lru_cache(maxsize=2)
def load_encoder(settings: EncoderSettings) -> OpenClipEncoder:
    """One model per process and configuration (creating ViT-L-14 takes seconds)."""
    return OpenClipEncoder(settings)


def register_model_config(path: Path) -> None:
    """Make an extra open_clip architecture (JSON config) loadable by name, e.g. a tiny test model."""
    import open_clip

    open_clip.add_model_config(path)
