"""In-process OpenCLIP image encoder (local mode, and the model inside the SageMaker container).

Weights come from, in this order of precedence:
  * an ``hf-hub:org/repo`` model name (downloaded to / read from ``cache_dir``);
  * ``pretrained`` as a local checkpoint path (e.g. ``open_clip_pytorch_model.bin``);
  * ``pretrained`` as an open_clip tag (e.g. ``laion2b_s32b_b82k``, fetched via the HF hub cache).
If they cannot be had, loading fails with instructions — unless the user explicitly chose random
weights (``untrained``) or a ``fallback_untrained_model``; then the identity says ``untrained``
and every output carries the warning.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from vehicle_assessment.domain.models import UNTRAINED_ENCODER_WARNING, EncoderIdentity
from vehicle_assessment.ports import EncoderUnavailable
from vehicle_assessment.settings import EncoderSettings

logger = logging.getLogger(__name__)


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
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name, pretrained=None, load_weights=False, device=settings.device
            )
        model.eval()
        self._model = model
        self._preprocess = preprocess
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
            model_name=model_name, pretrained=label, untrained=untrained, dimension=dimension
        )

    def _probe_dimension(self) -> int:
        return int(self.embed([Image.new("RGB", (32, 32))]).shape[1])

    @property
    def identity(self) -> EncoderIdentity:
        return self._identity

    def preprocess(self, image: Image.Image):  # -> torch.Tensor
        """The model's own resize/crop/normalise; usable in worker threads before `embed_tensors`."""
        return self._preprocess(image)

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

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self._identity.dimension), dtype=np.float32)
        torch = self._torch
        outputs = []
        size = self.settings.batch_size
        for start in range(0, len(images), size):
            batch = torch.stack([self._preprocess(image) for image in images[start : start + size]])
            outputs.append(self.embed_tensors(batch))
        return np.concatenate(outputs, axis=0)


@functools.lru_cache(maxsize=2)
def load_encoder(settings: EncoderSettings) -> OpenClipEncoder:
    """One model per process and configuration (creating ViT-L-14 takes seconds)."""
    return OpenClipEncoder(settings)


def register_model_config(path: Path) -> None:
    """Make an extra open_clip architecture (JSON config) loadable by name, e.g. a tiny test model."""
    import open_clip

    open_clip.add_model_config(path)
