"""EventBridgePublisher under botocore's Stubber: the request it sends, and every way PutEvents fails.

PutEvents answers HTTP 200 when an entry failed (FailedEntryCount, and ErrorCode on the entry), so
a publisher that only trusts the status code would drop the event silently.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from vehicle_assessment.adapters.aws.eventbridge import MAX_ENTRY_BYTES, EventBridgePublisher, EventTooLarge
from vehicle_assessment.domain.events import EVENT_SOURCE, AssessmentFinished, assessment_finished
from vehicle_assessment.domain.models import Assessment, AssessmentInputs, AssessmentStatus
from vehicle_assessment.ports import EventPublishFailed

VIN = "1FTMW1T88MFA00001"
BUS = "vehicle-assessment-events"
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def _event(reason: str = "ValueError: bad VIN") -> AssessmentFinished:
    return assessment_finished(
        Assessment(
            assessment_id="a-1",
            vin=VIN,
            status=AssessmentStatus.FAILED,
            created_at=NOW,
            updated_at=NOW,
            inputs=AssessmentInputs(vin=VIN),
            failed_step="DecodeVin",
            failure_reason=reason,
        )
    )


def _expected_entry(event: AssessmentFinished) -> dict[str, object]:
    return {
        "EventBusName": BUS,
        "Source": EVENT_SOURCE,
        "DetailType": "Assessment Finished",
        "Detail": event.model_dump_json(),
    }


def test_publish_sends_one_entry_on_the_bus(stub) -> None:
    client, stubber = stub("events")
    event = _event()
    stubber.add_response(
        "put_events",
        {"FailedEntryCount": 0, "Entries": [{"EventId": "11111111-2222-3333-4444-555555555555"}]},
        {"Entries": [_expected_entry(event)]},
    )
    EventBridgePublisher(client, BUS).publish(event)
    stubber.assert_no_pending_responses()
    assert json.loads(str(_expected_entry(event)["Detail"]))["event_id"] == "a-1:FAILED"


def test_a_failed_entry_in_a_200_answer_raises_with_its_error_code(stub) -> None:
    client, stubber = stub("events")
    stubber.add_response(
        "put_events",
        {
            "FailedEntryCount": 1,
            "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "Internal service error"}],
        },
    )
    with pytest.raises(EventPublishFailed, match=r"a-1:FAILED .*InternalFailure: Internal service error"):
        EventBridgePublisher(client, BUS).publish(_event())


def test_an_entry_without_an_event_id_is_not_taken_for_success(stub) -> None:
    client, stubber = stub("events")
    stubber.add_response("put_events", {"FailedEntryCount": 0, "Entries": [{}]})
    with pytest.raises(EventPublishFailed, match="no EventId"):
        EventBridgePublisher(client, BUS).publish(_event())


def test_a_refused_call_becomes_event_publish_failed(stub) -> None:
    client, stubber = stub("events")
    stubber.add_client_error(
        "put_events",
        service_error_code="ResourceNotFoundException",
        service_message="Event bus does not exist.",
    )
    with pytest.raises(EventPublishFailed, match="ResourceNotFoundException"):
        EventBridgePublisher(client, BUS).publish(_event())


def test_an_entry_over_256_kb_is_refused_before_any_call(stub) -> None:
    client, _ = stub("events")  # no response stubbed: a call would fail the test differently
    with pytest.raises(EventTooLarge, match=f"under {MAX_ENTRY_BYTES}"):
        EventBridgePublisher(client, BUS).publish(_event("x" * MAX_ENTRY_BYTES))


def test_a_workflow_function_without_the_bus_name_cannot_build_a_publisher(aws_credentials) -> None:
    from vehicle_assessment.aws_runtime import factory
    from vehicle_assessment.aws_runtime.config import WorkflowConfig

    config = WorkflowConfig(table_name="assessments", bucket_name="photos", event_bus_name=None)
    with pytest.raises(ValueError, match="EVENT_BUS_NAME is not configured"):
        factory.build_event_publisher(config)
    publisher = factory.build_event_publisher(config.model_copy(update={"event_bus_name": BUS}))
    assert isinstance(publisher, EventBridgePublisher) and publisher.bus_name == BUS
