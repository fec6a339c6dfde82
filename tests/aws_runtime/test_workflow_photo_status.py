"""The workflow's handlers on copies of one photo and on photos none of which can be assessed.

Same setup as test_workflow_handlers.py: moto S3/DynamoDB, fake encoder/index/speaker.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from functions import analyse_photo, decode_vin, describe, speak, store, value
from tests.aws_runtime.conftest import NOW, VIN, Aws, FakeEncoder, FakeIndex, FakeSpeaker
from vehicle_assessment.aws_runtime import factory
from vehicle_assessment.aws_runtime.uploads import open_assessment
from vehicle_assessment.domain.description import TemplateDescriber
from vehicle_assessment.domain.models import AssessmentInputs, AssessmentStatus, PhotoStatus


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> FakeEncoder:
    encoder = FakeEncoder()
    monkeypatch.setattr(factory, "build_encoder", lambda config: encoder)
    monkeypatch.setattr(factory, "build_reference_index", lambda config: FakeIndex())
    monkeypatch.setattr(factory, "build_describer", lambda config, **_: TemplateDescriber())
    monkeypatch.setattr(factory, "build_speaker", lambda config: FakeSpeaker())
    return encoder


def _upload(aws: Aws, repository: Any, photos: dict[str, bytes]) -> str:
    inputs = AssessmentInputs(vin=VIN, estimate_usd=20_000)
    repository.create(open_assessment(inputs, len(photos), NOW, "wf-dup"))
    for photo_id, data in photos.items():
        key = f"uploads/wf-dup/{photo_id}.jpg"
        aws.put_photo(key, data)
        repository.record_photo("wf-dup", key, len(data), "image/jpeg", NOW, photo_id, f"{photo_id}.jpg")
    return "wf-dup"


def _run(assessment_id: str, context: Any, map_order: list[int]) -> dict[str, Any]:
    """The state machine's order, with the Map's iterations finishing in `map_order`."""
    batch = decode_vin.handler({"assessment_id": assessment_id}, context)
    for i in map_order:
        analyse_photo.handler({"assessment_id": assessment_id, "photo": batch["photos"][i]}, context)
    for module in (value, describe, speak):
        module.handler(batch, context)
    return store.handler({"assessment_id": assessment_id}, context)


def _tiny_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "gray").save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("map_order", [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]])
def test_copies_of_one_photo_are_valued_once_whatever_the_map_order(
    aws, repository, fakes, jpeg_bytes, other_jpeg_bytes, lambda_context, map_order
) -> None:
    # Ids from file names: "10" sorts before "2" as text, but photo 2 is the first copy.
    assessment_id = _upload(
        aws, repository, {"2": jpeg_bytes, "10": jpeg_bytes, "11": jpeg_bytes, "3": other_jpeg_bytes}
    )
    result = _run(assessment_id, lambda_context, map_order)
    assert result["status"] == "COMPLETED"

    assessment = repository.get(assessment_id)  # photo_results merged: the marks survive every read
    photos = {p.photo_id: p for p in assessment.photos}
    assert len(photos) == 4  # every upload stays accounted for
    assert photos["2"].status == PhotoStatus.ANALYSED and photos["3"].status == PhotoStatus.ANALYSED
    for copy in ("10", "11"):
        assert photos[copy].status == PhotoStatus.DUPLICATE
        assert photos[copy].duplicate_of == "2"
        assert photos[copy].reason and photos[copy].reason.startswith("duplicate of photo 2")
    valuation = assessment.valuation
    assert valuation is not None
    counted = {p.photo_id: p.counted for p in valuation.photos}
    assert counted == {"2": True, "3": True, "10": False, "11": False}
    # Two moderate dents (fake index): 1 - 0.75 * (1 - 0.5 * 0.25), not four of them.
    assert valuation.combined_depreciation == pytest.approx(0.34375)
    assert "photo 10 is a copy of photo 2: counted once" in valuation.notes
    assert valuation.provisional  # the fake encoder is untrained


def test_no_assessable_photo_ends_needs_photos(aws, repository, fakes, jpeg_bytes, lambda_context) -> None:
    tiny = _tiny_png()
    assessment_id = _upload(aws, repository, {"1": tiny, "2": tiny, "3": b"not a photo"})
    result = _run(assessment_id, lambda_context, [2, 1, 0])
    assert result == {"assessment_id": assessment_id, "status": "NEEDS_PHOTOS", "needs_review": True}

    assessment = repository.get(assessment_id)
    assert assessment.status == AssessmentStatus.NEEDS_PHOTOS
    statuses = {p.photo_id: p.status for p in assessment.photos}
    assert statuses == {"1": PhotoStatus.REJECTED, "2": PhotoStatus.DUPLICATE, "3": PhotoStatus.REJECTED}
    assert fakes.batches == []  # nothing reached the encoder
    assert assessment.valuation is not None and assessment.valuation.adjusted_value_usd is None
    assert any("new photos are needed" in r for r in assessment.review_reasons)
    english = next(d.text for d in assessment.descriptions if d.language == "en")
    assert "no photo could be assessed" in english and "%" not in english
    assert "Damage not assessed" in english


def test_a_redriven_map_and_value_step_mark_the_same_copies(
    aws, repository, fakes, jpeg_bytes, lambda_context
) -> None:
    assessment_id = _upload(aws, repository, {"1": jpeg_bytes, "2": jpeg_bytes})
    _run(assessment_id, lambda_context, [0, 1])
    first = repository.get(assessment_id)
    assert [p.status for p in first.photos] == [PhotoStatus.ANALYSED, PhotoStatus.DUPLICATE]

    copy = {"photo_id": "2", "object_key": f"uploads/{assessment_id}/2.jpg"}
    outcome = analyse_photo.handler({"assessment_id": assessment_id, "photo": copy}, lambda_context)
    assert (outcome["status"], outcome["reason"]) == ("analysed", None)  # no stale duplicate mark
    reanalysed = {p.photo_id: p for p in repository.get(assessment_id).photos}["2"]
    assert reanalysed.duplicate_of is None

    value.handler({"assessment_id": assessment_id}, lambda_context)
    again = repository.get(assessment_id)
    assert [p.status for p in again.photos] == [PhotoStatus.ANALYSED, PhotoStatus.DUPLICATE]
    assert again.photos[1].duplicate_of == "1" and again.valuation == first.valuation
