"""Composition root of local mode: settings in, ports out."""

from __future__ import annotations

from vehicle_assessment.adapters.local.espeak_speaker import EspeakSpeaker
from vehicle_assessment.adapters.local.object_store import FilesystemObjectStore
from vehicle_assessment.adapters.local.openclip_encoder import load_encoder
from vehicle_assessment.adapters.local.repository import SqliteAssessmentRepository
from vehicle_assessment.adapters.local.vector_index import LocalVectorIndex
from vehicle_assessment.adapters.vpic import VpicVinDecoder
from vehicle_assessment.domain.description import TemplateDescriber
from vehicle_assessment.pipeline import LocalPorts
from vehicle_assessment.reviewing import ReviewServices
from vehicle_assessment.settings import LocalSettings


def open_repository(settings: LocalSettings) -> SqliteAssessmentRepository:
    return SqliteAssessmentRepository(settings.database_path)


def open_index(settings: LocalSettings) -> LocalVectorIndex:
    return LocalVectorIndex(settings.index_path, settings.index)


def build_local_ports(settings: LocalSettings, index: LocalVectorIndex | None = None) -> LocalPorts:
    return LocalPorts(
        objects=FilesystemObjectStore(settings.objects_dir),
        repository=open_repository(settings),
        vin_decoder=VpicVinDecoder(settings.vpic, settings.vpic_cache_path),
        encoder=load_encoder(settings.encoder),
        index=index or open_index(settings),
        describer=TemplateDescriber(),
        speaker=EspeakSpeaker(settings.speech),
    )


def build_review_services(settings: LocalSettings) -> ReviewServices:
    """What `review` and description edits need: no encoder or index (a review embeds nothing)."""
    return ReviewServices(
        repository=open_repository(settings),
        objects=FilesystemObjectStore(settings.objects_dir),
        describer=TemplateDescriber(),
        speaker=EspeakSpeaker(settings.speech),
        valuation=settings.rules.valuation,
    )
