"""Learning from reviews: a reviewed photo joins the local reference index with its label and provenance."""

from __future__ import annotations

import hashlib
import io
import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vehicle_assessment.adapters.local.object_store import FilesystemObjectStore
from vehicle_assessment.adapters.local.vector_index import LocalVectorIndex
from vehicle_assessment.adapters.memory import InMemoryPhotoRegistry
from vehicle_assessment.domain.models import (
    Assessment,
    AssessmentInputs,
    AssessmentStatus,
    DamageType,
    EncoderIdentity,
    PhotoFingerprint,
    PhotoRecord,
    PhotoReview,
    PhotoStatus,
    ReferenceLabel,
    ReferenceProvenance,
    Severity,
)
from vehicle_assessment.domain.photo import intake_photo
from vehicle_assessment.domain.rules import IntakeSettings
from vehicle_assessment.domain.upload_keys import reference_image_key
from vehicle_assessment.learning import REVIEW_ORIGIN, IndexReferenceFeedback, review_reference_source
from vehicle_assessment.ports import (
    ImageEncoder,
    IndexMismatch,
    PhotoRegistryUnavailable,
    ReferenceItem,
    ReferencePhotoUnusable,
)

from ..conftest import SAMPLE_DATA

PHOTO = SAMPLE_DATA / "queries" / "damaged" / "0003_JPEG.jpg"
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
UNDAMAGED = ReferenceLabel(damaged=False, damage_type=DamageType.NONE, severity=Severity.NONE)


def _review(damaged: bool = True, reviewer: str = "ana", as_reference: bool = True) -> PhotoReview:
    return PhotoReview(
        reviewer=reviewer,
        reviewed_at=NOW,
        damaged=damaged,
        damage_type=DamageType.DENT if damaged else DamageType.NONE,
        severity=Severity.SEVERE if damaged else Severity.NONE,
        as_reference=as_reference,
    )


def _assessment(objects: FilesystemObjectStore, data: bytes, status: PhotoStatus) -> Assessment:
    objects.put("photos/a1/01-front.jpg", data, "image/jpeg")
    photo = PhotoRecord(
        photo_id="01",
        filename="front.jpg",
        object_key="photos/a1/01-front.jpg",
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        status=status,
        reason="too dark" if status == PhotoStatus.REJECTED else None,
    )
    return Assessment(
        assessment_id="a1",
        vin="1FTMW1T88MFA00001",
        status=AssessmentStatus.COMPLETED,
        created_at=NOW,
        updated_at=NOW,
        inputs=AssessmentInputs(vin="1FTMW1T88MFA00001"),
        photos=[photo],
    )


def _fingerprint(assessment: Assessment, encoder: EncoderIdentity, vector: np.ndarray) -> PhotoFingerprint:
    photo = assessment.photos[0]
    return PhotoFingerprint(
        assessment_id=assessment.assessment_id,
        photo_id=photo.photo_id,
        vin=assessment.vin,
        sha256=photo.sha256,
        perceptual_hash="0" * 16,
        recorded_at=NOW,
        encoder=encoder,
        vector=[float(x) for x in vector],
    )


class World:
    def __init__(self, tmp_path: Path, encoder: ImageEncoder, status: PhotoStatus = PhotoStatus.ANALYSED):
        self.objects = FilesystemObjectStore(tmp_path / "objects")
        self.index = LocalVectorIndex(tmp_path / "reference-index.sqlite3")
        self.index.bind(encoder.identity)
        self.registry = InMemoryPhotoRegistry()
        self.assessment = _assessment(self.objects, PHOTO.read_bytes(), status)
        self.encoder_loads = 0
        self.reembed_reasons: list[str] = []

        def load() -> ImageEncoder:
            self.encoder_loads += 1
            return encoder

        self.feedback = IndexReferenceFeedback(
            self.index, self.registry, self.objects, load, IntakeSettings(), self.reembed_reasons.append
        )

    @property
    def photo(self) -> PhotoRecord:
        return self.assessment.photos[0]

    def add(self, review: PhotoReview) -> str:
        return self.feedback.add_reviewed_photo(self.assessment, self.photo, review)

    def stored(self) -> tuple[list, np.ndarray]:
        return self.index.vectors_and_labels()


@pytest.fixture
def world(tmp_path: Path, tiny_encoder: ImageEncoder) -> World:
    return World(tmp_path, tiny_encoder)


def _unit(dimension: int, at: int) -> np.ndarray:
    vector = np.zeros(dimension, dtype=np.float32)
    vector[at] = 1.0
    return vector


def test_the_stored_embedding_is_reused_with_label_provenance_and_a_display_copy(world: World) -> None:
    identity = world.index.identity
    assert identity is not None
    stored = _unit(identity.dimension, 3)  # unlike anything the encoder makes: proves it was reused
    world.registry.remember(_fingerprint(world.assessment, identity, stored))

    source = world.add(_review())

    assert source == review_reference_source("a1", "01") == "review/a1/01"
    assert world.encoder_loads == 0 and world.reembed_reasons == []
    [row], matrix = world.stored()
    assert row.source == source and row.sha256 == world.photo.sha256
    assert row.label == ReferenceLabel(damaged=True, damage_type=DamageType.DENT, severity=Severity.SEVERE)
    assert row.origin == REVIEW_ORIGIN
    assert row.provenance == ReferenceProvenance(
        assessment_id="a1", photo_id="01", reviewer="ana", reviewed_at=NOW
    )
    assert np.allclose(matrix[0], stored)
    display = Image.open(io.BytesIO(world.objects.get(reference_image_key(world.photo.sha256))))
    assert display.format == "JPEG" and max(display.size) <= 512


def test_without_a_comparable_stored_embedding_the_original_is_embedded_again(
    world: World, tiny_encoder: ImageEncoder, caplog: pytest.LogCaptureFixture
) -> None:
    other = tiny_encoder.identity.model_copy(update={"weights_fingerprint": "f" * 64})
    world.registry.remember(_fingerprint(world.assessment, other, _unit(other.dimension, 0)))

    with caplog.at_level(logging.WARNING, logger="vehicle_assessment.learning"):
        world.add(_review())

    assert world.encoder_loads == 1
    assert len(world.reembed_reasons) == 1 and "the index holds" in world.reembed_reasons[0]
    assert "embedding it again" in caplog.text
    expected = tiny_encoder.embed([intake_photo(PHOTO.read_bytes(), IntakeSettings()).image])[0]
    _, matrix = world.stored()
    assert np.allclose(matrix[0], expected / np.linalg.norm(expected), atol=1e-5)


def test_no_fingerprint_at_all_is_embedded_again_and_says_why(world: World) -> None:
    world.add(_review())
    assert world.reembed_reasons == ["the photo registry holds no fingerprint of it"]
    assert world.index.count() == 1


def test_an_encoder_other_than_the_index_is_refused_and_nothing_is_written(
    tmp_path: Path, tiny_encoder: ImageEncoder
) -> None:
    world = World(tmp_path, tiny_encoder)
    world.index.close()
    (tmp_path / "reference-index.sqlite3").unlink()
    world.index = LocalVectorIndex(tmp_path / "reference-index.sqlite3")
    world.index.bind(tiny_encoder.identity.model_copy(update={"weights_fingerprint": "e" * 64}))
    world.feedback.index = world.index

    with pytest.raises(IndexMismatch, match="never mixed"):
        world.add(_review())

    assert world.index.count() == 0
    assert not world.objects.exists(reference_image_key(world.photo.sha256))


def test_reviewing_again_replaces_the_reference_never_duplicates_it(world: World) -> None:
    world.add(_review(damaged=True, reviewer="ana"))
    world.add(_review(damaged=False, reviewer="ben"))

    [row], _ = world.stored()
    assert world.index.count() == 1
    assert row.label == UNDAMAGED and row.provenance is not None and row.provenance.reviewer == "ben"
    assert world.index.known_sources() == {"review/a1/01"}


def test_a_photo_rejected_at_intake_never_becomes_a_reference(tmp_path: Path, tiny_encoder) -> None:
    world = World(tmp_path, tiny_encoder, status=PhotoStatus.REJECTED)
    with pytest.raises(ReferencePhotoUnusable, match="rejected at intake"):
        world.add(_review())
    assert world.index.count() == 0


def test_stored_bytes_that_are_not_the_assessed_ones_are_refused(world: World) -> None:
    world.objects.put(world.photo.object_key, b"other bytes", "image/jpeg")
    with pytest.raises(ReferencePhotoUnusable, match="sha256 differs"):
        world.add(_review())
    assert world.index.count() == 0


def test_a_review_that_does_not_ask_for_it_is_refused(world: World) -> None:
    with pytest.raises(ValueError, match="does not ask"):
        world.add(_review(as_reference=False))


def test_a_missing_original_is_refused(world: World) -> None:
    photo = world.photo.model_copy(update={"object_key": "photos/a1/gone.jpg"})
    with pytest.raises(ReferencePhotoUnusable, match="not in the object store"):
        world.feedback.add_reviewed_photo(world.assessment, photo, _review())


# --- the local index's side: provenance columns, migration, replacement, other processes --------

IDENTITY = EncoderIdentity(
    model_name="m", pretrained=None, untrained=True, dimension=8, weights_fingerprint="a" * 64
)
OLD_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE reference_photos (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL UNIQUE,
    sha256 TEXT NOT NULL,
    damaged INTEGER NOT NULL,
    damage_type TEXT NOT NULL,
    severity TEXT NOT NULL,
    vector BLOB NOT NULL
);
"""


def test_an_index_file_without_provenance_columns_is_migrated_keeping_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "reference-index.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(OLD_SCHEMA)
        conn.execute("INSERT INTO meta VALUES ('encoder', ?)", (IDENTITY.model_dump_json(),))
        conn.execute(
            "INSERT INTO reference_photos (source, sha256, damaged, damage_type, severity, vector)"
            " VALUES ('old/1.jpg', ?, 0, 'none', 'none', ?)",
            ("1" * 64, _unit(8, 0).tobytes()),
        )
    conn.close()

    index = LocalVectorIndex(path)
    provenance = ReferenceProvenance(assessment_id="a", photo_id="01", reviewer="ana", reviewed_at=NOW)
    index.upsert(
        ReferenceItem(
            source="review/a/01",
            sha256="2" * 64,
            label=UNDAMAGED,
            vector=_unit(8, 1),
            provenance=provenance,
            origin="review",
        )
    )

    rows, _ = index.vectors_and_labels()
    assert [(r.source, r.origin, r.provenance) for r in rows] == [
        ("old/1.jpg", None, None),
        ("review/a/01", "review", provenance),
    ]
    assert index.search(_unit(8, 0)[None, :], 1)[0][0].source == "old/1.jpg"
    index.close()
    LocalVectorIndex(path).close()  # a second open finds nothing left to migrate


def test_another_connection_sees_a_reference_added_after_its_first_search(tmp_path: Path) -> None:
    path = tmp_path / "reference-index.sqlite3"
    server = LocalVectorIndex(path)
    server.bind(IDENTITY)
    server.add([ReferenceItem(source="a.jpg", sha256="1" * 64, label=UNDAMAGED, vector=_unit(8, 0))])
    assert server.search(_unit(8, 1)[None, :], 5)[0][0].source == "a.jpg"

    reviewer = LocalVectorIndex(path)  # e.g. the review, in another process
    label = ReferenceLabel(damaged=True, damage_type=DamageType.DENT, severity=Severity.MINOR)
    reviewer.upsert(ReferenceItem(source="review/x/01", sha256="2" * 64, label=label, vector=_unit(8, 1)))

    [best, *_] = server.search(_unit(8, 1)[None, :], 5)[0]
    assert best.source == "review/x/01" and best.label == label


@pytest.mark.slow
def test_replacing_the_newest_row_makes_the_approximate_index_rebuild(tmp_path: Path) -> None:
    pytest.importorskip("faiss")
    from vehicle_assessment.settings import IndexSettings

    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((400, 8)).astype(np.float32)
    index = LocalVectorIndex(tmp_path / "reference-index.sqlite3", IndexSettings(ann_min_vectors=100))
    index.bind(IDENTITY)
    index.add(
        [
            ReferenceItem(source=f"r{i}.jpg", sha256=f"{i:064x}", label=UNDAMAGED, vector=v)
            for i, v in enumerate(vectors)
        ]
    )
    index.prepare_search()  # the faiss file and its manifest are written
    assert index.uses_ann()
    newest = "r399.jpg"
    label = ReferenceLabel(damaged=True, damage_type=DamageType.BROKEN, severity=Severity.SEVERE)
    # Far from where the row was: a stale faiss file would not find it here.
    moved = -vectors[0] / np.linalg.norm(vectors[0])
    index.upsert(ReferenceItem(source=newest, sha256="f" * 64, label=label, vector=moved))

    reopened = LocalVectorIndex(tmp_path / "reference-index.sqlite3", IndexSettings(ann_min_vectors=100))
    [best, *_] = reopened.search(moved[None, :], 10)[0]
    assert best.source == newest and best.label == label and best.similarity == pytest.approx(1.0)
    assert reopened.count() == 400


def test_bytes_intake_refuses_never_become_a_reference(tmp_path: Path, tiny_encoder) -> None:
    world = World(tmp_path, tiny_encoder)
    tiny = io.BytesIO()
    Image.new("RGB", (32, 32), (120, 30, 30)).save(tiny, format="PNG")
    world.assessment = _assessment(world.objects, tiny.getvalue(), PhotoStatus.ANALYSED)
    with pytest.raises(ReferencePhotoUnusable, match=r"photo 01: .*64"):
        world.add(_review())
    assert world.index.count() == 0 and world.encoder_loads == 0


class DownPhotoRegistry(InMemoryPhotoRegistry):
    def fingerprint(self, assessment_id: str, photo_id: str) -> PhotoFingerprint | None:
        raise PhotoRegistryUnavailable("throttled past the retries")


def test_without_a_registry_or_while_it_is_down_the_original_is_embedded_again(world: World) -> None:
    world.feedback.registry = DownPhotoRegistry()
    world.add(_review())
    assert len(world.reembed_reasons) == 1
    assert world.reembed_reasons[0].startswith("the photo registry could not be read")

    world.feedback.registry = None
    world.add(_review(damaged=False))
    assert world.reembed_reasons[1] == "no photo registry is configured (the reused-photo check is off)"
    assert world.index.count() == 1


@pytest.mark.slow
def test_a_photo_assessed_locally_joins_the_index_with_the_embedding_the_assessment_stored(
    tmp_path: Path, tiny_model_name: str, sample_index_path: Path
) -> None:
    """The local wiring end to end: the runner remembers each photo's embedding in the SQLite photo
    registry; the reference feedback built by `build_reference_feedback` reuses it (no encoder load)."""
    import shutil

    from vehicle_assessment.adapters.local.wiring import build_local_ports, build_reference_feedback
    from vehicle_assessment.pipeline import AssessmentRunner, PhotoUpload
    from vehicle_assessment.settings import EncoderSettings, LocalSettings, SpeechSettings, VpicSettings

    settings = LocalSettings(
        data_dir=tmp_path / "data",
        encoder=EncoderSettings(model_name=tiny_model_name, untrained=True, threads=2),
        vpic=VpicSettings(enabled=False),
        speech=SpeechSettings(enabled=False),
    )
    settings.data_dir.mkdir()
    shutil.copy(sample_index_path, settings.index_path)
    ports = build_local_ports(settings)
    assessment = AssessmentRunner(ports, settings.rules).assess(
        AssessmentInputs(vin="1FTMW1T88MFA00001"), [PhotoUpload("front.jpg", PHOTO.read_bytes())]
    )
    [photo] = assessment.photos
    assert photo.status == PhotoStatus.ANALYSED
    registry = ports.photo_registry
    assert registry is not None
    stored = registry.fingerprint(assessment.assessment_id, photo.photo_id)
    assert stored is not None and stored.vector is not None

    feedback = build_reference_feedback(settings)  # opens the same registry file the runner wrote
    feedback._encoder_factory = lambda: pytest.fail("the stored embedding should have been reused")
    source = feedback.add_reviewed_photo(assessment, photo, _review())

    index = LocalVectorIndex(settings.index_path)
    rows, matrix = index.vectors_and_labels()
    [(position, row)] = [(i, r) for i, r in enumerate(rows) if r.source == source]
    assert row.provenance is not None and row.provenance.assessment_id == assessment.assessment_id
    assert np.allclose(matrix[position], np.asarray(stored.vector) / np.linalg.norm(stored.vector), atol=1e-6)
    assert FilesystemObjectStore(settings.objects_dir).exists(reference_image_key(photo.sha256))
