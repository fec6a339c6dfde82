"""The Step Functions task handlers, invoked as the state machine would, one after another.

S3 and DynamoDB are moto; the encoder, index, describer and speaker are in-memory fakes
injected through the factory (the SageMaker, OpenSearch, Bedrock and Polly adapters have their
own tests).
"""

from __future__ import annotations

import json

import pytest

from functions import analyse_photo, decode_vin, describe, mark_failed, speak, store, value
from tests.aws_runtime.conftest import NOW, VIN, Aws, FakeEncoder, FakeIndex, FakeSpeaker
from tests.stopped_executions import failure_input
from vehicle_assessment.aws_runtime import factory
from vehicle_assessment.aws_runtime.uploads import open_assessment
from vehicle_assessment.domain.description import TemplateDescriber
from vehicle_assessment.domain.models import (
    UNTRAINED_ENCODER_WARNING,
    AssessmentInputs,
    AssessmentStatus,
    AudioStatus,
    PhotoStatus,
)

pytestmark = pytest.mark.slow  # handlers end to end on moto (fast: tests/services)

MAX_STATE_BYTES = 4 * 1024  # far below Step Functions' 256 KB: the state carries ids only


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> FakeEncoder:
    encoder = FakeEncoder()
    monkeypatch.setattr(factory, "build_encoder", lambda config: encoder)
    monkeypatch.setattr(factory, "build_reference_index", lambda config: FakeIndex())
    monkeypatch.setattr(factory, "build_describer", lambda config, **_: TemplateDescriber())
    monkeypatch.setattr(factory, "build_speaker", lambda config: FakeSpeaker())
    return encoder


@pytest.fixture
def uploaded(aws: Aws, repository, jpeg_bytes, other_jpeg_bytes) -> str:
    """An assessment whose two photos have arrived, as the upload trigger leaves it."""
    inputs = AssessmentInputs(vin=VIN, color="white", mileage=30_000, estimate_usd=25_000)
    repository.create(open_assessment(inputs, 2, NOW, "wf-1"))
    for n, data in ((1, jpeg_bytes), (2, other_jpeg_bytes)):
        key = f"uploads/wf-1/{n}.jpg"
        aws.put_photo(key, data)
        repository.record_photo("wf-1", key, len(data), "image/jpeg", NOW, str(n), f"{n}.jpg")
    return "wf-1"


def _invoke(module, event: dict, context) -> dict:
    result = module.handler(event, context)
    assert len(json.dumps(result)) < MAX_STATE_BYTES
    return result


def test_the_steps_take_an_assessment_to_completed(aws, repository, fakes, uploaded, lambda_context) -> None:
    execution_input = {"assessment_id": uploaded}
    batch = _invoke(decode_vin, execution_input, lambda_context)
    assert batch == {
        "assessment_id": uploaded,
        "photos": [
            {"photo_id": "1", "object_key": f"uploads/{uploaded}/1.jpg"},
            {"photo_id": "2", "object_key": f"uploads/{uploaded}/2.jpg"},
        ],
    }
    assert repository.get(uploaded).status == AssessmentStatus.PROCESSING

    # The Map state's ItemSelector: {"assessment_id.$": "$.assessment_id", "photo.$": "$$.Map.Item.Value"}
    outcomes = [
        _invoke(analyse_photo, {"assessment_id": uploaded, "photo": photo}, lambda_context)
        for photo in batch["photos"]
    ]
    assert [o["status"] for o in outcomes] == ["analysed", "analysed"]
    assert fakes.batches == [1, 1]  # one photo per Map iteration

    state = batch  # Map ResultPath null: the batch passes on; the steps ignore what they do not need
    for module in (value, describe, speak):
        assert _invoke(module, state, lambda_context) == {"assessment_id": uploaded}
    done = _invoke(store, {"assessment_id": uploaded}, lambda_context)
    assert done == {"assessment_id": uploaded, "status": "COMPLETED", "needs_review": True}

    assessment = repository.get(uploaded)
    assert assessment.status == AssessmentStatus.COMPLETED
    assert assessment.vehicle is not None and assessment.vehicle.model_year == 2021
    assert [p.status for p in assessment.photos] == [PhotoStatus.ANALYSED, PhotoStatus.ANALYSED]
    assert all(len(p.sha256) == 64 for p in assessment.photos)
    assert assessment.valuation is not None and assessment.valuation.adjusted_value_usd < 25_000
    assert {d.language for d in assessment.descriptions} == {"en", "es"}
    assert [a.status for a in assessment.audio] == [AudioStatus.GENERATED] * 2
    assert aws.s3.get_object(Bucket="assessment-photos-test", Key=assessment.audio[0].object_key)[
        "Body"
    ].read()
    assert UNTRAINED_ENCODER_WARNING in assessment.warnings  # the fake encoder says it is untrained
    # Store published the assessment's one event on the bus; a subscribed rule delivered it.
    [event] = aws.finished_events()
    assert (event["source"], event["detail-type"]) == ("vehicle-assessment", "Assessment Finished")
    assert event["detail"]["event_id"] == f"{uploaded}:COMPLETED"
    assert event["detail"]["adjusted_value_usd"] == assessment.valuation.adjusted_value_usd


def test_decode_refuses_an_assessment_that_was_swept(aws, repository, uploaded, lambda_context) -> None:
    repository.mark_status(uploaded, AssessmentStatus.INCOMPLETE, {AssessmentStatus.AWAITING_PHOTOS}, NOW)
    with pytest.raises(RuntimeError, match="is INCOMPLETE"):
        decode_vin.handler({"assessment_id": uploaded}, lambda_context)


def test_mark_failed_records_the_step_and_a_one_line_reason(
    aws, repository, uploaded, lambda_context
) -> None:
    cause = {
        "errorMessage": "the reference index holds other vectors",
        "errorType": "IndexMismatch",
        "stackTrace": ['  File "/var/task/x.py", line 1, in handler\n'],
    }
    event = {
        "assessment_id": uploaded,
        "photos": [],
        "failed_step": "AnalysePhoto",
        "error": {"Error": "IndexMismatch", "Cause": json.dumps(cause)},
    }
    result = _invoke(mark_failed, event, lambda_context)
    assert result["status"] == "FAILED"
    assessment = repository.get(uploaded)
    assert assessment.failed_step == "AnalysePhoto"
    assert assessment.failure_reason == "IndexMismatch: the reference index holds other vectors"
    [published] = aws.finished_events()
    assert published["detail"]["event_id"] == f"{uploaded}:FAILED"
    assert published["detail"]["failed_step"] == "AnalysePhoto"


def test_a_timed_out_execution_marks_its_assessment_failed_once(
    aws, repository, uploaded, lambda_context, capsys
) -> None:
    decode_vin.handler({"assessment_id": uploaded}, lambda_context)  # PROCESSING, then the clock ran out

    capsys.readouterr()
    result = mark_failed.handler(failure_input(uploaded, "TIMED_OUT"), lambda_context)

    assert result["status"] == "FAILED"
    assert '"AssessmentFailed"' in capsys.readouterr().out  # the metric, in its EMF line
    assessment = repository.get(uploaded)
    assert (assessment.failed_step, assessment.failure_reason) == (
        "workflow",
        "the workflow timed out after its 1-hour limit",
    )
    [published] = aws.finished_events()
    assert published["detail"]["event_id"] == f"{uploaded}:FAILED"
    assert published["detail"]["failure_reason"] == "the workflow timed out after its 1-hour limit"


def test_a_late_stop_leaves_a_completed_assessment_completed(
    aws, repository, fakes, uploaded, lambda_context, capsys
) -> None:
    batch = decode_vin.handler({"assessment_id": uploaded}, lambda_context)
    for photo in batch["photos"]:
        analyse_photo.handler({"assessment_id": uploaded, "photo": photo}, lambda_context)
    for module in (value, describe, speak, store):
        module.handler({"assessment_id": uploaded}, lambda_context)
    done = repository.get(uploaded)

    capsys.readouterr()
    result = mark_failed.handler(failure_input(uploaded, "ABORTED"), lambda_context)

    assert result["status"] == "COMPLETED"
    assert '"AssessmentFailed"' not in capsys.readouterr().out  # nothing failed
    assert repository.get(uploaded) == done
    # Store's event, then the same one again (consumers dedupe on event_id); never a FAILED one.
    assert [e["detail"]["event_id"] for e in aws.finished_events()] == [f"{uploaded}:COMPLETED"] * 2


def test_a_stopped_execution_of_no_assessment_is_ignored(aws, lambda_context) -> None:
    result = mark_failed.handler(failure_input("started-by-hand", "ABORTED"), lambda_context)

    assert result == {"assessment_id": "started-by-hand", "status": None}
    assert aws.finished_events() == []


def test_a_task_input_missing_the_id_is_refused(aws, lambda_context) -> None:
    with pytest.raises(ValueError, match="assessment_id"):
        value.handler({"photos": []}, lambda_context)
