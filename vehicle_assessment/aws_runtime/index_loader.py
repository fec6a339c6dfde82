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
    from vehicle_assessment.adapters.aws.opensearch_index import OpenSearchReferenceIndex
    from vehicle_assessment.adapters.aws.sagemaker_encoder import SageMakerEncoder

    session = factory.boto3_session()
    encoder = SageMakerEncoder.from_settings(config.sagemaker, config.aws_region, session)
    index = OpenSearchReferenceIndex.from_settings(
        config.opensearch, config.aws_region, config.sagemaker.identity, session.get_credentials()
    )
    return encoder, index
