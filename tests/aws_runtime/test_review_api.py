"""The review loop through the Lambda handlers on moto: the workflow's handlers finish an assessment
whose photos the model is unsure of, then the API handler lists the queue, takes an appraiser's review
(revaluing and rewriting the descriptions), takes an edit, and refuses other callers and bad input."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from functions import analyse_photo, decode_vin, describe, speak, store, value
from functions import api as api_handler
from tests.aws_runtime.conftest import (
    ADMIN_CLAIMS,
    IDENTITY,
    NOW,
    VIN,
    Aws,
    FakeEncoder,
    FakeSpeaker,
    rest_event,
)
from vehicle_assessment.aws_runtime import factory
from vehicle_assessment.aws_runtime.authz import Scope
from vehicle_assessment.aws_runtime.uploads import open_assessment
from vehicle_assessment.domain import limits
from vehicle_assessment.domain.description import TemplateDescriber
from vehicle_assessment.domain.models import AssessmentInputs, DamageType, Neighbour, ReferenceLabel, Severity

pytestmark = pytest.mark.slow  # handlers end to end on moto

APPRAISER = {**ADMIN_CLAIMS, "username": "ana.appraiser", "cognito:groups": "appraiser"}
YARD = {**ADMIN_CLAIMS, "username": "yard-user", "cognito:groups": "yard"}
MACHINE = {
    "sub": "integration",
    "client_id": "integration",
    "token_use": "access",
    "scope": f"{Scope.READ} {Scope.WRITE}",
}


class SplitIndex:
    """Neighbours that disagree (3 dented, 2 clean): every verdict is unsure and needs a person."""

    identity = IDENTITY

    def search(self, vectors: np.ndarray, k: int) -> list[list[Neighbour]]:
        dent = ReferenceLabel(damaged=True, damage_type=DamageType.DENT, severity=Severity.MODERATE)
        clean = ReferenceLabel(damaged=False, damage_type=DamageType.NONE, severity=Severity.NONE)
        return [
            [
                Neighbour(
                    reference_id=f"r{i}",
                    source=f"ref/{i}.jpg",
                    similarity=0.9,
                    label=dent if i < 3 else clean,
                )
                for i in range(5)
            ]
            for _ in range(len(vectors))
        ]


@pytest.fixture(autouse=True)
def fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factory, "build_encoder", lambda config: FakeEncoder())
    monkeypatch.setattr(factory, "build_reference_index", lambda config: SplitIndex())
    monkeypatch.setattr(factory, "build_describer", lambda config, **_: TemplateDescriber())
    monkeypatch.setattr(factory, "build_speaker", lambda config: FakeSpeaker())


@pytest.fixture
def finished(
    aws: Aws, repository: Any, jpeg_bytes: bytes, other_jpeg_bytes: bytes, lambda_context: Any
) -> str:
    """Two photos uploaded, then every workflow step's handler, as the state machine runs them."""
    inputs = AssessmentInputs(vin=VIN, color="white", mileage=30_000, estimate_usd=25_000)
    repository.create(open_assessment(inputs, 2, NOW, "rv-1"))
    for n, data in ((1, jpeg_bytes), (2, other_jpeg_bytes)):
        key = f"uploads/rv-1/{n}.jpg"
        aws.put_photo(key, data)
        repository.record_photo("rv-1", key, len(data), "image/jpeg", NOW, str(n), f"{n}.jpg")
    batch = decode_vin.handler({"assessment_id": "rv-1"}, lambda_context)
    for photo in batch["photos"]:
        analyse_photo.handler({"assessment_id": "rv-1", "photo": photo}, lambda_context)
    for module in (value, describe, speak, store):
        module.handler({"assessment_id": "rv-1"}, lambda_context)
    return "rv-1"


def _call(event: dict[str, Any], context: Any) -> tuple[int, dict[str, Any]]:
    response = api_handler.handler(event, context)
    return response["statusCode"], json.loads(response["body"])


def _queue(
    context: Any, claims: dict[str, Any] = APPRAISER, limit: str | None = None
) -> tuple[int, dict[str, Any]]:
    return _call(
        rest_event("GET", "/reviews", query={"limit": limit} if limit else None, claims=claims), context
    )


def _review(
    context: Any, photo_id: str, body: Any, claims: dict[str, Any] = APPRAISER, assessment_id: str = "rv-1"
) -> tuple[int, dict[str, Any]]:
    path = f"/assessments/{assessment_id}/photos/{photo_id}/review"
    event = rest_event(
        "PUT",
        path,
        body,
        path_parameters={"assessment_id": assessment_id, "photo_id": photo_id},
        resource="/assessments/{assessment_id}/photos/{photo_id}/review",
        claims=claims,
    )
    return _call(event, context)


def _edit(
    context: Any, language: str, body: Any, claims: dict[str, Any] = APPRAISER, style: str | None = None
) -> tuple[int, dict[str, Any]]:
    event = rest_event(
        "PUT",
        f"/assessments/rv-1/descriptions/{language}",
        body,
        path_parameters={"assessment_id": "rv-1", "language": language},
        query={"style": style} if style else None,
        resource="/assessments/{assessment_id}/descriptions/{language}",
        claims=claims,
    )
    return _call(event, context)


SEVERE = {"damaged": True, "damage_type": "broken", "severity": "severe", "note": "door caved in"}
CLEAN = {"damaged": False, "damage_type": "none", "severity": "none"}


def test_the_loop_through_the_api(finished: str, repository: Any, lambda_context: Any) -> None:
    before = repository.get(finished)
    assert before.valuation.provisional and before.review_waiting_since is not None

    status, queue = _queue(lambda_context)
    assert status == 200
    [entry] = queue["entries"]
    assert entry["assessment_id"] == finished and entry["photos"] == {
        "1": ["low_confidence"],
        "2": ["low_confidence"],
    }

    status, view = _review(lambda_context, "1", SEVERE)
    assert status == 200, view
    photo = view["photos"][0]
    assert photo["reviews"][0]["reviewer"] == "ana.appraiser"  # the caller's sign-in, never the body
    assert photo["verdict"]["severity"] == "moderate"  # the model's verdict stays beside the review
    assert (
        view["valuation"]["photos"][0]["counted"] and view["valuation"]["photos"][0]["severity"] == "severe"
    )
    assert view["valuation"]["adjusted_value_usd"] != before.valuation.adjusted_value_usd
    assert {d["version"] for d in view["descriptions"]} == {2}
    assert {d["version"] for d in view["superseded_descriptions"]} == {1}
    actions = [h["action"] for h in view["history"]]
    assert actions[0] == "assessed" and actions[1:4] == ["reviewed", "revalued", "description_written"]
    assert view["received_photos"] == 2  # the assessment view, as GET answers it

    status, queue = _queue(lambda_context)
    assert [e["photos"] for e in queue["entries"]] == [{"2": ["low_confidence"]}]

    status, view = _review(lambda_context, "2", CLEAN)
    assert status == 200
    assert not view["valuation"]["provisional"] and view["review_reasons"] == []
    assert _queue(lambda_context)[1]["entries"] == []

    status, view = _edit(lambda_context, "en", {"text": "Clean white truck; the driver door is caved in."})
    assert status == 200, view
    english = next(d for d in view["descriptions"] if d["language"] == "en")
    assert (english["generator"], english["written_by"], english["version"]) == ("edited", "ana.appraiser", 4)
    assert view["history"][-1]["action"] == "description_edited"
    audio = next(a for a in view["audio"] if a["language"] == "en")
    assert audio["status"] == "generated"

    stored = repository.get(finished)
    assert [r.reviewer for p in stored.photos for r in p.reviews] == ["ana.appraiser", "ana.appraiser"]


@pytest.mark.parametrize(
    ("claims", "status"),
    [(YARD, 403), ({**ADMIN_CLAIMS}, 403), (MACHINE, 403), (None, 401)],
)
def test_only_appraisers_review_and_edit(
    finished: str, lambda_context: Any, claims: Any, status: int
) -> None:
    assert _review(lambda_context, "1", SEVERE, claims=claims)[0] == status
    assert _edit(lambda_context, "en", {"text": "Mine."}, claims=claims)[0] == status
    # Nothing was recorded.
    assert _queue(lambda_context)[1]["entries"][0]["photos"] == {
        "1": ["low_confidence"],
        "2": ["low_confidence"],
    }


def test_yard_staff_cannot_read_the_queue_but_admins_and_read_clients_can(
    finished: str, lambda_context: Any
) -> None:
    assert _queue(lambda_context, claims=YARD)[0] == 403
    assert _queue(lambda_context, claims={**ADMIN_CLAIMS})[0] == 200
    assert _queue(lambda_context, claims=MACHINE)[0] == 200


@pytest.mark.parametrize(
    ("photo_id", "body", "status", "message"),
    [
        ("9", SEVERE, 400, "has no photo '9'"),
        ("1", {**SEVERE, "severity": "none"}, 400, "invalid request"),  # damaged but severity none
        ("1", {**CLEAN, "damage_type": "dent"}, 400, "invalid request"),
        ("1", {**SEVERE, "note": "x" * (limits.MAX_REVIEW_NOTE_CHARS + 1)}, 400, "invalid request"),
        (
            "1",
            {**SEVERE, "reviewer": "someone-else"},
            400,
            "invalid request",
        ),  # who reviews is not the body's
        ("1", {**SEVERE, "severity": "catastrophic"}, 400, "invalid request"),
        ("1/../2", SEVERE, 404, ""),
    ],
)
def test_bad_reviews_are_refused_with_a_reason(
    finished: str, repository: Any, lambda_context: Any, photo_id: str, body: Any, status: int, message: str
) -> None:
    before = repository.get(finished)
    code, answer = _review(lambda_context, photo_id, body)
    assert code == status and message in answer["message"]
    assert "Traceback" not in json.dumps(answer)
    assert repository.get(finished) == before


def test_an_unknown_assessment_is_404_and_an_unfinished_one_409(
    finished: str, repository: Any, lambda_context: Any
) -> None:
    assert _review(lambda_context, "1", SEVERE, assessment_id="nope")[0] == 404
    repository.create(open_assessment(AssessmentInputs(vin=VIN), 1, NOW, "rv-open"))
    code, answer = _review(lambda_context, "1", SEVERE, assessment_id="rv-open")
    assert code == 409 and "AWAITING_PHOTOS" in answer["message"]


@pytest.mark.parametrize(
    ("language", "body", "style", "status", "message"),
    [
        ("fr", {"text": "Bonjour."}, None, 400, "no standard/fr description to edit"),
        ("en", {"text": "Hi."}, "auctioneer", 400, "no auctioneer/en description to edit"),
        ("en", {"text": "x" * (limits.MAX_DESCRIPTION_CHARS + 1)}, None, 400, "invalid request"),
        ("en", {"text": "ring \u0007 ring"}, None, 400, "control characters"),
        ("en", {"text": "ok"}, "poetic", 400, "invalid request"),
        ("EN", {"text": "ok"}, None, 400, "invalid request"),
    ],
)
def test_bad_edits_are_refused_with_a_reason(
    finished: str, lambda_context: Any, language: str, body: Any, style: str | None, status: int, message: str
) -> None:
    code, answer = _edit(lambda_context, language, body, style=style)
    assert code == status and message in answer["message"], answer


def test_regenerating_keeps_the_replaced_description(
    finished: str, repository: Any, lambda_context: Any
) -> None:
    event = rest_event(
        "POST",
        "/assessments/rv-1/descriptions",
        {"language": "en"},
        path_parameters={"assessment_id": "rv-1"},
        resource="/assessments/{assessment_id}/descriptions",
        claims=APPRAISER,
    )
    status, body = _call(event, lambda_context)
    assert status == 200 and body["description"]["version"] == 2
    stored = repository.get(finished)
    assert [d.version for d in stored.superseded_descriptions if d.language == "en"] == [1]
    assert stored.history[-1].action.value == "description_written"
