"""Builds the ports and clients the handlers need, lazily: nothing here runs at import time.

boto3 and the AWS adapters (which import boto3, opensearch-py, ...) are imported inside the
builders, so importing a handler stays cheap and a step only pays for the clients it uses. Handlers
cache what these return (``functools.lru_cache`` on a ``get_*()``), one set per Lambda container.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from vehicle_assessment.aws_runtime.config import (
    ApiConfig,
    FunctionConfig,
    ReferenceFeedbackConfig,
    SweeperConfig,
    UploadConfig,
    WorkflowConfig,
)

if TYPE_CHECKING:
    from vehicle_assessment.adapters.aws.bedrock_describer import FallbackListener
    from vehicle_assessment.adapters.aws.dynamodb import DynamoAssessmentRepository
    from vehicle_assessment.adapters.aws.settings import (
        AwsClientSettings,
        OpenSearchSettings,
        SageMakerEncoderSettings,
    )
    from vehicle_assessment.domain.models import EncoderIdentity
    from vehicle_assessment.domain.rules import IntakeSettings
    from vehicle_assessment.learning import ReembedListener
    from vehicle_assessment.ports import (
        Describer,
        EventPublisher,
        ImageEncoder,
        MediaLinks,
        ObjectStore,
        PhotoRegistry,
        ReferenceFeedback,
        ReferenceIndex,
        Speaker,
        VinDecoder,
        WritableReferenceIndex,
    )
    from vehicle_assessment.reviewing import ReferenceRequester


@functools.lru_cache(maxsize=1)
def boto3_session() -> Any:
    """One session per container: credentials resolved once, clients share it."""
    import boto3

    return boto3.Session()


def aws_client(service: str, config: FunctionConfig) -> Any:
    from vehicle_assessment.adapters.aws.clients import make_boto3_client

    return make_boto3_client(service, config.aws_region, config.client, boto3_session())


def build_s3_presigning_client(config: ApiConfig) -> Any:
    """The S3 client the API signs upload forms with (SigV4, the bucket's regional URL)."""
    from vehicle_assessment.adapters.aws.clients import make_s3_presigning_client

    return make_s3_presigning_client(config.aws_region, config.client, boto3_session())


def build_media_links(config: ApiConfig, presigning_client: Any) -> MediaLinks:
    """Presigned GETs on the photo bucket, signed by ``presigning_client`` (build_s3_presigning_client)."""
    from vehicle_assessment.adapters.aws.s3_media_links import S3MediaLinks

    return S3MediaLinks(presigning_client, config.bucket_name)


def assessment_table(config: FunctionConfig, client: AwsClientSettings | None = None) -> Any:
    """The boto3 Table of the assessment table, with ``client``'s settings (retries, timeouts): the
    function's own unless given."""
    from vehicle_assessment.adapters.aws.clients import botocore_config

    resource = boto3_session().resource(
        "dynamodb", region_name=config.aws_region, config=botocore_config(client or config.client)
    )
    return resource.Table(config.table_name)


def build_repository(config: FunctionConfig) -> DynamoAssessmentRepository:
    from vehicle_assessment.adapters.aws.dynamodb import DynamoAssessmentRepository

    return DynamoAssessmentRepository(assessment_table(config), ttl_days=config.assessment_ttl_days)


def build_photo_registry(config: WorkflowConfig | ReferenceFeedbackConfig) -> PhotoRegistry | None:
    """The reused-photo check's registry (items in the assessment table), or None when the check is
    switched off (RULES__REUSE__ENABLED=false)."""
    if not config.rules.reuse.enabled:
        return None
    from vehicle_assessment.adapters.aws.photo_registry import DynamoPhotoRegistry

    # Its own client (short attempts): the registry's calls give up at their deadline, and the Queries
    # still in flight then end within this client's worst case (photo_registry_client).
    return DynamoPhotoRegistry(
        assessment_table(config, config.photo_registry_client),
        config.rules.reuse,
        ttl_days=config.assessment_ttl_days,
    )


def build_object_store(
    config: UploadConfig | ApiConfig | WorkflowConfig | ReferenceFeedbackConfig,
) -> ObjectStore:
    from vehicle_assessment.adapters.aws.s3_object_store import S3ObjectStore

    return S3ObjectStore(aws_client("s3", config), config.bucket_name)


def build_vin_decoder(config: WorkflowConfig) -> VinDecoder:
    from pathlib import Path

    from vehicle_assessment.adapters.vpic import VpicVinDecoder

    return VpicVinDecoder(config.vpic, Path(config.vpic_cache_path))


def sagemaker_encoder(settings: SageMakerEncoderSettings, region: str) -> ImageEncoder:
    """The encoder endpoint; the analyse step and ``index build --target aws`` both use this."""
    from vehicle_assessment.adapters.aws.sagemaker_encoder import SageMakerEncoder

    return SageMakerEncoder.from_settings(settings, region, boto3_session())


def opensearch_index(
    settings: OpenSearchSettings, region: str, identity: EncoderIdentity | None
) -> WritableReferenceIndex:
    """The reference index, signed with this container's credentials; ``identity``: its encoder."""
    from vehicle_assessment.adapters.aws.opensearch_index import OpenSearchReferenceIndex

    return OpenSearchReferenceIndex.from_settings(
        settings, region, identity, boto3_session().get_credentials()
    )


def build_encoder(config: WorkflowConfig) -> ImageEncoder:
    if config.sagemaker is None:
        raise ValueError("SAGEMAKER is not configured: the analyse step needs the encoder endpoint")
    return sagemaker_encoder(config.sagemaker, config.aws_region)


def build_reference_index(config: WorkflowConfig) -> ReferenceIndex:
    if config.opensearch is None:
        raise ValueError("OPENSEARCH is not configured: the analyse step needs the reference index")
    identity = config.sagemaker.identity if config.sagemaker else None
    return opensearch_index(config.opensearch, config.aws_region, identity)


def build_describer(
    config: ApiConfig | WorkflowConfig, on_fallback: FallbackListener | None = None
) -> Describer:
    """``on_fallback``: told the reason and error code of every fallback to the template (a metric)."""
    from vehicle_assessment.adapters.aws.bedrock_describer import BedrockDescriber

    return BedrockDescriber.from_settings(
        config.bedrock, config.aws_region, session=boto3_session(), on_fallback=on_fallback
    )


def build_speaker(config: ApiConfig | WorkflowConfig) -> Speaker:
    from vehicle_assessment.adapters.aws.polly_speaker import PollySpeaker

    return PollySpeaker.from_settings(config.polly, config.aws_region, session=boto3_session())


def build_event_publisher(config: WorkflowConfig | SweeperConfig) -> EventPublisher:
    from vehicle_assessment.adapters.aws.eventbridge import EventBridgePublisher

    if config.event_bus_name is None:
        raise ValueError("EVENT_BUS_NAME is not configured: this step publishes the assessment's final event")
    return EventBridgePublisher(aws_client("events", config), config.event_bus_name)


def build_reference_feedback(
    opensearch: OpenSearchSettings,
    sagemaker: SageMakerEncoderSettings,
    region: str,
    objects: ObjectStore,
    registry: PhotoRegistry | None,
    intake: IntakeSettings,
    on_reembed: ReembedListener | None = None,
) -> ReferenceFeedback:
    """Learning from reviews on AWS: OpenSearch, S3 (originals and display copies) and the SageMaker
    encoder, called only when a photo's stored embedding is not the index's encoder's. ``on_reembed``
    is told why (the caller emits a metric)."""
    from vehicle_assessment.adapters.aws.opensearch_index import OpenSearchReferenceIndex
    from vehicle_assessment.learning import IndexReferenceFeedback

    index = OpenSearchReferenceIndex.from_settings(
        opensearch, region, sagemaker.identity, boto3_session().get_credentials()
    )
    return IndexReferenceFeedback(
        index=index,
        registry=registry,
        objects=objects,
        encoder=lambda: sagemaker_encoder(sagemaker, region),
        intake=intake,
        on_reembed=on_reembed,
    )


def build_reference_requester(config: ApiConfig) -> ReferenceRequester | None:
    """The API's way to hand a review "as reference" to the feedback function (an asynchronous
    Invoke); None when learning from reviews is off (no REFERENCE_FEEDBACK_FUNCTION)."""
    if config.reference_feedback_function is None:
        return None
    from vehicle_assessment.adapters.aws.clients import make_boto3_client
    from vehicle_assessment.aws_runtime.reference_requests import AsyncReferenceRequester

    client = make_boto3_client("lambda", config.aws_region, config.lambda_client, boto3_session())
    return AsyncReferenceRequester(client, config.reference_feedback_function)
