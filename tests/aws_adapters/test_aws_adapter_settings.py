from __future__ import annotations

import pytest
from botocore.credentials import Credentials
from pydantic import ValidationError

from vehicle_assessment.adapters.aws.bedrock_describer import BedrockDescriber
from vehicle_assessment.adapters.aws.clients import botocore_config, one_line_reason
from vehicle_assessment.adapters.aws.opensearch_index import OpenSearchReferenceIndex
from vehicle_assessment.adapters.aws.polly_speaker import PollySpeaker
from vehicle_assessment.adapters.aws.sagemaker_encoder import SageMakerEncoder
from vehicle_assessment.adapters.aws.settings import (
    DEFAULT_BEDROCK_MODEL_ID,
    AwsClientSettings,
    BedrockSettings,
    OpenSearchSettings,
    PollySettings,
    PollyVoice,
    SageMakerEncoderSettings,
)

from .conftest import REGION


def test_botocore_config_counts_attempts_in_all() -> None:
    config = botocore_config(
        AwsClientSettings(retry_mode="adaptive", max_attempts=4, connect_timeout_s=1.5, read_timeout_s=20)
    )
    assert config.retries == {"mode": "adaptive", "total_max_attempts": 4}
    assert (config.connect_timeout, config.read_timeout) == (1.5, 20)


def test_settings_are_frozen_and_strict() -> None:
    settings = BedrockSettings()
    with pytest.raises(ValidationError):
        settings.max_tokens = 5  # type: ignore[misc]
    with pytest.raises(ValidationError):
        BedrockSettings(max_token=100)  # a typo is refused, not ignored
    with pytest.raises(ValidationError):
        AwsClientSettings(retry_mode="legacy")


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://abc.us-east-1.aoss.amazonaws.com",
        "abc.us-east-1.aoss.amazonaws.com/",
        " abc.us-east-1.aoss.amazonaws.com",
    ],
)
def test_collection_endpoint_is_reduced_to_its_host(endpoint: str) -> None:
    assert (
        OpenSearchSettings(collection_endpoint=endpoint).collection_endpoint
        == "abc.us-east-1.aoss.amazonaws.com"
    )


def test_collection_endpoint_with_a_path_is_refused() -> None:
    with pytest.raises(ValidationError, match="host name"):
        OpenSearchSettings(collection_endpoint="https://abc.aoss.amazonaws.com/index")


def test_defaults() -> None:
    bedrock, polly = BedrockSettings(), PollySettings()
    assert bedrock.model_id == DEFAULT_BEDROCK_MODEL_ID
    assert bedrock.client.retry_mode == "standard"  # a bounded worst case (adaptive has none)
    assert polly.voices["es"] == PollyVoice("Lupe", "es-US")
    assert polly.engine == "neural"
    assert PollySettings(voices={"EN": ("Matthew", "en-US")}).voices == {"en": PollyVoice("Matthew", "en-US")}


def test_factories_build_configured_clients(aws_credentials, identity) -> None:
    encoder = SageMakerEncoder.from_settings(
        SageMakerEncoderSettings(endpoint_name="vda-encoder", identity=identity), REGION
    )
    assert (
        encoder.identity == identity and encoder.client.meta.service_model.service_name == "sagemaker-runtime"
    )
    assert encoder.client.meta.config.read_timeout == 20.0

    describer = BedrockDescriber.from_settings(BedrockSettings(max_tokens=300), REGION)
    assert describer.max_tokens == 300 and describer.generator == f"bedrock:us.{DEFAULT_BEDROCK_MODEL_ID}"
    assert describer.client.meta.config.retries == {"mode": "standard", "total_max_attempts": 3}
    assert describer.client.meta.region_name == REGION

    speaker = PollySpeaker.from_settings(PollySettings(), REGION)
    assert speaker.client.meta.service_model.service_name == "polly" and "pt" in speaker.voices

    index = OpenSearchReferenceIndex.from_settings(
        OpenSearchSettings(collection_endpoint="abc.us-east-1.aoss.amazonaws.com", max_retries=5),
        REGION,
        identity,
        credentials=Credentials("AKIDEXAMPLE", "secret"),
    )
    assert index.index_name == "reference-photos" and index.expected_identity == identity
    assert index.client.transport.max_retries == 5


def test_one_line_reason_is_short_and_flat() -> None:
    reason = one_line_reason(ValueError("line one\nline two " + "x" * 500), limit=40)
    assert "\n" not in reason and len(reason) == 40 and reason.endswith("…")


def test_worst_case_counts_every_attempt_and_the_longest_backoffs() -> None:
    settings = AwsClientSettings(max_attempts=3, connect_timeout_s=2, read_timeout_s=4)
    # 3 × (2 + 4) + backoffs before retries 1 and 2: (1 + 5) + (2 + 5).
    assert settings.worst_case_s() == 18 + 6 + 7
    assert AwsClientSettings(max_attempts=1, read_timeout_s=16).worst_case_s() == 18
    assert AwsClientSettings(retry_mode="adaptive").worst_case_s() == float("inf")
    assert OpenSearchSettings(collection_endpoint="h", timeout_s=10, max_retries=3).worst_case_s() == 40


def test_worst_case_constants_are_botocores() -> None:
    from botocore.retries.standard import ExponentialBackoff

    from vehicle_assessment.adapters.aws import settings

    assert settings.BOTOCORE_MAX_BACKOFF_S == ExponentialBackoff._MAX_BACKOFF
    assert settings.BOTOCORE_RETRY_AFTER_EXTRA_S == ExponentialBackoff._RETRY_AFTER_MAX_ADDITIONAL
    assert max(ExponentialBackoff._DEFAULT_BACKOFF_CONFIG.values()) == settings.BOTOCORE_THROTTLING_BASE_S
    # The longest sleep botocore itself computes equals ours, retry after retry.
    backoff = ExponentialBackoff(random=lambda: 1.0)

    class Throttled:
        def is_throttling_error_from_context(self, context: object) -> bool:
            return True

    backoff._throttling_detector = Throttled()
    for attempt in range(1, 8):
        context = type("Context", (), {"attempt_number": attempt, "http_response": None})()
        expected = min(2 ** (attempt - 1), settings.BOTOCORE_MAX_BACKOFF_S)
        assert backoff.delay_amount(context) == expected
