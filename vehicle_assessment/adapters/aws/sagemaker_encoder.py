"""ImageEncoder on a SageMaker real-time endpoint that speaks `endpoint_protocol`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import boto3
import numpy as np
from botocore.exceptions import BotoCoreError, ClientError
from PIL import Image
from pydantic import ValidationError

from vehicle_assessment import endpoint_protocol
from vehicle_assessment.adapters.aws.clients import make_boto3_client, one_line_reason
from vehicle_assessment.adapters.aws.settings import SageMakerEncoderSettings
from vehicle_assessment.domain.models import EncoderIdentity
from vehicle_assessment.ports import EncoderUnavailable, IndexMismatch

logger = logging.getLogger(__name__)

# What `identity` sends when it must ask the endpoint which weights it serves: any image will do.
PROBE_IMAGE_SIZE = (32, 32)


class EncoderIdentityMismatch(IndexMismatch):
    """The endpoint serves another model than the one configured (and the index was built with)."""


class SageMakerEncoder:
    """One invoke_endpoint call per batch of up to `MAX_IMAGES_PER_REQUEST` images.

    The endpoint's schema caps a request at 16 images and 6 MB, so a larger batch is sent as several
    requests (a request over 6 MB is halved); the usual assessment (a handful of photos) is one call.

    Every answer names the model that made it, weights fingerprint included. `identity` is the
    configured one where that pins the fingerprint; otherwise it is the identity the endpoint
    serves (which must conform to the configured one), learned from the first answer.
    """

    def __init__(
        self,
        client: Any,
        endpoint_name: str,
        identity: EncoderIdentity,
        max_images_per_request: int = endpoint_protocol.MAX_IMAGES_PER_REQUEST,
    ) -> None:
        if not 1 <= max_images_per_request <= endpoint_protocol.MAX_IMAGES_PER_REQUEST:
            raise ValueError(f"max_images_per_request must be 1..{endpoint_protocol.MAX_IMAGES_PER_REQUEST}")
        self.client = client
        self.endpoint_name = endpoint_name
        self._identity = identity
        self._served: EncoderIdentity | None = identity if identity.weights_fingerprint else None
        self.max_images_per_request = max_images_per_request

    @classmethod
    def from_settings(
        cls, settings: SageMakerEncoderSettings, region: str, session: boto3.Session | None = None
    ) -> SageMakerEncoder:
        client = make_boto3_client("sagemaker-runtime", region, settings.client, session)
        return cls(client, settings.endpoint_name, settings.identity)

    @property
    def configured_identity(self) -> EncoderIdentity:
        """What the deployment asks for; without a fingerprint it names the model, not its weights."""
        return self._identity

    @property
    def identity(self) -> EncoderIdentity:
        """The served encoder, fingerprint included: an index is checked against this before use."""
        if self._served is None:
            # The configuration names the model but not its weights: ask the endpoint, once.
            logger.info(
                "asking SageMaker endpoint %s which weights it serves (configured: %s)",
                self.endpoint_name,
                self._identity.describe(),
            )
            self._embed_batch([Image.new("RGB", PROBE_IMAGE_SIZE)])
        if self._served is None:  # _parse sets it on every accepted answer
            raise EncoderUnavailable(f"SageMaker endpoint {self.endpoint_name} did not identify its model")
        return self._served

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self._identity.dimension), dtype=np.float32)
        size = self.max_images_per_request
        parts = [self._embed_batch(images[start : start + size]) for start in range(0, len(images), size)]
        return np.concatenate(parts, axis=0)

    def _embed_batch(self, images: Sequence[Image.Image]) -> np.ndarray:
        try:
            body = endpoint_protocol.build_request(images)
        except ValueError as exc:  # over the endpoint's 6 MB payload limit
            if len(images) == 1:
                raise EncoderUnavailable(f"one photo alone is too large for the endpoint: {exc}") from exc
            half = len(images) // 2
            return np.concatenate([self._embed_batch(images[:half]), self._embed_batch(images[half:])])
        return self._parse(self._invoke(body), expected=len(images))

    def _invoke(self, body: bytes) -> bytes:
        try:
            # botocore's retry config has already retried throttling and 5xx when this raises.
            response = self.client.invoke_endpoint(
                EndpointName=self.endpoint_name,
                Body=body,
                ContentType=endpoint_protocol.CONTENT_TYPE,
                Accept=endpoint_protocol.CONTENT_TYPE,
            )
        except (ClientError, BotoCoreError) as exc:
            raise EncoderUnavailable(
                f"SageMaker endpoint {self.endpoint_name} failed: {one_line_reason(exc)}"
            ) from exc
        with response["Body"] as stream:
            return stream.read()

    def _check_served(self, served: EncoderIdentity) -> None:
        if served.weights_fingerprint is None:
            raise EncoderIdentityMismatch(
                f"SageMaker endpoint {self.endpoint_name} serves {served.describe()} without a weights "
                "fingerprint, so no index can be checked against it; redeploy it with the current container"
            )
        if not served.conforms_to(self._identity):
            raise EncoderIdentityMismatch(
                f"SageMaker endpoint {self.endpoint_name} serves {served.describe()}, but this "
                f"deployment is configured for {self._identity.describe()}; redeploy the endpoint or "
                "change the configured encoder (and rebuild the reference index)"
            )
        if self._served is not None and served != self._served:
            # E.g. a redeployment with other weights under the same name while this process runs.
            raise EncoderIdentityMismatch(
                f"SageMaker endpoint {self.endpoint_name} now serves {served.describe()}, not "
                f"{self._served.describe()} as before; vectors of the two cannot be compared"
            )
        self._served = served

    def _parse(self, raw: bytes, expected: int) -> np.ndarray:
        try:
            parsed = endpoint_protocol.EmbedResponse.model_validate_json(raw)
        except ValidationError as exc:
            summary = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
            raise EncoderUnavailable(
                f"SageMaker endpoint {self.endpoint_name} answered an unreadable response: {summary}"
            ) from exc
        self._check_served(parsed.model)
        try:
            vectors = parsed.as_array()
        except ValueError as exc:
            raise EncoderUnavailable(f"SageMaker endpoint {self.endpoint_name}: {exc}") from exc
        if vectors.shape[0] != expected:
            raise EncoderUnavailable(
                f"SageMaker endpoint {self.endpoint_name} returned {vectors.shape[0]} embeddings "
                f"for {expected} images"
            )
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        if not np.all(np.isfinite(norms)) or np.any(norms == 0):
            raise EncoderUnavailable(
                f"SageMaker endpoint {self.endpoint_name} returned a zero or non-finite embedding"
            )
        # The endpoint promises unit rows; normalise anyway, since cosine search relies on it.
        return (vectors / norms).astype(np.float32)
