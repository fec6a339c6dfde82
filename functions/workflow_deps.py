"""Config and ports of the Step Functions task functions, built on first use, once per container."""

from __future__ import annotations

import functools

from vehicle_assessment.aws_runtime import factory
from vehicle_assessment.aws_runtime.config import WorkflowConfig
from vehicle_assessment.ports import (
    Describer,
    ImageEncoder,
    ObjectStore,
    ReferenceIndex,
    Speaker,
    VinDecoder,
    WorkflowRepository,
)


@functools.lru_cache(maxsize=1)
def get_config() -> WorkflowConfig:
    return WorkflowConfig()


@functools.lru_cache(maxsize=1)
def get_repository() -> WorkflowRepository:
    return factory.build_repository(get_config())


@functools.lru_cache(maxsize=1)
def get_objects() -> ObjectStore:
    return factory.build_object_store(get_config())


@functools.lru_cache(maxsize=1)
def get_vin_decoder() -> VinDecoder:
    return factory.build_vin_decoder(get_config())


@functools.lru_cache(maxsize=1)
def get_encoder() -> ImageEncoder:
    return factory.build_encoder(get_config())


@functools.lru_cache(maxsize=1)
def get_reference_index() -> ReferenceIndex:
    return factory.build_reference_index(get_config())


@functools.lru_cache(maxsize=1)
def get_describer() -> Describer:
    return factory.build_describer(get_config())


@functools.lru_cache(maxsize=1)
def get_speaker() -> Speaker:
    return factory.build_speaker(get_config())


def clear_caches() -> None:
    """For tests: forget config and clients so the next call reads the environment again."""
    for getter in (
        get_config,
        get_repository,
        get_objects,
        get_vin_decoder,
        get_encoder,
        get_reference_index,
        get_describer,
        get_speaker,
    ):
        getter.cache_clear()
