"""`vehicle-assessment index build --target aws`: fill the OpenSearch Serverless index through the
SageMaker endpoint, with the same build code (batches, resume, skip reasons) as local mode.

Configured like the analyse-photo Lambda: ``AWS_REGION`` plus ``SAGEMAKER`` and ``OPENSEARCH`` as
JSON (the stack outputs give the endpoint name, collection endpoint and index name).
"""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from vehicle_assessment.adapters.aws.settings import OpenSearchSettings, SageMakerEncoderSettings
from vehicle_assessment.aws_runtime import factory
from vehicle_assessment.ports import ImageEncoder, WritableReferenceIndex


class IndexLoaderConfig(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    aws_region: str
    sagemaker: SageMakerEncoderSettings
    opensearch: OpenSearchSettings


def build_aws_index_target(config: IndexLoaderConfig) -> tuple[ImageEncoder, WritableReferenceIndex]:
    """The analyse step's encoder and index, built by the same factory (one session, same clients)."""
    encoder = factory.sagemaker_encoder(config.sagemaker, config.aws_region)
    index = factory.opensearch_index(config.opensearch, config.aws_region, config.sagemaker.identity)
    return encoder, index
