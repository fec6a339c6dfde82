"""Learning from reviews on AWS, through the handlers on moto: the API's review "as reference" records
REFERENCE_PENDING and queues an asynchronous invocation of the reference feedback function (a Stubber'd
Lambda client); that function adds the photo to OpenSearch (the local AOSS fake) with provenance,
reusing the stored embedding (no endpoint call) or embedding it again through a Stubber'd SageMaker
runtime, and records REFERENCE_ADDED or REFERENCE_FAILED (with the metric)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.stub import ANY, Stubber
from PIL import Image

from functions import reference_feedback
from tests.aws_adapters.test_aws_opensearch_index import INDEX, bulk_ok, fake_aoss, mapping_answer
from tests.aws_adapters.test_aws_sagemaker_encoder import answer as endpoint_answer
from tests.aws_runtime.conftest import REGION, FakeSpeaker
from tests.aws_runtime.test_review_api import APPRAISER, SEVERE, SplitIndex, _review, finished
from vehicle_assessment.adapters.aws import photo_registry
from vehicle_assessment.adapters.aws.opensearch_index import OpenSearchReferenceIndex
from vehicle_assessment.adapters.aws.sagemaker_encoder import SageMakerEncoder
from vehicle_assessment.aws_runtime import factory
from vehicle_assessment.domain.description import TemplateDescriber
from vehicle_assessment.domain.models import EncoderIdentity, HistoryAction
from vehicle_assessment.domain.upload_keys import reference_image_key

pytestmark = [pytest.mark.slow, pytest.mark.allow_hosts(["127.0.0.1"])]
__all__ = ["fake_aoss", "finished"]  # fixtures, imported for pytest

FEEDBACK_ALIAS = "arn:aws:lambda:us-east-1:123456789012:function:reference-feedback:live"
ENDPOINT = "vda-encoder"
# A trained encoder whose weights are recorded: its stored embeddings may be reused by the index.
PINNED = EncoderIdentity(
    model_name="ViT-B-32", pretrained="laion2b", untrained=False, dimension=4, weights_fingerprint="ab" * 32
)
STORED = [1.0, 0.0, 0.0, 0.0]  # what the analyse step's encoder gave every photo
AS_REFERENCE = {**SEVERE, "as_reference": True}


class PinnedEncoder:
    identity = PINNED

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        return np.array([STORED] * len(images), dtype=np.float32)


class PinnedSplitIndex(SplitIndex):
    identity = PINNED


class Lambda:
    """The API's Lambda client under a Stubber; what it was asked to invoke."""

    def __init__(self) -> None:
        self.client = boto3.client(
            "lambda", region_name=REGION, config=Config(retries={"total_max_attempts": 1})
        )
        self.stubber = Stubber(self.client)
        self.payloads: list[dict[str, Any]] = []
        self.client.meta.events.register("before-parameter-build.lambda.Invoke", self._capture)

    def _capture(self, params: dict[str, Any], **_: Any) -> None:
        self.payloads.append(json.loads(params["Payload"]))

    def queues(self) -> None:
        expected = {"FunctionName": FEEDBACK_ALIAS, "InvocationType": "Event", "Payload": ANY}
        self.stubber.add_response("invoke", {"StatusCode": 202}, expected)


class Endpoint:
    """The SageMaker runtime under a Stubber; the encoder is built only when a photo is embedded again."""

    def __init__(self) -> None:
        self.client = boto3.client(
            "sagemaker-runtime", region_name=REGION, config=Config(retries={"total_max_attempts": 1})
        )
        self.stubber = Stubber(self.client)
        self.stubber.activate()
        self.built = 0

    def encoder(self, *_: Any) -> SageMakerEncoder:
        self.built += 1
        return SageMakerEncoder(self.client, ENDPOINT, PINNED)


@pytest.fixture
def lambda_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[Lambda]:
    stubbed = Lambda()
    original = factory.build_reference_requester

    def requester(config: Any) -> Any:
        built: Any = original(config)  # the configured one, its client swapped for the stubbed one
        if built is not None:
            built.client = stubbed.client
        return built

    monkeypatch.setattr(factory, "build_reference_requester", requester)
    with stubbed.stubber:
        yield stubbed


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[Endpoint]:
    stubbed = Endpoint()
    monkeypatch.setattr(factory, "sagemaker_encoder", stubbed.encoder)
    yield stubbed
    stubbed.stubber.deactivate()


@pytest.fixture(autouse=True)
def wiring(monkeypatch: pytest.MonkeyPatch, fake_aoss: Any) -> Any:
    """The workflow's encoder is a pinned one (so its embeddings are reusable); the feedback function's
    OpenSearch client talks to the local AOSS fake; its SAGEMAKER/OPENSEARCH settings as the stack sets."""
    fake, client = fake_aoss
    monkeypatch.setattr(factory, "build_encoder", lambda config: PinnedEncoder())
    monkeypatch.setattr(factory, "build_reference_index", lambda config: PinnedSplitIndex())
    monkeypatch.setattr(factory, "build_describer", lambda config, **_: TemplateDescriber())
    monkeypatch.setattr(factory, "build_speaker", lambda config: FakeSpeaker())
    monkeypatch.setattr(
        OpenSearchReferenceIndex,
        "from_settings",
        classmethod(
            lambda cls, settings, region, identity, credentials: cls(client, settings.index_name, identity)
        ),
    )
    monkeypatch.setenv("REFERENCE_FEEDBACK_FUNCTION", FEEDBACK_ALIAS)
    monkeypatch.setenv("SAGEMAKER", json.dumps({"endpoint_name": ENDPOINT, "identity": PINNED.model_dump()}))
    monkeypatch.setenv(
        "OPENSEARCH", json.dumps({"collection_endpoint": "collection.example", "index_name": INDEX})
    )
    fake.on("GET", f"/{INDEX}/_mapping", mapping_answer(PINNED))
    fake.on("POST", f"/{INDEX}/_search", (200, {"hits": {"hits": []}}))
    fake.on("POST", "/_bulk", bulk_ok)
    return fake


def _indexed(fake: Any) -> list[dict[str, Any]]:
    """The documents the feedback function wrote to the index."""
    return [
        line for request in fake.sent("POST", "/_bulk") for line in request.ndjson() if "embedding" in line
    ]


def _review_as_reference(lambda_api: Lambda, context: Any) -> dict[str, Any]:
    lambda_api.queues()
    status, view = _review(context, "1", AS_REFERENCE)
    assert status == 200, view
    return view


def test_a_review_as_reference_is_queued_then_added_with_provenance_from_the_stored_embedding(
    finished: str,
    repository: Any,
    aws: Any,
    lambda_api: Lambda,
    endpoint: Endpoint,
    wiring: Any,
    observed: Any,
    lambda_context: Any,
) -> None:
    view = _review_as_reference(lambda_api, lambda_context)

    # The route only queued the addition: pending, on the record, within the gateway's time.
    assert view["history"][-1]["action"] == "reference_pending"
    [request] = lambda_api.payloads
    assert request["assessment_id"] == finished and request["photo_id"] == "1"
    assert not _indexed(wiring)

    assert reference_feedback.handler(request, lambda_context) == {"status": "reference_added"}

    [document] = _indexed(wiring)
    assert document["embedding"] == pytest.approx(STORED)  # the analyse step's vector, reused
    assert endpoint.built == 0  # so no endpoint call at all
    assert (document["damaged"], document["damage_type"], document["severity"]) == (True, "broken", "severe")
    assert document["origin"] == "review" and document["source"] == f"review/{finished}/1"
    assert document["provenance"]["reviewer"] == "ana.appraiser"
    assert (document["provenance"]["assessment_id"], document["provenance"]["photo_id"]) == (finished, "1")
    stored = repository.get(finished)
    photo = stored.photos[0]
    assert document["sha256"] == photo.sha256
    display = aws.s3.get_object(Bucket="assessment-photos-test", Key=reference_image_key(photo.sha256))
    assert display["ContentType"] == "image/jpeg"
    actions = [(h.action, h.photo_id) for h in stored.history]
    assert actions[-2:] == [(HistoryAction.REFERENCE_PENDING, "1"), (HistoryAction.REFERENCE_ADDED, "1")]
    assert stored.history[-1].after == f"review/{finished}/1"
    assert observed.metrics["ReferenceAdded"] == 1 and observed.metrics["ReferenceFeedbackFailed"] == 0

    # Lambda may deliver an event twice: the second delivery writes nothing.
    assert reference_feedback.handler(request, lambda_context) == {"status": "already_recorded"}
    assert len(_indexed(wiring)) == 1
    assert len(repository.get(finished).history) == len(stored.history)


def test_a_photo_without_a_stored_embedding_is_embedded_again_by_the_endpoint(
    finished: str,
    repository: Any,
    aws: Any,
    lambda_api: Lambda,
    endpoint: Endpoint,
    wiring: Any,
    observed: Any,
    lambda_context: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = {"PK": photo_registry.fingerprint_pk(finished, "1"), "SK": photo_registry.FINGERPRINT_SK}
    assert aws.table.get_item(Key=key).get("Item"), "the analyse step remembered the photo"
    aws.table.delete_item(Key=key)
    _review_as_reference(lambda_api, lambda_context)
    endpoint.stubber.add_response("invoke_endpoint", endpoint_answer(PINNED, [[0.0, 3.0, 4.0, 0.0]]))

    [request] = lambda_api.payloads
    assert reference_feedback.handler(request, lambda_context) == {"status": "reference_added"}

    endpoint.stubber.assert_no_pending_responses()
    [document] = _indexed(wiring)
    assert document["embedding"] == pytest.approx([0.0, 0.6, 0.8, 0.0])  # the endpoint's, normalised
    assert observed.metrics["ReferenceReembedded"] == 1
    assert "embedding it again: the photo registry holds no fingerprint of it" in caplog.text
    assert repository.get(finished).history[-1].action == HistoryAction.REFERENCE_ADDED


def test_a_failed_addition_is_recorded_with_why_and_counted(
    finished: str,
    repository: Any,
    lambda_api: Lambda,
    endpoint: Endpoint,
    wiring: Any,
    observed: Any,
    lambda_context: Any,
) -> None:
    wiring.on("POST", "/_bulk", (403, {"error": {"type": "security_exception", "reason": "no permission"}}))
    _review_as_reference(lambda_api, lambda_context)
    [request] = lambda_api.payloads

    # An outcome, not an error: no retry would change it, so the invocation succeeds.
    assert reference_feedback.handler(request, lambda_context) == {"status": "reference_failed"}

    last = repository.get(finished).history[-1]
    assert last.action == HistoryAction.REFERENCE_FAILED and last.photo_id == "1"
    assert "ReferenceIndexError" in last.summary
    assert observed.metrics["ReferenceFeedbackFailed"] == 1
    assert reference_feedback.handler(request, lambda_context) == {"status": "already_recorded"}


def test_a_request_lambda_refuses_is_recorded_failed_and_the_review_stands(
    finished: str, repository: Any, lambda_api: Lambda, observed: Any, lambda_context: Any
) -> None:
    lambda_api.stubber.add_client_error("invoke", "TooManyRequestsException", "Rate exceeded", 429)
    status, view = _review(lambda_context, "1", AS_REFERENCE)

    assert status == 200, view
    assert [h["action"] for h in view["history"]][-2:] == ["reference_pending", "reference_failed"]
    assert "TooManyRequestsException" in view["history"][-1]["summary"]
    assert view["photos"][0]["reviews"][0]["reviewer"] == APPRAISER["username"]
    assert observed.metrics["ReferenceFeedbackFailed"] == 1


def test_learning_off_is_said_in_the_log_recorded_and_counted(
    finished: str, monkeypatch: pytest.MonkeyPatch, observed: Any, lambda_context: Any
) -> None:
    monkeypatch.delenv("REFERENCE_FEEDBACK_FUNCTION")
    status, view = _review(lambda_context, "1", AS_REFERENCE)

    assert status == 200, view
    assert view["history"][-1]["action"] == "reference_failed"
    assert any("learning from reviews is off" in m for m in observed.messages("WARNING"))
    assert observed.metrics["ReferenceFeedbackFailed"] == 1


@pytest.mark.parametrize(
    "event",
    [
        {"assessment_id": "rv-1"},
        {"assessment_id": "rv-1", "photo_id": "1", "reviewed_at": "2025-06-01T12:00:00"},  # no zone
        {"assessment_id": "rv-1", "photo_id": "9", "reviewed_at": "2025-06-01T12:00:00Z"},  # no such photo
        {"assessment_id": "nope", "photo_id": "1", "reviewed_at": "2025-06-01T12:00:00Z"},  # no assessment
        {"assessment_id": "rv-1", "photo_id": "1", "reviewed_at": "2025-06-01T12:00:00Z"},  # no such review
    ],
)
def test_a_request_that_can_never_be_served_is_logged_counted_and_dropped(
    finished: str, event: dict[str, Any], observed: Any, lambda_context: Any
) -> None:
    assert reference_feedback.handler(event, lambda_context) == {"status": "invalid"}
    assert observed.metrics["ReferenceFeedbackFailed"] == 1
    assert observed.messages("ERROR")


def test_a_failure_to_record_the_outcome_raises_so_that_lambda_retries(
    finished: str, monkeypatch: pytest.MonkeyPatch, lambda_api: Lambda, repository: Any, lambda_context: Any
) -> None:
    _review_as_reference(lambda_api, lambda_context)
    [request] = lambda_api.payloads
    error = ClientError(
        {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}}, "GetItem"
    )
    monkeypatch.setattr(reference_feedback, "get_repository", lambda: _Failing(error))
    with pytest.raises(ClientError):
        reference_feedback.handler(request, lambda_context)


class _Failing:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def get(self, assessment_id: str) -> Any:
        raise self.error
