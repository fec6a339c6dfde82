"""The reused-photo check in the analyse-photo handler: moto DynamoDB (the registry's items in the
assessment table, under the analyse role's grants), fake encoder and index."""

from __future__ import annotations

import io
import threading
import time
from typing import Any

import pytest
from PIL import Image

from functions import analyse_photo, decode_vin, value, workflow_deps
from tests.aws_runtime.conftest import NOW, VIN, Aws, FakeEncoder, FakeIndex
from tests.aws_runtime.observed import Observed
from vehicle_assessment.adapters.aws.photo_registry import DynamoPhotoRegistry
from vehicle_assessment.adapters.memory import InMemoryPhotoRegistry
from vehicle_assessment.aws_runtime import factory
from vehicle_assessment.aws_runtime.uploads import open_assessment
from vehicle_assessment.domain.models import AssessmentInputs, PhotoStatus, ReuseMatchKind

pytestmark = pytest.mark.slow  # handlers end to end on moto (the registries' contract: tests/services)

OTHER_VIN = "5UXWX7C56BA100007"


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> FakeEncoder:
    encoder = FakeEncoder()
    monkeypatch.setattr(factory, "build_encoder", lambda config: encoder)
    monkeypatch.setattr(factory, "build_reference_index", lambda config: FakeIndex())
    return encoder


def _upload(aws: Aws, repository: Any, assessment_id: str, vin: str, data: bytes) -> None:
    repository.create(open_assessment(AssessmentInputs(vin=vin), 1, NOW, assessment_id))
    key = f"uploads/{assessment_id}/1.jpg"
    aws.put_photo(key, data)
    repository.record_photo(assessment_id, key, len(data), "image/jpeg", NOW, "1", "1.jpg")


def _analyse(assessment_id: str, context: Any) -> dict[str, Any]:
    batch = decode_vin.handler({"assessment_id": assessment_id}, context)
    [photo] = batch["photos"]
    return analyse_photo.handler({"assessment_id": assessment_id, "photo": photo}, context)


def _resized_copy(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        smaller = image.convert("RGB").resize((round(image.width * 0.7), round(image.height * 0.7)))
    out = io.BytesIO()
    smaller.save(out, "JPEG", quality=70)
    return out.getvalue()


def test_a_copy_under_another_vin_is_flagged_by_the_analyse_step(
    aws, repository, fakes, jpeg_bytes, other_jpeg_bytes, lambda_context, observed: Observed
) -> None:
    _upload(aws, repository, "first", VIN, jpeg_bytes)
    _upload(aws, repository, "copy", OTHER_VIN, _resized_copy(jpeg_bytes))
    _upload(aws, repository, "other", OTHER_VIN, other_jpeg_bytes)

    first = _analyse("first", lambda_context)
    copy = _analyse("copy", lambda_context)
    other = _analyse("other", lambda_context)

    assert (first["possible_reuse"], copy["possible_reuse"], other["possible_reuse"]) == (False, True, False)
    photo = repository.get("copy").photos[0]
    assert photo.status == PhotoStatus.ANALYSED and photo.perceptual_hash
    [match] = photo.reuse_matches
    assert (match.assessment_id, match.photo_id, match.vin, match.kind) == (
        "first",
        "1",
        VIN,
        ReuseMatchKind.PERCEPTUAL,
    )
    assert observed.metrics["PossibleReuse"] == 1
    # A retried iteration finds its own entry (same VIN): still the one match, never itself.
    assert _analyse("copy", lambda_context)["possible_reuse"] is True
    assert [m.assessment_id for m in repository.get("copy").photos[0].reuse_matches] == ["first"]
    # The registry kept the embedding and its encoder for learning from reviews.
    registry = workflow_deps.get_photo_registry()
    assert registry is not None
    remembered = registry.fingerprint("first", "1")
    assert remembered is not None and remembered.encoder == fakes.identity and remembered.vector


def test_a_registry_outage_is_a_warning_and_a_metric_not_a_failed_photo(
    aws, repository, fakes, jpeg_bytes, lambda_context, observed: Observed, monkeypatch
) -> None:
    monkeypatch.setattr(factory, "build_photo_registry", lambda config: InMemoryPhotoRegistry(failures=2))
    _upload(aws, repository, "down", VIN, jpeg_bytes)

    outcome = _analyse("down", lambda_context)

    assert outcome["status"] == "analysed" and outcome["possible_reuse"] is False
    assert "not checked for reuse" in outcome["reuse_unchecked"]
    assert observed.metrics["ReuseCheckUnavailable"] == 1
    photo = repository.get("down").photos[0]
    assert photo.reuse_unchecked == outcome["reuse_unchecked"]
    value.handler({"assessment_id": "down"}, lambda_context)
    assert any(photo.reuse_unchecked in warning for warning in repository.get("down").warnings)


def test_a_registry_past_its_deadline_leaves_the_photo_analysed_unchecked_and_the_step_prompt(
    aws, repository, fakes, jpeg_bytes, lambda_context, observed: Observed, monkeypatch
) -> None:
    """DynamoDB answers the registry's Queries no more (they hang, as past their client's timeouts):
    the step gives up on the check at the deadline, not at the Lambda timeout."""
    release = threading.Event()
    hung: list[str] = []

    def hang(**kwargs: Any) -> None:
        hung.append(kwargs["model"].name)
        release.wait(timeout=60)

    build = factory.build_photo_registry

    def slow_registry(config: Any) -> DynamoPhotoRegistry:
        registry = build(config)  # as deployed: its own DynamoDB client
        assert isinstance(registry, DynamoPhotoRegistry)
        registry.deadline_s = 0.5
        # Before the call is sent (moto answers at before-send), and on the registry's client only.
        registry.table.meta.client.meta.events.register("before-call.dynamodb.Query", hang)
        return registry

    monkeypatch.setattr(factory, "build_photo_registry", slow_registry)
    _upload(aws, repository, "slow", VIN, jpeg_bytes)
    batch = decode_vin.handler({"assessment_id": "slow"}, lambda_context)
    [photo_ref] = batch["photos"]
    try:
        started = time.monotonic()
        outcome = analyse_photo.handler({"assessment_id": "slow", "photo": photo_ref}, lambda_context)
        elapsed = time.monotonic() - started
    finally:
        release.set()

    assert hung and set(hung) == {"Query"}  # the repository's own reads and writes went through
    assert elapsed < 0.5 + 10  # generous: the Queries would have hung 60 s
    assert outcome["status"] == "analysed" and outcome["possible_reuse"] is False
    assert "search did not finish within its 0.5 s deadline" in outcome["reuse_unchecked"]
    assert observed.metrics["ReuseCheckUnavailable"] == 1
    photo = repository.get("slow").photos[0]
    assert photo.status == PhotoStatus.ANALYSED and photo.reuse_unchecked == outcome["reuse_unchecked"]
