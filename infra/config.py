"""Typed deployment settings: every CDK context value the stack reads, validated in one place.

Values come from ``cdk.json``'s ``context`` or ``-c key=value`` on the command line. The CLI hands
``-c`` values over as strings, so fields accept strings pydantic can coerce ("5", "true") and lists
written as JSON (``-c index_loader_principal_arns='["arn:aws:iam::1:role/x"]'``).
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal, TypeVar

from constructs import Node
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from infra import inference_ami
from vehicle_assessment.adapters.aws.bedrock_models import DEFAULT_BEDROCK_MODEL_ID
from vehicle_assessment.aws_runtime.authz import check_origin
from vehicle_assessment.domain import limits
from vehicle_assessment.domain.rules import AssessmentRules, VerdictSettings

# CloudWatch Logs accepts only these retention periods (days), each named as in CDK's
# logs.RetentionDays (the names only: this module does not import the CDK).
LOG_RETENTION_NAMES: dict[int, str] = {
    1: "ONE_DAY",
    3: "THREE_DAYS",
    5: "FIVE_DAYS",
    7: "ONE_WEEK",
    14: "TWO_WEEKS",
    30: "ONE_MONTH",
    60: "TWO_MONTHS",
    90: "THREE_MONTHS",
    120: "FOUR_MONTHS",
    150: "FIVE_MONTHS",
    180: "SIX_MONTHS",
    365: "ONE_YEAR",
    400: "THIRTEEN_MONTHS",
    545: "EIGHTEEN_MONTHS",
    731: "TWO_YEARS",
    1096: "THREE_YEARS",
    1827: "FIVE_YEARS",
    2192: "SIX_YEARS",
    2557: "SEVEN_YEARS",
    2922: "EIGHT_YEARS",
}
_RULES = AssessmentRules()
_VERDICT = _RULES.verdict
# AOSS names: 3-32 characters, lower-case letters, digits and hyphens, starting with a letter.
_AOSS_NAME = r"^[a-z][a-z0-9-]{2,31}$"


class InfraConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # --- encoder endpoint (the only resource billed per hour) ---
    encoder_instance_type: str = Field(default="ml.g5.xlarge", pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
    encoder_min_instances: int = Field(default=1, ge=1, le=10)
    encoder_max_instances: int = Field(default=2, ge=1, le=20)
    # SageMakerVariantInvocationsPerInstance is per minute: one assessment is a handful of calls.
    encoder_invocations_per_instance: int = Field(default=120, ge=1)
    # Must match what the container serves and what the reference index was built with.
    encoder_model_name: str = limits.DEFAULT_ENCODER_MODEL
    encoder_pretrained: str | None = limits.DEFAULT_ENCODER_PRETRAINED
    encoder_dimension: int = Field(default=limits.DEFAULT_ENCODER_DIMENSION, ge=2)
    # A pre-built image instead of building containers/openclip (e.g. an account without Docker).
    encoder_image_uri: str | None = None
    # The GPU host's NVIDIA driver, by SageMaker InferenceAmiVersion (table: infra/inference_ami.py).
    # Without one ml.g5 hosts run driver 470 / CUDA 11.4, too old for the image. "none" for CPU types.
    inference_ami_version: str | None = inference_ami.DEFAULT_INFERENCE_AMI

    # --- models and rules ---
    bedrock_model_id: str = Field(default=DEFAULT_BEDROCK_MODEL_ID, min_length=1)
    expected_photos: int = Field(default=limits.DEFAULT_EXPECTED_PHOTOS, ge=1, le=limits.MAX_EXPECTED_PHOTOS)
    # Defaults and bounds are the verdict rule's own (checked by `_verdict_rule_accepts` below).
    damaged_threshold: float = _VERDICT.damaged_threshold
    confidence_threshold: float = _VERDICT.confidence_threshold
    languages: list[str] = Field(default_factory=lambda: list(_RULES.languages), min_length=1)

    # --- workflow and ingest ---
    map_max_concurrency: int = Field(default=4, ge=1, le=40)
    sweep_timeout_minutes: int = Field(default=60, ge=1)
    sweep_rate_minutes: int = Field(default=15, ge=1, le=1440)
    upload_max_concurrency: int = Field(default=10, ge=2, le=1000, description="SQS event source cap")
    photo_retention_days: int = Field(default=365, ge=1)
    # How long an overwritten or deleted photo (a noncurrent S3 version) is kept. The workflow reads
    # the version it counted, so this is how long the valued evidence outlives a re-upload.
    # None: as long as photo_retention_days.
    replaced_photo_retention_days: int | None = Field(default=None, ge=1)
    assessment_ttl_days: int | None = Field(default=None, ge=1)
    # Upgrading a stack deployed before the review queue (GSI3) and the list route (GSI4): DynamoDB
    # creates at most one GSI per UpdateTable, and CloudFormation fails an update that adds two
    # ("Cannot perform more than one GSI creation or deletion in a single update";
    # https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateTable.html). Deploy once
    # with `-c deferred_table_indexes='["GSI4"]'`, then once without (see README "Upgrading").
    deferred_table_indexes: list[Literal["GSI3", "GSI4"]] = Field(default_factory=list)

    # --- browsers and sign-in ---
    # Web origins allowed to call the API and post uploads from a browser (the API's CORS and the
    # bucket's). Empty: no browser origin (native apps and servers need no CORS). "*" is refused
    # unless cors_allow_any_origin=true says so explicitly.
    cors_allowed_origins: list[str] = Field(default_factory=list)
    cors_allow_any_origin: bool = False
    # The hosted sign-in domain https://<prefix>.auth.<region>.amazoncognito.com: unique per region
    # across all accounts. Unset: "vehicle-assessment-<account id>".
    cognito_domain_prefix: str | None = Field(default=None, pattern=r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
    # Where the hosted sign-in returns the yard app / review page (authorization code + PKCE).
    # Empty: the public client signs in with SRP only (no hosted sign-in redirect).
    cognito_callback_urls: list[str] = Field(default_factory=list)
    cognito_logout_urls: list[str] = Field(default_factory=list)
    # Cognito threat protection (the Plus feature plan): "enforced" blocks risky sign-ins and
    # compromised passwords; "audit" only reports; "off" keeps the cheaper Essentials plan.
    cognito_threat_protection: Literal["enforced", "audit", "off"] = "enforced"

    # --- the reference index built on AWS (a Distributed Map: infra/constructs/index_build.py) ---
    # Manifest rows per batch Lambda; its timeout is computed from this (synth refuses what cannot fit).
    index_build_batch_size: int = Field(default=limits.DEFAULT_INDEX_BUILD_BATCH_SIZE, ge=1, le=100)
    # Batches at once. None: sized to the endpoint, INDEX_BUILD_BATCHES_PER_ENDPOINT_INSTANCE per
    # instance it may scale to (more would only queue at the endpoint and time out).
    index_build_max_concurrency: int | None = Field(default=None, ge=1, le=1000)
    # The share of batches that may fail (after their retries) before the whole build fails.
    index_build_tolerated_failure_percentage: float = Field(default=5.0, ge=0, le=100)
    # Days each build's results (the Map Run's ResultWriter output under index-builds/: every skipped
    # row with its reason) are kept. The CLI reads them when the build ends; this is for a later look.
    index_build_results_retention_days: int = Field(default=30, ge=1)

    # --- vector search ---
    collection_name: str = Field(default="vehicle-references", pattern=_AOSS_NAME)
    index_name: str = Field(default="reference-photos", pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    # Standby replicas in a second AZ double the minimum OCUs billed; off suits a test deployment.
    collection_standby_replicas: bool = True
    # Principals (e.g. an operator role) allowed to load reference photos into the index.
    index_loader_principal_arns: list[str] = Field(default_factory=list)
    # Synth refuses a stack nobody can load reference photos into (every assessment would fail on
    # the empty index) unless this says it is meant (e.g. photos loaded by a principal added later).
    acknowledge_no_index_loader: bool = False

    # --- API ---
    # Create API Gateway's account-wide CloudWatch Logs role (AWS::ApiGateway::Account, one per account
    # and Region, https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-logging.html).
    # Off: the account's role must already be set (API Gateway refuses stage logging otherwise, "CloudWatch
    # Logs role ARN must be set in account settings"); on replaces any role another stack set.
    api_gateway_cloudwatch_role: bool = False
    api_throttle_rate: float = Field(default=50.0, gt=0)
    api_throttle_burst: int = Field(default=100, ge=1)

    # --- operations ---
    removal_policy: Literal["retain", "destroy"] = "retain"
    log_retention_days: int = 30
    alarm_email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")
    lambda_architecture: Literal["arm64", "x86_64"] = "arm64"
    # "pip": real dependencies (PyPI); "skip": sources only, for unit tests of the template.
    bundling: Literal["pip", "skip"] = "pip"

    @field_validator(
        "languages",
        "cors_allowed_origins",
        "index_loader_principal_arns",
        "cognito_callback_urls",
        "cognito_logout_urls",
        mode="before",
    )
    @classmethod
    def _json_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            return (
                json.loads(text)
                if text.startswith("[")
                else [p.strip() for p in text.split(",") if p.strip()]
            )
        return value

    @field_validator(
        "encoder_pretrained", "encoder_image_uri", "alarm_email", "cognito_domain_prefix", mode="before"
    )
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value in ("", "none", "null") else value

    @field_validator("log_retention_days")
    @classmethod
    def _valid_retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_NAMES:
            raise ValueError(f"log_retention_days must be one of {sorted(LOG_RETENTION_NAMES)}")
        return value

    @field_validator("inference_ami_version", mode="before")
    @classmethod
    def _known_inference_ami(cls, value: Any) -> Any:
        if value in ("", "none", "null", None):
            return None
        inference_ami.host_for(value)  # ValueError naming the known versions
        return value

    @field_validator("cognito_domain_prefix")
    @classmethod
    def _domain_prefix_without_reserved_words(cls, value: str | None) -> str | None:
        # Cognito refuses prefixes containing these words:
        # https://docs.aws.amazon.com/cognito/latest/developerguide/cognito-user-pools-assign-domain-prefix.html
        if value and any(word in value for word in ("aws", "amazon", "cognito")):
            raise ValueError("cognito_domain_prefix must not contain 'aws', 'amazon' or 'cognito'")
        return value

    @field_validator("cognito_callback_urls", "cognito_logout_urls")
    @classmethod
    def _redirect_urls(cls, value: list[str]) -> list[str]:
        # Cognito: https, http only for localhost, or an app's own scheme (myapp://); no fragment.
        for url in value:
            scheme, sep, rest = url.partition("://")
            if not sep or not rest or "#" in url or not re.match(r"^[a-z][a-z0-9+.-]*$", scheme):
                raise ValueError(f"{url!r} is not an absolute redirect URL without fragment")
            if scheme == "http" and not re.match(r"^(localhost|127\.0\.0\.1)(:[0-9]+)?(/|$)", rest):
                raise ValueError(f"{url!r}: http redirect URLs are only allowed for localhost")
        return value

    @model_validator(mode="after")
    def _cors_origins(self) -> InfraConfig:
        for origin in self.cors_allowed_origins:
            if origin == "*":
                if not self.cors_allow_any_origin or len(self.cors_allowed_origins) > 1:
                    raise ValueError(
                        "cors_allowed_origins '*' lets every web site call the API from a browser: list the "
                        "origins, or set cors_allow_any_origin=true with '*' alone"
                    )
            else:
                check_origin(origin)
        return self

    @model_validator(mode="after")
    def _inference_ami_needs_a_gpu_instance(self) -> InfraConfig:
        if self.inference_ami_version and not inference_ami.is_nvidia_instance(self.encoder_instance_type):
            raise ValueError(
                f"inference_ami_version {self.inference_ami_version} is for NVIDIA GPU instances, not "
                f"{self.encoder_instance_type}: set inference_ami_version=none"
            )
        return self

    @model_validator(mode="after")
    def _verdict_rule_accepts(self) -> InfraConfig:
        VerdictSettings(
            damaged_threshold=self.damaged_threshold, confidence_threshold=self.confidence_threshold
        )
        return self

    @property
    def noncurrent_version_days(self) -> int:
        """Days a replaced photo version is kept (the upload bucket's noncurrent-version expiration)."""
        return self.replaced_photo_retention_days or self.photo_retention_days

    @property
    def index_build_concurrency(self) -> int:
        """The Distributed Map's MaxConcurrency: the configured value, or sized to the endpoint."""
        if self.index_build_max_concurrency is not None:
            return self.index_build_max_concurrency
        return self.encoder_max_instances * limits.INDEX_BUILD_BATCHES_PER_ENDPOINT_INSTANCE

    @model_validator(mode="after")
    def _scaling_bounds(self) -> InfraConfig:
        if self.encoder_min_instances > self.encoder_max_instances:
            raise ValueError("encoder_min_instances must not exceed encoder_max_instances")
        return self

    @classmethod
    def from_node(cls, node: Node) -> InfraConfig:
        """Read every field from the construct tree's context; absent keys keep their defaults."""
        values = {name: node.try_get_context(name) for name in cls.model_fields}
        try:
            config = cls.model_validate({k: v for k, v in values.items() if v is not None})
        except ValidationError as exc:
            # Name the context keys in the message: that is where the user has to fix them.
            raise ValueError(f"invalid CDK context:\n{exc}") from exc
        config.require_index_loader()
        return config

    def require_index_loader(self) -> None:
        """A deployable stack names who loads the reference index; an empty index fails every photo."""
        if not self.index_loader_principal_arns and not self.acknowledge_no_index_loader:
            raise ValueError(
                "invalid CDK context: no index_loader_principal_arns. The reference index starts empty "
                "and every assessment fails until reference photos are loaded, which only these "
                "principals may do. Deploy with "
                "-c index_loader_principal_arns='[\"arn:aws:iam::<account>:role/<loader>\"]', or with "
                "-c acknowledge_no_index_loader=true if you grant the collection access another way."
            )


def encoder_identity(config: InfraConfig) -> dict[str, Any]:
    """What the endpoint serves; the analyse step and the index refuse any other encoder."""
    return {
        "model_name": config.encoder_model_name,
        "pretrained": config.encoder_pretrained,
        "untrained": False,
        "dimension": config.encoder_dimension,
    }


def rules_json(config: InfraConfig) -> str:
    """WorkflowConfig.rules (AssessmentRules) as the RULES variable: only what the context changes."""
    return json.dumps(
        {
            "verdict": {
                "damaged_threshold": config.damaged_threshold,
                "confidence_threshold": config.confidence_threshold,
            },
            "languages": list(config.languages),
        },
        sort_keys=True,
    )


_RuntimeConfig = TypeVar("_RuntimeConfig", bound=BaseModel)


def synth_runtime_config(kind: type[_RuntimeConfig], config: InfraConfig, **fields: Any) -> _RuntimeConfig:
    """A function's runtime configuration as it would read it, with placeholders for the names only a
    deployment knows (table, bucket, endpoint, collection): for sizing its timeout at synth from the
    runtime's own client settings."""
    return kind.model_validate(
        {
            "table_name": "placeholder",
            "bucket_name": "placeholder",
            "sagemaker": {"endpoint_name": "placeholder", "identity": encoder_identity(config)},
            "opensearch": {"collection_endpoint": "placeholder"},
            **fields,
        }
    )
