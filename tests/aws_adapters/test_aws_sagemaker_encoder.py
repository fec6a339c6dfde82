from __future__ import annotations

import io
import json

import numpy as np
import pytest
from botocore.response import StreamingBody
from PIL import Image

from vehicle_assessment import endpoint_protocol
from vehicle_assessment.adapters.aws.sagemaker_encoder import (
    PROBE_IMAGE_SIZE,
    EncoderIdentityMismatch,
    SageMakerEncoder,
)
from vehicle_assessment.domain.models import EncoderIdentity
from vehicle_assessment.ports import EncoderUnavailable, IndexMismatch

ENDPOINT = "vda-encoder"


def images(n: int) -> list[Image.Image]:
    return [Image.new("RGB", (8, 8), (i * 20, 0, 0)) for i in range(n)]


def body(payload: dict | bytes) -> StreamingBody:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))


def answer(identity: EncoderIdentity, vectors: list[list[float]]) -> dict:
    return {
        "Body": body({"model": identity.model_dump(), "embeddings": vectors}),
        "ContentType": "application/json",
    }


def expected_params(pictures: list[Image.Image]) -> dict:
    return {
        "EndpointName": ENDPOINT,
        "Body": endpoint_protocol.build_request(pictures),
        "ContentType": "application/json",
        "Accept": "application/json",
    }


def test_one_call_carries_the_whole_batch_and_rows_come_back_normalised(stub, identity) -> None:
    client, stubber = stub("sagemaker-runtime")
    pictures = images(3)
    # Deliberately not unit length: the adapter re-normalises.
    stubber.add_response(
        "invoke_endpoint",
        answer(identity, [[3, 4, 0, 0], [0, 0, 2, 0], [1, 1, 1, 1]]),
        expected_params(pictures),
    )

    vectors = SageMakerEncoder(client, ENDPOINT, identity).embed(pictures)

    stubber.assert_no_pending_responses()
    assert vectors.dtype == np.float32 and vectors.shape == (3, 4)
    np.testing.assert_allclose(vectors[0], [0.6, 0.8, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    sent = json.loads(expected_params(pictures)["Body"])
    assert len(sent["images"]) == 3


def test_batches_over_the_endpoint_limit_are_split(stub, identity) -> None:
    client, stubber = stub("sagemaker-runtime")
    pictures = images(endpoint_protocol.MAX_IMAGES_PER_REQUEST + 2)
    first, rest = pictures[:16], pictures[16:]
    stubber.add_response("invoke_endpoint", answer(identity, [[1, 0, 0, 0]] * 16), expected_params(first))
    stubber.add_response("invoke_endpoint", answer(identity, [[0, 1, 0, 0]] * 2), expected_params(rest))

    vectors = SageMakerEncoder(client, ENDPOINT, identity).embed(pictures)

    stubber.assert_no_pending_responses()
    assert vectors.shape == (18, 4)
    assert vectors[-1].tolist() == [0, 1, 0, 0]


def test_empty_batch_makes_no_call(stub, identity) -> None:
    client, _ = stub("sagemaker-runtime")  # any call would fail: nothing is stubbed
    assert SageMakerEncoder(client, ENDPOINT, identity).embed([]).shape == (0, 4)


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("ThrottlingException", "Rate exceeded"),
        ("ModelError", 'Received server error (500) from primary with message "CUDA\nout of memory"'),
        ("ValidationError", "Endpoint vda-encoder of account 1 not found."),
    ],
)
def test_service_errors_become_encoder_unavailable_with_one_line(stub, identity, code, message) -> None:
    client, stubber = stub("sagemaker-runtime")
    stubber.add_client_error("invoke_endpoint", service_error_code=code, service_message=message)

    with pytest.raises(EncoderUnavailable) as caught:
        SageMakerEncoder(client, ENDPOINT, identity).embed(images(1))

    reason = str(caught.value)
    assert code in reason and ENDPOINT in reason
    assert "\n" not in reason


def test_another_model_behind_the_endpoint_is_refused(stub, identity) -> None:
    client, stubber = stub("sagemaker-runtime")
    other = identity.model_copy(update={"model_name": "ViT-L-14"})
    stubber.add_response("invoke_endpoint", answer(other, [[1, 0, 0, 0]]))

    with pytest.raises(EncoderIdentityMismatch, match="serves ViT-L-14") as caught:
        SageMakerEncoder(client, ENDPOINT, identity).embed(images(1))
    assert isinstance(caught.value, IndexMismatch)  # callers that handle index mismatches see it too


def test_wrong_embedding_count_is_refused(stub, identity) -> None:
    client, stubber = stub("sagemaker-runtime")
    stubber.add_response("invoke_endpoint", answer(identity, [[1, 0, 0, 0]]))

    with pytest.raises(EncoderUnavailable, match="returned 1 embeddings for 2 images"):
        SageMakerEncoder(client, ENDPOINT, identity).embed(images(2))


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"<html>502</html>", "unreadable response"),
        ({"model": {"model_name": "x"}, "embeddings": []}, "unreadable response"),
        ("wrong-dimension", "do not match dimension"),
        ("zero-row", "zero or non-finite"),
    ],
)
def test_malformed_answers_are_refused(stub, identity, payload, match) -> None:
    client, stubber = stub("sagemaker-runtime")
    if payload == "wrong-dimension":
        response = answer(identity, [[1, 0, 0]])
    elif payload == "zero-row":
        response = answer(identity, [[0, 0, 0, 0]])
    else:
        response = {"Body": body(payload)}
    stubber.add_response("invoke_endpoint", response)

    with pytest.raises(EncoderUnavailable, match=match):
        SageMakerEncoder(client, ENDPOINT, identity).embed(images(1))


# --- identity: the weights fingerprint the endpoint reports ---------------------------------------


def test_unpinned_configuration_learns_the_served_fingerprint_with_one_probe(stub, identity) -> None:
    """The stack's configuration names the model only; the endpoint's answer says which weights."""
    client, stubber = stub("sagemaker-runtime")
    probe = [Image.new("RGB", PROBE_IMAGE_SIZE)]
    stubber.add_response("invoke_endpoint", answer(identity, [[1, 0, 0, 0]]), expected_params(probe))
    stubber.add_response("invoke_endpoint", answer(identity, [[0, 1, 0, 0]]), expected_params(images(1)))
    encoder = SageMakerEncoder(client, ENDPOINT, identity.without_fingerprint())

    assert encoder.identity == identity  # one probe...
    assert encoder.identity == identity  # ...once
    encoder.embed(images(1))
    stubber.assert_no_pending_responses()
    assert encoder.configured_identity == identity.without_fingerprint()


def test_an_endpoint_reporting_no_fingerprint_is_refused(stub, identity) -> None:
    client, stubber = stub("sagemaker-runtime")
    stubber.add_response("invoke_endpoint", answer(identity.without_fingerprint(), [[1, 0, 0, 0]]))

    with pytest.raises(EncoderIdentityMismatch, match=r"without a weights fingerprint.*redeploy"):
        _ = SageMakerEncoder(client, ENDPOINT, identity.without_fingerprint()).identity


def test_other_weights_under_the_configured_name_are_refused(stub, identity) -> None:
    client, stubber = stub("sagemaker-runtime")
    other_weights = identity.model_copy(update={"weights_fingerprint": "0b" * 32})
    stubber.add_response("invoke_endpoint", answer(other_weights, [[1, 0, 0, 0]]))
    stubber.add_response("invoke_endpoint", answer(identity, [[1, 0, 0, 0]]))
    stubber.add_response("invoke_endpoint", answer(other_weights, [[1, 0, 0, 0]]))

    # Pinned in the configuration: refused at once.
    with pytest.raises(EncoderIdentityMismatch, match=r"serves .*weights 0b0b0b0b0b0b, but"):
        SageMakerEncoder(client, ENDPOINT, identity).embed(images(1))
    # Not pinned: the first answer fixes the weights; a redeployment with others is refused.
    encoder = SageMakerEncoder(client, ENDPOINT, identity.without_fingerprint())
    encoder.embed(images(1))
    with pytest.raises(EncoderIdentityMismatch, match=r"now serves .*weights 0b0b0b0b0b0b"):
        encoder.embed(images(1))
    assert encoder.identity == identity
