"""Composition root of local mode: settings in, ports out."""

from __future__ import annotations

from vehicle_assessment.adapters.local.espeak_speaker import EspeakSpeaker
from vehicle_assessment.adapters.local.object_store import FilesystemObjectStore
from vehicle_assessment.adapters.local.openclip_encoder import load_encoder
from vehicle_assessment.adapters.local.photo_registry import SqlitePhotoRegistry
from vehicle_assessment.adapters.local.repository import SqliteAssessmentRepository
from vehicle_assessment.adapters.local.vector_index import LocalVectorIndex
from vehicle_assessment.adapters.vpic import VpicVinDecoder
from vehicle_assessment.domain.description import TemplateDescriber
from vehicle_assessment.learning import IndexReferenceFeedback
from vehicle_assessment.pipeline import LocalPorts
from vehicle_assessment.ports import ObjectStore, PhotoRegistry
from vehicle_assessment.reviewing import ReviewServices
from vehicle_assessment.settings import LocalSettings


def open_repository(settings: LocalSettings) -> SqliteAssessmentRepository:
    return SqliteAssessmentRepository(settings.database_path)


def open_index(settings: LocalSettings) -> LocalVectorIndex:
    return LocalVectorIndex(settings.index_path, settings.index)


def open_photo_registry(settings: LocalSettings) -> SqlitePhotoRegistry | None:
    """None when the reused-photo check is switched off (VDA_RULES__REUSE__ENABLED=false)."""
    if not settings.rules.reuse.enabled:
        return None
    return SqlitePhotoRegistry(settings.photo_registry_path, settings.rules.reuse)


def build_local_ports(settings: LocalSettings, index: LocalVectorIndex | None = None) -> LocalPorts:
    return LocalPorts(
        objects=FilesystemObjectStore(settings.objects_dir),
        repository=open_repository(settings),
        vin_decoder=VpicVinDecoder(settings.vpic, settings.vpic_cache_path),
        encoder=load_encoder(settings.encoder),
        index=index or open_index(settings),
        describer=TemplateDescriber(),
        speaker=EspeakSpeaker(settings.speech),
        photo_registry=open_photo_registry(settings),
    )


def build_reference_feedback(
    settings: LocalSettings,
    registry: PhotoRegistry | None = None,
    index: LocalVectorIndex | None = None,
    objects: ObjectStore | None = None,
) -> IndexReferenceFeedback:
    """Learning from reviews in local mode: the SQLite index, the photo folder, the photo registry the
    runner fills (`registry`, default: the one under the data folder, none when the reused-photo check
    is off), and OpenCLIP, loaded only if a photo's stored embedding cannot be reused."""
    return IndexReferenceFeedback(
        index=index or open_index(settings),
        registry=registry or open_photo_registry(settings),
        objects=objects or FilesystemObjectStore(settings.objects_dir),
        encoder=lambda: load_encoder(settings.encoder),
        intake=settings.rules.intake,
    )


def build_review_services(settings: LocalSettings) -> ReviewServices:
    """What `review` and description edits need. A review with "use as reference" adds the photo to
    the local index (its stored embedding, else OpenCLIP loaded then and only then)."""
    objects = FilesystemObjectStore(settings.objects_dir)
    return ReviewServices(
        repository=open_repository(settings),
        objects=objects,
        describer=TemplateDescriber(),
        speaker=EspeakSpeaker(settings.speech),
        valuation=settings.rules.valuation,
        references=build_reference_feedback(settings, objects=objects),
    )
