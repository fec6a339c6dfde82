"""Distributed Map child (index build): one batch of labels-manifest rows into the reference index."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.container_cache import per_container
from functions.observability import lambda_entry, logger, metrics
from vehicle_assessment.aws_runtime import factory, index_build
from vehicle_assessment.ports import ImageEncoder, ObjectStore


@per_container
def get_config() -> index_build.IndexBuildConfig:
    return index_build.IndexBuildConfig()


@per_container
def get_objects() -> ObjectStore:
    from vehicle_assessment.adapters.aws.clients import make_boto3_client
    from vehicle_assessment.adapters.aws.s3_object_store import S3ObjectStore

    config = get_config()
    client = make_boto3_client("s3", config.aws_region, config.client, factory.boto3_session())
    return S3ObjectStore(client, config.bucket_name)


@per_container
def get_encoder() -> ImageEncoder:
    config = get_config()
    return factory.sagemaker_encoder(config.sagemaker, config.aws_region)


@per_container
def get_index() -> index_build.IndexedBySha256:
    from vehicle_assessment.adapters.aws.opensearch_index import OpenSearchReferenceIndex

    config = get_config()
    return OpenSearchReferenceIndex.from_settings(
        config.opensearch,
        config.aws_region,
        config.sagemaker.identity,
        factory.boto3_session().get_credentials(),
    )


@lambda_entry
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    batch = index_build.BatchEvent.model_validate(event)
    config = get_config()
    result = index_build.build_batch(
        batch,
        get_objects(),
        get_encoder(),
        get_index(),
        config.rules.intake,
        workers=config.download_workers,
    )
    logger.info(
        "index build batch done",
        extra={
            "rows": result.rows,
            "added": result.added,
            "already_indexed": result.already_indexed,
            "skipped": len(result.skipped),
        },
    )
    metrics.add_metric(name="ReferencePhotosIndexed", unit=MetricUnit.Count, value=result.added)
    metrics.add_metric(name="ReferencePhotosSkipped", unit=MetricUnit.Count, value=len(result.skipped))
    # The Map Run's ResultWriter stores this output (SUCCEEDED_n.json): the CLI sums it.
    return result.model_dump(mode="json")
