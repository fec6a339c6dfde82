"""Typed configuration per function, read from environment variables only when built.

Handlers build these inside a cached ``get_config()``, never at import time, so tests can set the
environment first and a bad value fails the invocation with a clear validation error.
Variable names are the field names in capitals (``TABLE_NAME``, ``BUCKET_NAME``, ...).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from vehicle_assessment.adapters.aws.settings import (
    AwsClientSettings,
    BedrockSettings,
    OpenSearchSettings,
    PollySettings,
    SageMakerEncoderSettings,
    api_bedrock_client,
    api_polly_client,
    photo_registry_client,
)
from vehicle_assessment.aws_runtime.authz import check_origin
from vehicle_assessment.domain import limits
from vehicle_assessment.domain.rules import AssessmentRules
from vehicle_assessment.settings import VpicSettings


class FunctionConfig(BaseSettings):
    # Lambda sets many unrelated variables (AWS_REGION, _HANDLER, ...): ignore what is not ours.
    model_config = SettingsConfigDict(extra="ignore", frozen=True, env_nested_delimiter="__")

    # Lambda sets AWS_REGION in every function's environment.
    aws_region: str = Field(default="us-east-1", min_length=1)
    table_name: str = Field(min_length=3)
    client: AwsClientSettings = Field(default_factory=AwsClientSettings)
    # Optional TTL on assessment items; the table's TTL attribute is ``expires_at``.
    assessment_ttl_days: int | None = Field(default=None, ge=1)


class UploadConfig(FunctionConfig):
    bucket_name: str = Field(min_length=3)
    state_machine_arn: str = Field(pattern=r"^arn:aws[a-z-]*:states:")
    max_upload_bytes: int = Field(default=limits.MAX_PHOTO_BYTES, gt=0)
    expected_photos: int = Field(
        default=limits.DEFAULT_EXPECTED_PHOTOS,
        ge=1,
        le=limits.MAX_EXPECTED_PHOTOS,
        description="for the incoming/ layout",
    )


class SweeperConfig(FunctionConfig):
    # The custom bus the INCOMPLETE events go to (the stack's EventBus construct).
    event_bus_name: str = Field(min_length=1)
    sweep_timeout_minutes: int = Field(default=60, ge=1)
    sweep_batch_limit: int = Field(default=200, ge=1, le=1000)
    # Optional: lets the sweeper restart an assessment whose photos are all in but whose start was lost.
    state_machine_arn: str | None = Field(default=None, pattern=r"^arn:aws[a-z-]*:states:")


class ApiConfig(FunctionConfig):
    """The API works behind API Gateway's 29 s: its clients' worst cases are sized to fit (two
    attempts for DynamoDB and S3; one bounded attempt for Bedrock and Polly) unless configured."""

    client: AwsClientSettings = Field(default_factory=lambda: AwsClientSettings(max_attempts=2))
    bucket_name: str = Field(min_length=3)
    expected_photos: int = Field(default=limits.DEFAULT_EXPECTED_PHOTOS, ge=1, le=limits.MAX_EXPECTED_PHOTOS)
    max_upload_bytes: int = Field(default=limits.MAX_PHOTO_BYTES, gt=0)
    presigned_post_expires_s: int = Field(default=900, ge=60, le=7 * 24 * 3600)
    bedrock: BedrockSettings = Field(default_factory=lambda: BedrockSettings(client=api_bedrock_client()))
    polly: PollySettings = Field(default_factory=lambda: PollySettings(client=api_polly_client()))
    # The workflow's rules (the RULES variable): a review revalues with the same valuation settings.
    rules: AssessmentRules = Field(default_factory=AssessmentRules)
    # Learning from reviews: the reference feedback function (its alias ARN) that a review "as reference"
    # is handed to, asynchronously (aws_runtime/reference_requests.py says why). None: learning is off,
    # said once per container in the log, and each such review is recorded REFERENCE_FAILED with the
    # ReferenceFeedbackFailed metric.
    reference_feedback_function: str | None = Field(default=None, pattern=r"^arn:aws[a-z-]*:lambda:")
    # The asynchronous Invoke answers 202 as soon as Lambda has queued the event: one short attempt, so
    # the review route's worst case stays within the gateway's limit (a failure is recorded, not fatal).
    lambda_client: AwsClientSettings = Field(
        default_factory=lambda: AwsClientSettings(max_attempts=1, connect_timeout_s=1.0, read_timeout_s=2.0)
    )

    @field_validator("bedrock", "polly", mode="before")
    @classmethod
    def _bounded_clients(cls, value: Any, info: Any) -> Any:
        # BEDROCK='{"model_id": ...}' (what the stack sets) keeps the API's bounded client, not the
        # workflow's: only a client given explicitly replaces it.
        if isinstance(value, dict) and "client" not in value:
            client = api_bedrock_client() if info.field_name == "bedrock" else api_polly_client()
            return {**value, "client": client}
        return value

    @model_validator(mode="after")
    def _bedrock_fits_the_gateway(self) -> ApiConfig:
        worst = self.bedrock.client.worst_case_s()
        if worst > limits.API_DESCRIBER_DEADLINE_S:
            raise ValueError(
                f"the API's Bedrock client may wait {worst:.0f} s, more than the "
                f"{limits.API_DESCRIBER_DEADLINE_S} s the regenerate route allows it behind API Gateway's "
                f"{limits.API_GATEWAY_TIMEOUT_S} s: lower its attempts or timeouts"
            )
        return self


class ReferenceFeedbackConfig(FunctionConfig):
    """The reference feedback function: adds a reviewed photo to the OpenSearch index, embedding it
    again with the SageMaker endpoint only when its stored embedding is another encoder's."""

    bucket_name: str = Field(min_length=3)
    # SAGEMAKER='{"endpoint_name": ..., "identity": {...}}': the index's encoder; OPENSEARCH likewise.
    sagemaker: SageMakerEncoderSettings
    opensearch: OpenSearchSettings
    # The workflow's rules (RULES): the intake a reference passes, and whether the photo registry
    # (the stored embeddings) is kept at all.
    rules: AssessmentRules = Field(default_factory=AssessmentRules)
    # The photo registry's own client (PHOTO_REGISTRY_CLIENT): it reads one fingerprint per reference.
    photo_registry_client: AwsClientSettings = Field(default_factory=photo_registry_client)


class CorsSettings(BaseSettings):
    """Browser origins the API answers with CORS headers (CORS_ALLOWED_ORIGINS, a JSON list).

    Read when the API module is imported, not per request: Powertools binds CORS to each route as
    the route is registered. Empty (the default): no browser origin is allowed.
    """

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    cors_allowed_origins: list[str] = Field(default_factory=list)

    @field_validator("cors_allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        # "*" is refused at synth unless explicitly allowed; the infrastructure then passes it on.
        return [origin if origin == "*" else check_origin(origin) for origin in value]


class WorkflowConfig(FunctionConfig):
    bucket_name: str = Field(min_length=3)
    rules: AssessmentRules = Field(default_factory=AssessmentRules)
    vpic: VpicSettings = Field(default_factory=VpicSettings)
    # Lambda's only writable directory; the cache lives as long as the container.
    vpic_cache_path: str = "/tmp/vpic-cache.sqlite3"
    # JSON in the environment, e.g. SAGEMAKER='{"endpoint_name": ..., "identity": {...}}'; only the
    # analyse step needs these two, so they are optional here and checked where used.
    sagemaker: SageMakerEncoderSettings | None = None
    opensearch: OpenSearchSettings | None = None
    bedrock: BedrockSettings = Field(default_factory=BedrockSettings)
    polly: PollySettings = Field(default_factory=PollySettings)
    # The reused-photo registry's own DynamoDB client (PHOTO_REGISTRY_CLIENT), short attempts: its
    # calls give up at limits.PHOTO_REGISTRY_DEADLINE_S, and this bounds the Queries left running then.
    photo_registry_client: AwsClientSettings = Field(default_factory=photo_registry_client)
    # Only Store and MarkFailed publish (and are given the variable); checked where used.
    event_bus_name: str | None = Field(default=None, min_length=1)
