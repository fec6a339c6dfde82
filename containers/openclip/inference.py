"""SageMaker inference handlers for the OpenCLIP embedding endpoint.

The four functions follow the SageMaker inference-toolkit convention, so they can be driven by
``serve.py`` (our own HTTP server), by the toolkit, or called in-process by tests:

  * ``model_fn(model_dir)``          – load the encoder ONCE from ``/opt/ml/model`` (see ``ModelSpec``);
  * ``input_fn(body, content_type)`` – parse an ``endpoint_protocol.EmbedRequest`` into PIL images;
  * ``predict_fn(images, model)``    – one batched forward pass;
  * ``output_fn(prediction, accept)``– ``endpoint_protocol.build_response``.

The wire format lives in ``vehicle_assessment.endpoint_protocol`` and is never redefined here.
Client errors are ``InvocationError`` subclasses carrying their HTTP status (400, 406, 413, 415).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from vehicle_assessment import endpoint_protocol
from vehicle_assessment.adapters.local.openclip_encoder import OpenClipEncoder, register_model_config
from vehicle_assessment.domain.models import EncoderIdentity
from vehicle_assessment.settings import EncoderSettings

logger = logging.getLogger(__name__)

MODEL_SPEC_FILE = "model.json"
JSON = endpoint_protocol.CONTENT_TYPE
# Accept values under which a JSON answer is acceptable (a missing Accept header means "anything").
_ACCEPTABLE = {"", "*/*", "application/*", JSON}
_CHECKPOINT_SUFFIXES = (".bin", ".pt", ".pth", ".safetensors", ".ckpt")


# --- errors ----------------------------------------------------------------------------------


class InvocationError(Exception):
    """A request the endpoint refuses; `status` is the HTTP status the server answers with."""

    status: int = 500
    code: str = "internal_error"

    def body(self) -> bytes:
        return json.dumps({"error": self.code, "message": str(self)}).encode()


class BadRequest(InvocationError):
    status, code = 400, "bad_request"


class NotAcceptable(InvocationError):
    status, code = 406, "not_acceptable"


class PayloadTooLarge(InvocationError):
    status, code = 413, "payload_too_large"


class UnsupportedContentType(InvocationError):
    status, code = 415, "unsupported_content_type"


class ModelConfigError(Exception):
    """``model.json`` is missing, invalid or points at files that are not there."""


# --- model loading ---------------------------------------------------------------------------


class ModelSpec(BaseModel):
    """``<model_dir>/model.json``: which open_clip model to serve and where its weights are.

    All paths are relative to the model directory, so the same directory works baked into the image
    and extracted from ``model.tar.gz``. The container never downloads weights at serving time.

    * ``pretrained`` is either a checkpoint file in the model directory, or an open_clip tag
      (e.g. ``laion2b_s32b_b82k``) whose weights are read from the Hugging Face cache ``hf_cache_dir``.
      Prefer the tag: only then does open_clip apply the tag's preprocessing (mean/std), which
      a bare checkpoint file does not carry.
    * ``model_name`` may be ``hf-hub:org/repo`` (weights and preprocessing from ``hf_cache_dir``).
    * ``architecture_config`` registers an extra open_clip architecture JSON (its file stem must be
      ``model_name``), for custom architectures such as the tests' tiny model.
    * ``pretrained_label`` overrides the ``pretrained`` the endpoint reports in its identity; the
      runtime refuses an endpoint whose identity differs from the configured one. The identity's
      ``weights_fingerprint`` is always that of the weights actually loaded (no label overrides it).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_name: str
    pretrained: str | None = None
    hf_cache_dir: str | None = None
    architecture_config: str | None = None
    untrained: bool = False
    pretrained_label: str | None = None

    @model_validator(mode="after")
    def _one_weight_source(self) -> ModelSpec:
        hub = self.model_name.startswith("hf-hub:")
        if self.untrained and (self.pretrained or hub):
            raise ValueError("untrained models take no pretrained weights (drop `pretrained` or `untrained`)")
        if hub and self.pretrained:
            raise ValueError("hf-hub: models carry their own weights; drop `pretrained`")
        if not (self.untrained or hub or self.pretrained):
            raise ValueError("set `pretrained` (checkpoint file or open_clip tag) or `untrained: true`")
        return self


def _inside(model_dir: Path, relative: str, what: str) -> Path:
    path = (model_dir / relative).resolve()
    if not path.is_relative_to(model_dir.resolve()):
        raise ModelConfigError(f"{what} {relative!r} must lie inside the model directory {model_dir}")
    return path


def read_model_spec(model_dir: Path) -> ModelSpec:
    spec_path = model_dir / MODEL_SPEC_FILE
    try:
        return ModelSpec.model_validate_json(spec_path.read_bytes())
    except FileNotFoundError as exc:
        raise ModelConfigError(
            f"{spec_path} not found: bake the weights into the image (BAKE_WEIGHTS=1) or pass a "
            "model.tar.gz made by prepare_model_dir.py as the model data"
        ) from exc
    except ValidationError as exc:
        raise ModelConfigError(f"{spec_path} is invalid: {_summarise(exc)}") from exc


def encoder_settings(spec: ModelSpec, model_dir: Path, device: str) -> EncoderSettings:
    """Resolve the spec's relative paths against `model_dir` into the encoder's settings."""
    cache_dir = _inside(model_dir, spec.hf_cache_dir, "hf_cache_dir") if spec.hf_cache_dir else None
    pretrained = spec.pretrained
    if pretrained and not spec.untrained:
        checkpoint = _inside(model_dir, pretrained, "pretrained")
        if checkpoint.is_file():
            pretrained = str(checkpoint)
        elif pretrained.endswith(_CHECKPOINT_SUFFIXES) or "/" in pretrained:
            raise ModelConfigError(f"checkpoint {checkpoint} not found in the model directory")
        # else: an open_clip tag, resolved from the HF cache (offline).
    return EncoderSettings(
        model_name=spec.model_name,
        pretrained=pretrained,
        cache_dir=cache_dir,
        untrained=spec.untrained,
        # The protocol caps a request at MAX_IMAGES_PER_REQUEST: every request is one forward pass.
        batch_size=endpoint_protocol.MAX_IMAGES_PER_REQUEST,
        device=device,
    )


def _require_hub_weights(spec: ModelSpec, cache_dir: Path | None) -> None:
    """open_clip only *warns* when an hf-hub repo's weights are missing and builds random weights
    that the identity would still call pretrained: refuse that here."""
    from huggingface_hub import try_to_load_from_cache
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    repo = spec.model_name.removeprefix("hf-hub:")
    for filename in (HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME):
        if isinstance(try_to_load_from_cache(repo, filename, cache_dir=cache_dir), str):
            return
    raise ModelConfigError(f"no weights of {repo} in the Hugging Face cache {cache_dir or '(default)'}")


class DeviceError(Exception):
    """A GPU is expected but torch cannot use one (or the expectation is malformed): never serve on the
    CPU in its place, where ViT-L-14 in fp32 is ~10x slower and nothing else would say so."""


class DeviceExpectation(BaseSettings):
    """Whether the host promises a GPU: ``EXPECT_GPU`` (set by the deployment, infra/constructs/embedding.py,
    on GPU instance types) or ``SM_NUM_GPUS`` > 0 (set by SageMaker's framework containers)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    expect_gpu: bool = False
    sm_num_gpus: int = Field(default=0, ge=0)

    @property
    def gpu_expected(self) -> bool:
        return self.expect_gpu or self.sm_num_gpus > 0

    def describe(self) -> str:
        return f"EXPECT_GPU={str(self.expect_gpu).lower()}, SM_NUM_GPUS={self.sm_num_gpus}"


def select_device(requested: str | None = None) -> str:
    """`requested`, or CUDA when available; raises `DeviceError` when a GPU is expected and unusable."""
    import torch

    try:
        expectation = DeviceExpectation()
    except ValidationError as exc:
        raise DeviceError(f"invalid EXPECT_GPU / SM_NUM_GPUS: {_summarise(exc)}") from exc
    cuda = torch.cuda.is_available()
    if expectation.gpu_expected:
        if not cuda:
            # The usual cause on SageMaker: the host's NVIDIA driver is older than the image's CUDA
            # (ml.g5 hosts run driver 470 / CUDA 11.4 unless the variant sets InferenceAmiVersion).
            raise DeviceError(
                f"a GPU is expected ({expectation.describe()}) but torch {torch.__version__} (built for "
                f"CUDA {torch.version.cuda}) finds no CUDA device; is the host's NVIDIA driver older than "
                "that CUDA? Set the endpoint's InferenceAmiVersion (infra/inference_ami.py). "
                "Refusing to serve on the CPU."
            )
        if requested is not None and not requested.startswith("cuda"):
            raise DeviceError(
                f"a GPU is expected ({expectation.describe()}) but device {requested!r} was asked for"
            )
    device = requested or ("cuda" if cuda else "cpu")
    if device.startswith("cuda"):
        logger.info(
            "device %s: %s; torch %s built for CUDA %s",
            device,
            torch.cuda.get_device_name(device),
            torch.__version__,
            torch.version.cuda,
        )
    else:
        logger.info("device %s (no GPU expected: %s)", device, expectation.describe())
    return device


@dataclass
class LoadedModel:
    encoder: OpenClipEncoder
    identity: EncoderIdentity
    # Threads share one model: concurrent forward passes would only contend for the GPU (or for the
    # CPU's intra-op threads) and multiply peak memory, so they run one at a time.
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class Prediction:
    """What `predict_fn` hands to `output_fn`: the vectors and the model that made them."""

    identity: EncoderIdentity
    embeddings: np.ndarray


def model_fn(model_dir: str | Path, device: str | None = None) -> LoadedModel:
    """Load the model described by ``<model_dir>/model.json``; fp16 on CUDA, fp32 on CPU.

    `device` defaults to CUDA when available (SageMaker calls ``model_fn(model_dir)``).
    """
    model_dir = Path(model_dir)
    spec = read_model_spec(model_dir)
    if spec.architecture_config:
        config = _inside(model_dir, spec.architecture_config, "architecture_config")
        if not config.is_file():
            raise ModelConfigError(f"architecture config {config} not found")
        if config.stem != spec.model_name:
            # open_clip registers a config under its file stem.
            raise ModelConfigError(f"architecture config {config.name} does not define {spec.model_name!r}")
        register_model_config(config)
    settings = encoder_settings(spec, model_dir, device or select_device())
    if spec.model_name.startswith("hf-hub:") and not spec.untrained:
        _require_hub_weights(spec, settings.cache_dir)
    started = time.perf_counter()
    encoder = OpenClipEncoder(settings)
    identity = encoder.identity
    if spec.pretrained_label is not None:
        identity = identity.model_copy(update={"pretrained": spec.pretrained_label})
    elif identity.pretrained is not None and spec.pretrained and Path(identity.pretrained).is_absolute():
        # A checkpoint file: report the path as written in model.json, not where it was extracted.
        identity = identity.model_copy(update={"pretrained": spec.pretrained})
    model = LoadedModel(encoder=encoder, identity=identity)
    # Warm up (CUDA context, kernels) so the first real request does not pay for it.
    predict_fn([Image.new("RGB", (224, 224))], model)
    logger.info(
        "loaded %s on %s (%s) in %.1f s",
        identity.describe(),
        settings.device,
        "fp16" if settings.device.startswith("cuda") else "fp32",
        time.perf_counter() - started,
    )
    for warning in encoder.warnings:
        logger.warning(warning)
    return model


# --- request handling ------------------------------------------------------------------------


def _media_type(header: str | None) -> str:
    return header.split(";", 1)[0].strip().lower() if header else ""


def _summarise(exc: ValidationError) -> str:
    # loc + msg only: pydantic's `input` would echo megabytes of base64 into logs and responses.
    parts = [f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:3]]
    return "; ".join(parts)


def check_accept(accept: str | None) -> None:
    """406 (not 415: that status is about the request body) unless a JSON answer is acceptable."""
    ranges = [_media_type(part) for part in (accept or "").split(",")]
    if not any(media in _ACCEPTABLE for media in ranges):
        raise NotAcceptable(f"the endpoint only answers {JSON}, not {accept!r}")


def input_fn(request_body: bytes | bytearray | str, request_content_type: str | None) -> list[Image.Image]:
    if _media_type(request_content_type) != JSON:
        raise UnsupportedContentType(f"send {JSON}, not {request_content_type!r}")
    body = request_body.encode() if isinstance(request_body, str) else bytes(request_body)
    if len(body) > endpoint_protocol.MAX_REQUEST_BYTES:
        raise PayloadTooLarge(
            f"request of {len(body):,} bytes exceeds {endpoint_protocol.MAX_REQUEST_BYTES:,} bytes"
        )
    try:
        request = endpoint_protocol.EmbedRequest.model_validate_json(body)
    except ValidationError as exc:
        raise BadRequest(f"not an embedding request: {_summarise(exc)}") from exc
    images = []
    for number, encoded in enumerate(request.images):
        try:
            images.append(endpoint_protocol.decode_image(encoded))
        except (ValueError, Image.DecompressionBombError) as exc:
            raise BadRequest(f"images[{number}]: {exc}") from exc
    return images


def predict_fn(data: list[Image.Image], model: LoadedModel) -> Prediction:
    encoder = model.encoder
    # Preprocessing (resize/crop/normalise) is per-request CPU work: done outside the lock.
    batch = encoder.preprocess_batch(data)
    with model.lock:
        embeddings = encoder.embed_tensors(batch)
    return Prediction(identity=model.identity, embeddings=embeddings)


def output_fn(prediction: Prediction, accept: str | None) -> bytes:
    check_accept(accept)
    return endpoint_protocol.build_response(prediction.identity, prediction.embeddings)


def handle_invocation(model: LoadedModel, body: bytes, content_type: str | None, accept: str | None) -> bytes:
    """One /invocations request; refuses a bad Accept before spending a forward pass on it."""
    check_accept(accept)
    return output_fn(predict_fn(input_fn(body, content_type), model), accept)
