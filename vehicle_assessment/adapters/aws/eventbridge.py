"""EventPublisher on an EventBridge event bus (PutEvents), one event per call."""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from vehicle_assessment.adapters.aws.errors import error_code
from vehicle_assessment.domain.events import EVENT_SOURCE, AssessmentFinished
from vehicle_assessment.ports import EventPublishFailed

logger = logging.getLogger(__name__)

# "The total entry size must be less than 256KB": Source, DetailType, Detail (and each Resource) in
# UTF-8 bytes, plus 14 for a Time we do not set
# (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevent-size.html).
MAX_ENTRY_BYTES = 256 * 1024


class EventTooLarge(ValueError):
    """The entry exceeds PutEvents' size limit; retrying cannot help (not an EventPublishFailed)."""


def entry_size(entry: dict[str, Any]) -> int:
    size = sum(len(str(entry.get(key, "")).encode()) for key in ("Source", "DetailType", "Detail"))
    return size + sum(len(resource.encode()) for resource in entry.get("Resources", []))


class EventBridgePublisher:
    def __init__(self, client: Any, bus_name: str) -> None:
        self.client = client
        self.bus_name = bus_name

    def entry(self, event: AssessmentFinished) -> dict[str, Any]:
        entry = {
            "EventBusName": self.bus_name,
            "Source": EVENT_SOURCE,
            "DetailType": event.DETAIL_TYPE,
            "Detail": event.model_dump_json(),
        }
        size = entry_size(entry)
        if size >= MAX_ENTRY_BYTES:
            raise EventTooLarge(
                f"event {event.event_id} is {size} bytes; PutEvents takes under {MAX_ENTRY_BYTES}"
            )
        return entry

    def publish(self, event: AssessmentFinished) -> None:
        entry = self.entry(event)
        try:
            # The client's botocore retries (adaptive/standard mode) cover throttling of the call.
            response = self.client.put_events(Entries=[entry])
        except (ClientError, BotoCoreError) as exc:
            raise EventPublishFailed(
                f"PutEvents for {event.event_id} failed: {error_code(exc) or type(exc).__name__}: {exc}"
            ) from exc
        # PutEvents answers 200 even when an entry failed: FailedEntryCount counts them and each failed
        # entry carries ErrorCode/ErrorMessage instead of an EventId; the caller must resend it
        # (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevents.html).
        entries = response.get("Entries") or [{}]
        [result] = entries
        if response.get("FailedEntryCount", 0) or result.get("ErrorCode") or not result.get("EventId"):
            raise EventPublishFailed(
                f"EventBridge refused event {event.event_id} on bus {self.bus_name}: "
                f"{result.get('ErrorCode', 'no EventId')}: {result.get('ErrorMessage', '')}".rstrip(": ")
            )
        logger.info(
            "published %s %s as EventBridge event %s", event.DETAIL_TYPE, event.event_id, result["EventId"]
        )
