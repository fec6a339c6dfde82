"""The embedding endpoint's request/response format, shared by the SageMaker container and the
runtime encoder adapter, so the two can never drift apart.

Request  (``Content-Type: application/json``)::

    {"images": ["<base64 PNG>", ...]}          # all photos of one assessment, already through intake

Response (``application/json``)::

    {"model": {"model_name": ..., "pretrained": ..., "untrained": false, "dimension": 768,
               "weights_fingerprint": "<sha256 hex of the loaded weights>"},
     "embeddings": [[...768 floats, L2-normalised...], ...]}

The fingerprint (see ``openclip_encoder.weights_fingerprint``) lets the runtime check the reference
index against the weights the endpoint really serves, not just their name.

Images travel as lossless PNG of the intake's embedding copy, so the endpoint embeds exactly the
pixels local mode embeds.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from vehicle_assessment.domain.models import EncoderIdentity

CONTENT_TYPE = "application/json"
MAX_IMAGES_PER_REQUEST = 16
# SageMaker real-time endpoints accept request payloads up to 6 MB.
MAX_REQUEST_BYTES = 6 * 1024 * 1024


class EmbedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    images: list[str] = Field(min_length=1, max_length=MAX_IMAGES_PER_REQUEST)


class EmbedResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: EncoderIdentity
    embeddings: list[list[float]]

    def as_array(self) -> np.ndarray:
        array = np.asarray(self.embeddings, dtype=np.float32)
        if array.ndim != 2 or array.shape[1] != self.model.dimension:
            raise ValueError(
                f"embeddings of shape {array.shape} do not match dimension {self.model.dimension}"
            )
        return array


def encode_image(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_image(encoded: str) -> Image.Image:
    """Raises ValueError on anything that is not a base64 PNG/JPEG image."""
    try:
        raw = base64.b64decode(encoded, validate=True)
        image = Image.open(io.BytesIO(raw))
        image.load()
    except (ValueError, OSError) as exc:
        raise ValueError(f"not a base64-encoded image: {exc}") from exc
    return image.convert("RGB")


def build_request(images: Sequence[Image.Image]) -> bytes:
    body = EmbedRequest(images=[encode_image(image) for image in images]).model_dump_json().encode()
    if len(body) > MAX_REQUEST_BYTES:
        raise ValueError(
            f"embedding request of {len(body):,} bytes exceeds "
            f"the endpoint's {MAX_REQUEST_BYTES:,}-byte limit"
        )
    return body


def build_response(identity: EncoderIdentity, embeddings: np.ndarray) -> bytes:
    return (
        EmbedResponse(model=identity, embeddings=embeddings.astype(float).tolist()).model_dump_json().encode()
    )
