"""Config and ports of the Step Functions task functions, built on first use, once per container."""

from __future__ import annotations

from functions.container_cache import per_container
from functions.observability import record_description_fallback
from vehicle_assessment.aws_runtime import factory
from vehicle_assessment.aws_runtime.config import WorkflowConfig
from vehicle_assessment.ports import (
    Describer,
    EventPublisher,
    ImageEncoder,
    ObjectStore,
    PhotoRegistry,
    ReferenceIndex,
    Speaker,
    VinDecoder,
    WorkflowRepository,
)


@per_container
def get_config() -> WorkflowConfig:
    return WorkflowConfig()


@per_container
def get_repository() -> WorkflowRepository:
    return factory.build_repository(get_config())


@per_container
def get_objects() -> ObjectStore:
    return factory.build_object_store(get_config())


@per_container
def get_vin_decoder() -> VinDecoder:
    return factory.build_vin_decoder(get_config())


@per_container
def get_encoder() -> ImageEncoder:
    return factory.build_encoder(get_config())


@per_container
def get_reference_index() -> ReferenceIndex:
    return factory.build_reference_index(get_config())


@per_container
def get_photo_registry() -> PhotoRegistry | None:
    return factory.build_photo_registry(get_config())


@per_container
def get_describer() -> Describer:
    return factory.build_describer(get_config(), on_fallback=record_description_fallback)


@per_container
def get_speaker() -> Speaker:
    return factory.build_speaker(get_config())


@per_container
def get_event_publisher() -> EventPublisher:
    return factory.build_event_publisher(get_config())
