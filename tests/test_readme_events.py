"""README's completion-events section states the event the code publishes: its example validates."""

from __future__ import annotations

import json
import re

from vehicle_assessment.domain.events import EVENT_SOURCE, AssessmentFinished

from .conftest import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
SECTION = README.split("### Completion events\n", 1)[1].split("\n### ", 1)[0]


def test_the_example_event_is_what_the_publisher_sends() -> None:
    block = re.search(r"```json\n(.*?)```", SECTION, re.DOTALL)
    assert block, "the section shows an example event"
    envelope = json.loads(block.group(1))
    assert (envelope["source"], envelope["detail-type"]) == (EVENT_SOURCE, AssessmentFinished.DETAIL_TYPE)
    detail = AssessmentFinished.model_validate(envelope["detail"])
    assert detail.event_id == f"{detail.assessment_id}:{detail.status.value}"
    assert envelope["detail"] == json.loads(detail.model_dump_json())  # every field, none extra


def test_the_subscription_example_matches_our_source_and_detail_type() -> None:
    assert f'"source": ["{EVENT_SOURCE}"]' in SECTION
    assert f'"detail-type": ["{AssessmentFinished.DETAIL_TYPE}"]' in SECTION
