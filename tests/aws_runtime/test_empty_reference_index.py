"""A fresh stack's reference index is empty: the analyse step says so and how to fix it, emits the
metric an operator alarms on, and MarkFailed records that reason; synth refuses a stack nobody may load."""

from __future__ import annotations

import json

import numpy as np
import pytest

from functions import analyse_photo, decode_vin, mark_failed
from tests.aws_runtime.conftest import IDENTITY, NOW, VIN, Aws, FakeEncoder
from vehicle_assessment.aws_runtime import factory
from vehicle_assessment.aws_runtime.uploads import open_assessment
from vehicle_assessment.aws_runtime.workflow_steps import REFERENCE_INDEX_EMPTY
from vehicle_assessment.domain.models import AssessmentInputs, AssessmentStatus, EncoderIdentity, Neighbour
from vehicle_assessment.ports import IndexMismatch, ReferenceIndexEmpty

pytestmark = pytest.mark.slow  # handlers on moto

# What the stack's index creator records: the configured encoder, no weights fingerprint.
CONFIGURED = EncoderIdentity(model_name="fake-clip", pretrained="other", untrained=False, dimension=4)


class FreshIndex:
    """The OpenSearch index right after deploy: bound to the configured encoder, holding nothing."""

    def __init__(self, identity: EncoderIdentity, documents: int = 0) -> None:
        self.identity = identity
        self.documents = documents

    def search(self, vectors: np.ndarray, k: int) -> list[list[Neighbour]]:
        raise IndexMismatch("the reference index reference-photos returned no neighbours; is it empty?")

    def count(self) -> int:
        return self.documents


@pytest.fixture
def uploaded(aws: Aws, repository, jpeg_bytes) -> str:
    repository.create(open_assessment(AssessmentInputs(vin=VIN), 1, NOW, "empty-1"))
    aws.put_photo("uploads/empty-1/1.jpg", jpeg_bytes)
    repository.record_photo(
        "empty-1", "uploads/empty-1/1.jpg", len(jpeg_bytes), "image/jpeg", NOW, "1", "1.jpg"
    )
    return "empty-1"


@pytest.mark.parametrize("identity", [CONFIGURED, IDENTITY], ids=["unfingerprinted", "same-encoder"])
def test_the_analyse_step_names_the_empty_index_and_its_remedy(
    aws: Aws, repository, uploaded, observed, lambda_context, monkeypatch, identity
) -> None:
    monkeypatch.setattr(factory, "build_encoder", lambda config: FakeEncoder())
    monkeypatch.setattr(factory, "build_reference_index", lambda config: FreshIndex(identity))
    batch = decode_vin.handler({"assessment_id": uploaded}, lambda_context)
    with pytest.raises(ReferenceIndexEmpty) as raised:
        analyse_photo.handler({"assessment_id": uploaded, "photo": batch["photos"][0]}, lambda_context)
    assert str(raised.value) == REFERENCE_INDEX_EMPTY
    assert "`vehicle-assessment index build --target aws`" in REFERENCE_INDEX_EMPTY
    assert observed.metrics["ReferenceIndexEmpty"] == 1

    # The Catch hands the Lambda error to MarkFailed, which keeps the reason on the assessment.
    cause = {"errorType": "ReferenceIndexEmpty", "errorMessage": str(raised.value)}
    error = {"Error": "ReferenceIndexEmpty", "Cause": json.dumps(cause)}
    mark_failed.handler(
        {"assessment_id": uploaded, "failed_step": "AnalysePhoto", "error": error}, lambda_context
    )
    failed = repository.get(uploaded)
    assert failed.status == AssessmentStatus.FAILED
    assert failed.failure_reason == f"ReferenceIndexEmpty: {REFERENCE_INDEX_EMPTY}"


def test_a_real_mismatch_is_not_called_empty(
    aws: Aws, repository, uploaded, lambda_context, monkeypatch
) -> None:
    monkeypatch.setattr(factory, "build_encoder", lambda config: FakeEncoder())
    monkeypatch.setattr(
        factory, "build_reference_index", lambda config: FreshIndex(CONFIGURED, documents=500)
    )
    batch = decode_vin.handler({"assessment_id": uploaded}, lambda_context)
    with pytest.raises(IndexMismatch):
        analyse_photo.handler({"assessment_id": uploaded, "photo": batch["photos"][0]}, lambda_context)
