"""Typed settings of the AWS adapters.

Plain frozen pydantic models: nothing here reads the environment. The AWS runtime builds them at
its edge (from Lambda environment variables) and hands them to each adapter's ``from_settings``.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator

from vehicle_assessment.adapters.aws.bedrock_models import DEFAULT_BEDROCK_MODEL_ID
from vehicle_assessment.domain import limits
from vehicle_assessment.domain.models import EncoderIdentity

# botocore's standard retry backoff (botocore/retries/standard.py, ExponentialBackoff): before retry i
# (1-based) it sleeps rand(0, 1) * min(scale * 2 ** (i - 1), 20 s), scale being 1 s for throttling (the
# largest), plus up to 5 s more when the response carries x-amz-retry-after. A test checks these
# against botocore's own class, so an upgrade that changes them fails loudly.
BOTOCORE_MAX_BACKOFF_S = 20.0
BOTOCORE_THROTTLING_BASE_S = 1.0
BOTOCORE_RETRY_AFTER_EXTRA_S = 5.0


class AwsSettingsModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AwsClientSettings(AwsSettingsModel):
    """How a boto3 client retries and times out; botocore does the retrying, never our code."""

    # "standard" retries throttling and transient errors with jittered backoff; "adaptive" adds a
    # client-side token bucket that slows the caller down when the service keeps throttling.
    retry_mode: Literal["standard", "adaptive"] = "standard"
    max_attempts: int = Field(default=3, ge=1, le=10, description="attempts in all, the first included")
    # DynamoDB, S3 and Step Functions answer in milliseconds; the read timeout is per socket read,
    # not the whole body, so an S3 photo download is not bounded by it. Services that compute before
    # they answer (Bedrock, SageMaker, Polly) set their own.
    connect_timeout_s: float = Field(default=2.0, gt=0)
    read_timeout_s: float = Field(default=4.0, gt=0)

    def worst_case_s(self) -> float:
        """The longest one call can take: every attempt times out, after the longest backoffs.

        Adaptive mode also waits on a client-side token bucket for as long as the service keeps
        throttling, which no setting bounds: its worst case is infinite, so budgets need "standard".
        """
        if self.retry_mode == "adaptive" and self.max_attempts > 1:
            return math.inf
        backoff = sum(
            min(BOTOCORE_THROTTLING_BASE_S * 2 ** (retry - 1), BOTOCORE_MAX_BACKOFF_S)
            + BOTOCORE_RETRY_AFTER_EXTRA_S
            for retry in range(1, self.max_attempts)
        )
        return self.max_attempts * (self.connect_timeout_s + self.read_timeout_s) + backoff


class SageMakerEncoderSettings(AwsSettingsModel):
    endpoint_name: str = Field(min_length=1, max_length=63)
    identity: EncoderIdentity = Field(description="the encoder the endpoint must serve")
    # Real-time endpoints answer within 60 s or fail; one ViT-L-14 batch of 16 takes well under a
    # second on the GPU, so 20 s means the instance is in trouble: better another attempt (or the
    # state machine's retry) than one wait that outlasts the analyse function (tests/infra budgets).
    client: AwsClientSettings = Field(
        default_factory=lambda: AwsClientSettings(connect_timeout_s=2.0, read_timeout_s=20.0)
    )


class OpenSearchSettings(AwsSettingsModel):
    collection_endpoint: str = Field(
        min_length=1, description="the AOSS collection host, e.g. abc123.us-east-1.aoss.amazonaws.com"
    )
    index_name: str = Field(default="reference-photos", pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    port: int = Field(default=443, gt=0, lt=65536)
    # A k-NN query answers in well under a second; bulk loads (the CLI) may raise it.
    timeout_s: float = Field(default=10.0, gt=0)
    max_retries: int = Field(default=3, ge=0, le=10, description="opensearch-py transport retries")
    # HNSW build parameters (faiss): m links per node, ef_construction candidate list size.
    hnsw_m: int = Field(default=16, ge=2, le=100)
    hnsw_ef_construction: int = Field(default=256, ge=2)
    bulk_chunk_size: int = Field(default=200, ge=1, le=10_000)
    bulk_max_retries: int = Field(default=3, ge=0, le=10, description="retries of documents answered 429")
    bulk_initial_backoff_s: float = Field(default=2.0, ge=0)

    def worst_case_s(self) -> float:
        """opensearch-py resends at once (no backoff) on timeouts and retryable statuses."""
        return self.timeout_s * (1 + self.max_retries)

    @field_validator("collection_endpoint")
    @classmethod
    def _host_only(cls, value: str) -> str:
        # CloudFormation's CollectionEndpoint attribute is a URL; the client wants the bare host.
        host = value.strip().removeprefix("https://").removeprefix("http://").rstrip("/")
        if not host or "/" in host:
            raise ValueError(f"collection_endpoint must be a host name, got {value!r}")
        return host


class BedrockSettings(AwsSettingsModel):
    # A foundation model id or a cross-region profile id; a Nova model id is called through its
    # region's profile (bedrock_models.invocation_model_id).
    model_id: str = Field(default=DEFAULT_BEDROCK_MODEL_ID, min_length=1)
    max_tokens: int = Field(default=512, ge=16, le=8192)
    max_words: int = Field(default=120, ge=10, le=1000, description="word limit stated to the model")
    max_chars: int = Field(default=2500, ge=100, description="hard cap on the text kept")
    # Sent only when set: temperature (from the caller's creativity) is always sent, and newer models
    # (Claude Sonnet 4.5, Haiku 4.5...) refuse temperature and topP in one request.
    top_p: float | None = Field(default=None, gt=0, le=1, description="None leaves topP out of the request")
    # Converse answers once the whole text is written (Nova Lite: ~500 tokens in a few seconds).
    # Standard retries, not adaptive: adaptive's client-side throttling has no bound on its wait,
    # and the describe function's timeout must cover the worst case (tests/infra budgets).
    client: AwsClientSettings = Field(
        default_factory=lambda: AwsClientSettings(connect_timeout_s=2.0, read_timeout_s=30.0)
    )


def api_bedrock_client(deadline_s: float = limits.API_DESCRIBER_DEADLINE_S) -> AwsClientSettings:
    """Bedrock behind API Gateway's 29 s: one attempt, connect + read within ``deadline_s``."""
    connect_s = 2.0
    return AwsClientSettings(
        max_attempts=1, connect_timeout_s=connect_s, read_timeout_s=deadline_s - connect_s
    )


def api_polly_client() -> AwsClientSettings:
    """Polly on the API route, after Bedrock: one short attempt (its failure is recorded, not fatal)."""
    return AwsClientSettings(max_attempts=1, connect_timeout_s=2.0, read_timeout_s=6.0)


def photo_registry_client() -> AwsClientSettings:
    """The reused-photo registry's DynamoDB client: short attempts, two in all.

    The registry gives up at ``limits.PHOTO_REGISTRY_DEADLINE_S`` without waiting for its Queries in
    flight (adapters/aws/photo_registry.py); this bounds how long such a left-over Query keeps its
    thread and connection: one attempt is 2 s at most, the whole call ``worst_case_s()`` (~10 s).
    DynamoDB answers in milliseconds, so 1 s per socket read only cuts off a request in trouble.
    """
    return AwsClientSettings(max_attempts=2, connect_timeout_s=1.0, read_timeout_s=1.0)


class PollyVoice(NamedTuple):
    voice_id: str
    language_code: str


def default_polly_voices() -> dict[str, PollyVoice]:
    # All of these have a neural variant (Polly's voice list, "Neural" column).
    return {
        "en": PollyVoice("Joanna", "en-US"),
        "es": PollyVoice("Lupe", "es-US"),
        "fr": PollyVoice("Lea", "fr-FR"),
        "de": PollyVoice("Vicki", "de-DE"),
        "it": PollyVoice("Bianca", "it-IT"),
        "pt": PollyVoice("Camila", "pt-BR"),
    }


class PollySettings(AwsSettingsModel):
    voices: dict[str, PollyVoice] = Field(default_factory=default_polly_voices)
    engine: Literal["neural", "standard", "generative", "long-form"] = "neural"
    max_chunk_chars: int = Field(
        default=2500, ge=100, le=2900, description="text characters per request (Polly bills up to 3000)"
    )
    # Neural voices start streaming within a second or two for a 2,500-character chunk.
    client: AwsClientSettings = Field(
        default_factory=lambda: AwsClientSettings(connect_timeout_s=2.0, read_timeout_s=10.0)
    )

    @field_validator("voices")
    @classmethod
    def _lower_case_languages(cls, voices: dict[str, PollyVoice]) -> dict[str, PollyVoice]:
        return {language.lower(): voice for language, voice in voices.items()}
