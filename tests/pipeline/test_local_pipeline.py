"""The whole local pipeline on real sample photos, with a tiny random-weight open_clip model."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image

from vehicle_assessment.adapters.local.espeak_speaker import EspeakSpeaker
from vehicle_assessment.adapters.local.object_store import FilesystemObjectStore
from vehicle_assessment.adapters.local.repository import SqliteAssessmentRepository
from vehicle_assessment.adapters.local.vector_index import LocalVectorIndex
from vehicle_assessment.domain.description import TemplateDescriber
from vehicle_assessment.domain.models import (
    UNTRAINED_ENCODER_WARNING,
    AssessmentInputs,
    AssessmentStatus,
    AudioStatus,
    PhotoStatus,
    VehicleFacts,
)
from vehicle_assessment.domain.rules import AssessmentRules
from vehicle_assessment.domain.vin import InvalidVin
from vehicle_assessment.pipeline import AssessmentRunner, LocalPorts, PhotoUpload
from vehicle_assessment.ports import VinDecoderUnavailable
from vehicle_assessment.settings import SpeechSettings

from ..conftest import SAMPLE_DATA

pytestmark = pytest.mark.slow

VIN = "1FTMW1T88MFA00001"
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


class OfflineDecoder:
    def decode(self, vin: str, model_year: int | None) -> VehicleFacts:
        raise VinDecoderUnavailable("no network in tests")


class RecordedDecoder:
    def decode(self, vin: str, model_year: int | None) -> VehicleFacts:
        return VehicleFacts(
            vin=vin,
            source="vpic",
            make="FORD",
            model="F-150",
            model_year=2021,
            body_class="Pickup",
            fuel_type_primary="Gasoline",
            engine_displacement_l=3.5,
            engine_cylinders=6,
        )


class BrokenDecoder:
    def decode(self, vin: str, model_year: int | None) -> VehicleFacts:
        raise RuntimeError("decoder crashed")


def _ports(tmp_path: Path, encoder, index_path: Path, decoder) -> LocalPorts:
    return LocalPorts(
        objects=FilesystemObjectStore(tmp_path / "objects"),
        repository=SqliteAssessmentRepository(tmp_path / "db.sqlite3"),
        vin_decoder=decoder,
        encoder=encoder,
        index=LocalVectorIndex(index_path),
        describer=TemplateDescriber(),
        speaker=EspeakSpeaker(SpeechSettings(executable="no-such-espeak")),
    )


def _queries() -> list[PhotoUpload]:
    paths = sorted((SAMPLE_DATA / "queries").glob("*/*.jpg"))
    assert len(paths) == 3
    return [PhotoUpload(filename=p.name, data=p.read_bytes()) for p in paths]


def test_sample_photos_are_assessed_end_to_end(tmp_path, tiny_encoder, sample_index_path) -> None:
    ports = _ports(tmp_path, tiny_encoder, sample_index_path, RecordedDecoder())
    runner = AssessmentRunner(ports, AssessmentRules(), clock=lambda: NOW)
    uploads = _queries()
    result = runner.assess(
        AssessmentInputs(vin=VIN.lower(), color="red", mileage=48200, estimate_usd=38500), uploads
    )

    assert result.status == AssessmentStatus.COMPLETED, result.failure_reason
    assert result.vin == VIN and result.vehicle and result.vehicle.model == "F-150"
    assert [p.status for p in result.photos] == [PhotoStatus.ANALYSED] * 3
    for photo, upload in zip(result.photos, uploads, strict=True):
        # Originals are stored byte for byte; the verdict has its nearest references.
        assert ports.objects.get(photo.object_key) == upload.data
        assert photo.verdict and len(photo.verdict.neighbours) == AssessmentRules().verdict.k
        assert all(n.source.startswith(("damaged/", "undamaged/")) for n in photo.verdict.neighbours)
    valuation = result.valuation
    assert valuation and valuation.undamaged.amount_usd == 38500
    assert valuation.adjusted_value_usd == pytest.approx(
        38500 * (1 - valuation.combined_depreciation), abs=0.01
    )
    assert {(d.language, d.style.value) for d in result.descriptions} == {
        ("en", "standard"),
        ("es", "standard"),
    }
    assert all(a.status == AudioStatus.SKIPPED and "not installed" in a.reason for a in result.audio)
    # Random weights: said in the record, the review reasons and every description.
    assert result.encoder and result.encoder.untrained
    assert UNTRAINED_ENCODER_WARNING in result.warnings and UNTRAINED_ENCODER_WARNING in result.review_reasons
    assert all("untrained" in d.text or "sin entrenar" in d.text for d in result.descriptions)
    assert ports.repository.get(result.assessment_id) == result
    assert [a.assessment_id for a in ports.repository.list_by_vin(VIN)] == [result.assessment_id]


def test_same_photo_always_gets_the_same_verdict(tmp_path, tiny_encoder, sample_index_path) -> None:
    ports = _ports(tmp_path, tiny_encoder, sample_index_path, RecordedDecoder())
    runner = AssessmentRunner(ports, AssessmentRules(), clock=lambda: NOW)
    first = runner.assess(AssessmentInputs(vin=VIN), _queries())
    second = runner.assess(AssessmentInputs(vin=VIN), _queries())
    assert [p.verdict for p in first.photos] == [p.verdict for p in second.photos]


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_bad_photos_are_recorded_with_reasons_and_nothing_is_lost(tmp_path, tiny_encoder, sample_index_path):
    good = _queries()[0]
    uploads = [
        good,
        PhotoUpload("empty.jpg", b""),
        PhotoUpload("notes.jpg", b"this is a text file, not a photo"),
        PhotoUpload("truncated.jpg", good.data[: len(good.data) // 2]),
        PhotoUpload("dot.png", _png(Image.new("RGB", (1, 1)))),
    ]
    ports = _ports(tmp_path, tiny_encoder, sample_index_path, OfflineDecoder())
    result = AssessmentRunner(ports, AssessmentRules(), clock=lambda: NOW).assess(
        AssessmentInputs(vin=VIN), uploads
    )

    assert result.status == AssessmentStatus.COMPLETED
    assert len(result.photos) == len(uploads)
    statuses = {p.filename: (p.status, p.reason or "") for p in result.photos}
    assert statuses[good.filename][0] == PhotoStatus.ANALYSED
    assert statuses["empty.jpg"] == (PhotoStatus.REJECTED, "empty file (0 bytes)")
    assert "not an image" in statuses["notes.jpg"][1]
    assert "truncated" in statuses["truncated.jpg"][1]
    assert "image too small" in statuses["dot.png"][1]
    for photo in result.photos:  # every upload, even the empty one, is kept as it came
        assert ports.objects.exists(photo.object_key)
    assert sum("rejected" in r for r in result.review_reasons) == 4
    assert result.valuation and result.valuation.provisional
    assert result.vehicle and result.vehicle.source == "vin" and result.vehicle.model_year == 2021
    assert any("decoded offline from the VIN only: no network in tests" in w for w in result.warnings)


def test_a_failing_step_leaves_a_failed_assessment_with_its_reason(tmp_path, tiny_encoder, sample_index_path):
    ports = _ports(tmp_path, tiny_encoder, sample_index_path, BrokenDecoder())
    result = AssessmentRunner(ports, AssessmentRules(), clock=lambda: NOW).assess(
        AssessmentInputs(vin=VIN), _queries()
    )
    assert result.status == AssessmentStatus.FAILED
    assert result.failed_step == "decode_vehicle"
    assert result.failure_reason == "RuntimeError: decoder crashed"
    stored = ports.repository.get(result.assessment_id)
    assert stored.status == AssessmentStatus.FAILED and len(stored.photos) == 3
    assert all(ports.objects.exists(p.object_key) for p in stored.photos)


def test_index_from_another_encoder_fails_the_assessment_clearly(
    tmp_path, tiny_model_name, sample_index_path
):
    from vehicle_assessment.adapters.local.openclip_encoder import OpenClipEncoder
    from vehicle_assessment.settings import EncoderSettings

    other = OpenClipEncoder(EncoderSettings(model_name=tiny_model_name, untrained=True, batch_size=8))
    other._identity = other.identity.model_copy(update={"model_name": "another-model"})
    ports = _ports(tmp_path, other, sample_index_path, OfflineDecoder())
    result = AssessmentRunner(ports, AssessmentRules(), clock=lambda: NOW).assess(
        AssessmentInputs(vin=VIN), _queries()
    )
    assert result.status == AssessmentStatus.FAILED and result.failed_step == "analyse_photos"
    assert "rebuild the index" in (result.failure_reason or "")


def test_invalid_vin_is_refused_before_anything_is_stored(tmp_path, tiny_encoder, sample_index_path) -> None:
    ports = _ports(tmp_path, tiny_encoder, sample_index_path, OfflineDecoder())
    runner = AssessmentRunner(ports, AssessmentRules(), clock=lambda: NOW)
    with pytest.raises(InvalidVin):
        runner.assess(AssessmentInputs(vin="1FTMW1T88MFA0000I"), _queries())
    with pytest.raises(ValueError, match="at least one photo"):
        runner.assess(AssessmentInputs(vin=VIN), [])
    assert not (tmp_path / "objects").exists()


def test_photos_are_taken_in_on_parallel_threads_in_their_order(monkeypatch) -> None:
    # Intake was most of a warm assessment's time beside the encoder; photos are decoded in parallel.
    import hashlib
    import threading

    from vehicle_assessment.domain import photo
    from vehicle_assessment.domain.models import PhotoRecord
    from vehicle_assessment.pipeline import intake, intake_all

    meeting = threading.Barrier(2, timeout=10)  # one photo at a time would wait here until the timeout
    real_intake_photo = photo.intake_photo

    def intake_photo_meeting_the_other(data: bytes, settings):
        meeting.wait()
        return real_intake_photo(data, settings)

    paths = sorted((SAMPLE_DATA / "queries").rglob("*.jpg"))[:2]
    datas = [path.read_bytes() for path in paths]
    records = [
        PhotoRecord(
            photo_id=f"{n:02d}",
            filename=path.name,
            object_key=f"photos/a/{n:02d}",
            size_bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            status=PhotoStatus.RECEIVED,
        )
        for n, (path, data) in enumerate(zip(paths, datas, strict=True), start=1)
    ]
    rules = AssessmentRules()
    one_by_one = [intake(record, data, rules) for record, data in zip(records, datas, strict=True)]
    monkeypatch.setattr(photo, "intake_photo", intake_photo_meeting_the_other)
    monkeypatch.setattr("vehicle_assessment.pipeline.os.cpu_count", lambda: 2)
    parallel = intake_all(records, datas, rules)
    assert [intaken.record for intaken in parallel] == [record for record, _ in one_by_one]
    for intaken, (_, expected) in zip(parallel, one_by_one, strict=True):
        got = intaken.result
        assert got is not None and expected is not None
        assert got.image.tobytes() == expected.image.tobytes() and got.quality == expected.quality


def test_a_preparing_encoder_prepares_on_the_intake_threads_with_the_same_result(
    tiny_encoder, sample_index_path, monkeypatch
) -> None:
    # Each photo's resize and crop run on its intake thread; only the forward pass waits for the batch.
    # An encoder without `prepare` (a remote one) gets the images: both give the same photos.
    import hashlib
    import threading

    from vehicle_assessment.domain.models import PhotoRecord
    from vehicle_assessment.pipeline import analyse_photos
    from vehicle_assessment.ports import PreparingEncoder

    class ImagesOnly:  # the ImageEncoder port alone, as the SageMaker encoder implements it
        identity = tiny_encoder.identity

        def embed(self, images):
            return tiny_encoder.embed(images)

    prepared_on: list[str] = []
    real_prepare = tiny_encoder.prepare

    def prepare_noting_the_thread(image):
        prepared_on.append(threading.current_thread().name)
        return real_prepare(image)

    uploads = _queries()
    records = [
        PhotoRecord(
            photo_id=f"{n:02d}",
            filename=upload.filename,
            object_key=f"photos/a/{n:02d}",
            size_bytes=len(upload.data),
            sha256=hashlib.sha256(upload.data).hexdigest(),
            status=PhotoStatus.RECEIVED,
        )
        for n, upload in enumerate(uploads, start=1)
    ]
    datas = [upload.data for upload in uploads]
    index, rules = LocalVectorIndex(sample_index_path), AssessmentRules()
    assert isinstance(tiny_encoder, PreparingEncoder) and not isinstance(ImagesOnly(), PreparingEncoder)
    from_images = analyse_photos(records, datas, ImagesOnly(), index, rules)
    monkeypatch.setattr(tiny_encoder, "prepare", prepare_noting_the_thread)
    monkeypatch.setattr("vehicle_assessment.pipeline.os.cpu_count", lambda: 2)
    prepared = analyse_photos(records, datas, tiny_encoder, index, rules)
    assert prepared == from_images
    assert all(photo.status == PhotoStatus.ANALYSED and photo.perceptual_hash for photo in prepared)
    assert len(prepared_on) == 3 and all(name.startswith("intake") for name in prepared_on)
