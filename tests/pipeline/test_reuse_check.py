"""The reused-photo check in the local runner: a copy of a sample photo submitted under another VIN
is flagged as possible reuse; a different photo, or the same vehicle again, is not."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image

from vehicle_assessment.adapters.local.espeak_speaker import EspeakSpeaker
from vehicle_assessment.adapters.local.object_store import FilesystemObjectStore
from vehicle_assessment.adapters.local.photo_registry import SqlitePhotoRegistry
from vehicle_assessment.adapters.local.repository import SqliteAssessmentRepository
from vehicle_assessment.adapters.local.vector_index import LocalVectorIndex
from vehicle_assessment.adapters.memory import InMemoryPhotoRegistry
from vehicle_assessment.domain.description import TemplateDescriber
from vehicle_assessment.domain.models import (
    AssessmentInputs,
    AssessmentStatus,
    PhotoStatus,
    ReuseMatchKind,
    VehicleFacts,
)
from vehicle_assessment.domain.rules import AssessmentRules
from vehicle_assessment.pipeline import AssessmentRunner, LocalPorts, PhotoUpload
from vehicle_assessment.ports import PhotoRegistry, VinDecoderUnavailable
from vehicle_assessment.settings import SpeechSettings

from ..conftest import SAMPLE_DATA

pytestmark = pytest.mark.slow

FIRST_VIN = "1FTMW1T88MFA00001"
OTHER_VIN = "5UXWX7C56BA100007"
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


class OfflineDecoder:
    def decode(self, vin: str, model_year: int | None) -> VehicleFacts:
        raise VinDecoderUnavailable("no network in tests")


def _runner(tmp_path: Path, encoder, index_path: Path, registry: PhotoRegistry) -> AssessmentRunner:
    ports = LocalPorts(
        objects=FilesystemObjectStore(tmp_path / "objects"),
        repository=SqliteAssessmentRepository(tmp_path / "db.sqlite3"),
        vin_decoder=OfflineDecoder(),
        encoder=encoder,
        index=LocalVectorIndex(index_path),
        describer=TemplateDescriber(),
        speaker=EspeakSpeaker(SpeechSettings(enabled=False)),
        photo_registry=registry,
    )
    return AssessmentRunner(ports, AssessmentRules(), clock=lambda: NOW)


def _query_photos() -> list[Path]:
    paths = sorted((SAMPLE_DATA / "queries").glob("*/*.jpg"))
    assert len(paths) == 3
    return paths


def _reencoded_and_resized(data: bytes) -> bytes:
    """What a reseller's upload does to a photo: 70 % size, JPEG quality 70."""
    with Image.open(io.BytesIO(data)) as image:
        smaller = image.convert("RGB").resize((round(image.width * 0.7), round(image.height * 0.7)))
    out = io.BytesIO()
    smaller.save(out, "JPEG", quality=70)
    return out.getvalue()


def test_a_resized_reencoded_copy_under_another_vin_is_possible_reuse(
    tmp_path, tiny_encoder, sample_index_path
) -> None:
    registry = SqlitePhotoRegistry(tmp_path / "photo-registry.sqlite3", AssessmentRules().reuse)
    runner = _runner(tmp_path, tiny_encoder, sample_index_path, registry)
    original, different, _ = _query_photos()
    first = runner.assess(
        AssessmentInputs(vin=FIRST_VIN), [PhotoUpload(original.name, original.read_bytes())]
    )
    assert first.status == AssessmentStatus.COMPLETED, first.failure_reason
    [photo] = first.photos
    assert photo.perceptual_hash and len(photo.perceptual_hash) == 16 and not photo.reuse_matches

    copy = _reencoded_and_resized(original.read_bytes())
    second = runner.assess(
        AssessmentInputs(vin=OTHER_VIN),
        [PhotoUpload("copy.jpg", copy), PhotoUpload(different.name, different.read_bytes())],
    )

    assert second.status == AssessmentStatus.COMPLETED, second.failure_reason
    flagged, clean = second.photos
    assert flagged.status == PhotoStatus.ANALYSED and flagged.sha256 != photo.sha256
    [match] = flagged.reuse_matches
    assert (match.assessment_id, match.photo_id, match.vin) == (first.assessment_id, "01", FIRST_VIN)
    assert match.kind == ReuseMatchKind.PERCEPTUAL
    assert match.score <= AssessmentRules().reuse.perceptual_max_distance
    assert clean.status == PhotoStatus.ANALYSED and clean.reuse_matches == []
    # Stored with the assessment, and every analysed photo is remembered with its embedding.
    assert runner.ports.repository.get(second.assessment_id).photos[0].reuse_matches == [match]
    remembered = registry.fingerprint(second.assessment_id, "01")
    assert remembered is not None and remembered.vin == OTHER_VIN
    assert remembered.encoder == tiny_encoder.identity
    assert remembered.vector is not None and len(remembered.vector) == tiny_encoder.identity.dimension


def test_the_same_vehicle_again_is_not_reuse_but_an_exact_copy_elsewhere_is(
    tmp_path, tiny_encoder, sample_index_path
) -> None:
    registry = SqlitePhotoRegistry(tmp_path / "photo-registry.sqlite3", AssessmentRules().reuse)
    runner = _runner(tmp_path, tiny_encoder, sample_index_path, registry)
    original = _query_photos()[0]
    upload = [PhotoUpload(original.name, original.read_bytes())]
    first = runner.assess(AssessmentInputs(vin=FIRST_VIN), upload)

    again = runner.assess(AssessmentInputs(vin=FIRST_VIN), upload)
    elsewhere = runner.assess(AssessmentInputs(vin=OTHER_VIN), upload)

    assert again.photos[0].reuse_matches == []
    matches = elsewhere.photos[0].reuse_matches
    assert {m.assessment_id for m in matches} == {first.assessment_id, again.assessment_id}
    assert all(m.kind == ReuseMatchKind.EXACT and m.vin == FIRST_VIN and m.score == 0 for m in matches)


def test_an_unavailable_registry_is_recorded_and_the_assessment_goes_on(
    tmp_path, tiny_encoder, sample_index_path, caplog
) -> None:
    registry = InMemoryPhotoRegistry(failures=2)  # both the write and the search of the one photo
    runner = _runner(tmp_path, tiny_encoder, sample_index_path, registry)
    original = _query_photos()[0]

    result = runner.assess(
        AssessmentInputs(vin=FIRST_VIN), [PhotoUpload(original.name, original.read_bytes())]
    )

    assert result.status == AssessmentStatus.COMPLETED
    [photo] = result.photos
    assert photo.status == PhotoStatus.ANALYSED and photo.perceptual_hash
    assert photo.reuse_unchecked and "not checked for reuse" in photo.reuse_unchecked
    assert "not remembered" in photo.reuse_unchecked
    assert any(photo.reuse_unchecked in warning for warning in result.warnings)
    assert any("not checked for reuse" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
