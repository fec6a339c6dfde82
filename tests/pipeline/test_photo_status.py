"""The local pipeline on copies of one photo, and on photos none of which can be assessed."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from vehicle_assessment.domain.models import AssessmentInputs, AssessmentStatus, PhotoStatus
from vehicle_assessment.domain.rules import AssessmentRules
from vehicle_assessment.pipeline import AssessmentRunner, PhotoUpload
from vehicle_assessment.report import render_assessment

from .test_local_pipeline import NOW, VIN, RecordedDecoder, _ports, _queries

pytestmark = pytest.mark.slow


def test_three_copies_of_one_photo_are_valued_once(tmp_path, tiny_encoder, sample_index_path) -> None:
    original = _queries()[0]
    copies = [PhotoUpload(f"copy-{n}.jpg", original.data) for n in (1, 2)]
    ports = _ports(tmp_path, tiny_encoder, sample_index_path, RecordedDecoder())
    runner = AssessmentRunner(ports, AssessmentRules(), clock=lambda: NOW)
    inputs = AssessmentInputs(vin=VIN, estimate_usd=30_000)
    result = runner.assess(inputs, [original, *copies])
    alone = runner.assess(inputs, [original])

    assert result.status == AssessmentStatus.COMPLETED, result.failure_reason
    assert [p.status for p in result.photos] == [
        PhotoStatus.ANALYSED,
        PhotoStatus.DUPLICATE,
        PhotoStatus.DUPLICATE,
    ]
    assert [p.duplicate_of for p in result.photos] == [None, "01", "01"]
    for photo in result.photos:  # every upload is kept as it came
        assert ports.objects.get(photo.object_key) == original.data
    valuation, single = result.valuation, alone.valuation
    assert valuation is not None and single is not None
    # Three copies move exactly as much money as the photo alone.
    assert valuation.combined_depreciation == single.combined_depreciation
    assert valuation.adjusted_value_usd == single.adjusted_value_usd
    assert [p.counted for p in valuation.photos][1:] == [False, False]
    assert "photo 02 is a copy of photo 01: counted once" in valuation.notes
    assert "photo 03 is a copy of photo 01: counted once" in valuation.notes
    # The untrained test encoder: always provisional, and every description says so.
    assert valuation.provisional
    assert all("Provisional assessment." in d.text or "provisional" in d.text for d in result.descriptions)
    report = render_assessment(result)
    assert "DUPLICATE: duplicate of photo 01" in report
    assert ports.repository.get(result.assessment_id) == result


def _png(size: tuple[int, int], colour: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def test_no_assessable_photo_ends_needs_photos(tmp_path, tiny_encoder, sample_index_path) -> None:
    blank = _png((400, 300), "gray")  # featureless: rejected as too blurry
    uploads = [
        PhotoUpload("blank.png", blank),
        PhotoUpload("blank-again.png", blank),
        PhotoUpload("dot.png", _png((1, 1), "red")),
    ]
    ports = _ports(tmp_path, tiny_encoder, sample_index_path, RecordedDecoder())
    result = AssessmentRunner(ports, AssessmentRules(), clock=lambda: NOW).assess(
        AssessmentInputs(vin=VIN, estimate_usd=30_000), uploads
    )

    assert result.status == AssessmentStatus.NEEDS_PHOTOS
    assert [p.status for p in result.photos] == [
        PhotoStatus.REJECTED,
        PhotoStatus.DUPLICATE,
        PhotoStatus.REJECTED,
    ]
    assert result.valuation is not None and result.valuation.adjusted_value_usd is None
    assert result.valuation.provisional
    for description in result.descriptions:
        assert "%" not in description.text  # no damage figure in any language
    english = next(d.text for d in result.descriptions if d.language == "en")
    assert "no photo could be assessed" in english
    assert "Damage not assessed: $30,000 is the undamaged value" in english
    assert any("new photos are needed" in r for r in result.review_reasons)
    assert "NEEDS_PHOTOS" in render_assessment(result) and "NEEDS PHOTOS:" in render_assessment(result)
    assert ports.repository.get(result.assessment_id).status == AssessmentStatus.NEEDS_PHOTOS
