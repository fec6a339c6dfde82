"""The SageMaker endpoint container, on the CPU with the tiny model: handlers in-process, then the
real HTTP server on 127.0.0.1, and the same vectors as local mode for the same photos."""

from __future__ import annotations

import base64
import functools
import http.client
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import inference
import numpy as np
import prepare_model_dir
import pytest
import serve
from PIL import Image

from vehicle_assessment import endpoint_protocol
from vehicle_assessment.domain.models import EncoderIdentity

from ..conftest import TEST_DATA, TINY_MODEL
from .conftest import TINY_CONFIG, write_model_dir

pytestmark = pytest.mark.slow
JSON = "application/json"
local_only = pytest.mark.allow_hosts(["127.0.0.1"])  # pytest-socket: loopback only


@functools.cache
def _photo_tuple() -> tuple[Image.Image, ...]:
    return tuple(Image.open(p).convert("RGB") for p in sorted((TEST_DATA / "photos").glob("*.jpg")))


def _photos() -> list[Image.Image]:
    return list(_photo_tuple())


@functools.cache
def _default_request() -> bytes:
    return endpoint_protocol.build_request(_photos())


def _request(images: list[Image.Image] | None = None) -> bytes:
    return endpoint_protocol.build_request(images) if images else _default_request()


# --- model_fn --------------------------------------------------------------------------------


def test_model_fn_loads_the_checkpoint_and_reports_the_configured_identity(
    served_model, tiny_encoder
) -> None:
    # The same weights as the local encoder, hence the same fingerprint: the index check agrees.
    assert served_model.identity == EncoderIdentity(
        model_name=TINY_MODEL,
        pretrained="tiny-weights-v1",
        untrained=False,
        dimension=64,
        weights_fingerprint=tiny_encoder.identity.weights_fingerprint,
    )
    photos = _photos()
    np.testing.assert_allclose(served_model.encoder.embed(photos), tiny_encoder.embed(photos), atol=1e-5)


def test_prepared_untrained_model_dir_loads_and_says_untrained(tmp_path, tiny_encoder) -> None:
    prepare_model_dir.prepare_model_dir(
        tmp_path, TINY_MODEL, architecture_config=TINY_CONFIG, untrained=True, pretrained="ignored-tag"
    )
    model = inference.model_fn(tmp_path, device="cpu")
    assert model.identity.untrained and model.identity.pretrained is None
    assert model.identity.dimension == 64
    # Seeded: the endpoint's untrained model is the local one, so a local index serves it too.
    assert model.identity == tiny_encoder.identity


def test_prepared_checkpoint_model_dir_reports_the_file_as_written(tmp_path, tiny_encoder) -> None:
    checkpoint = tmp_path / "src" / "weights.bin"
    checkpoint.parent.mkdir()
    import torch

    torch.save(tiny_encoder._model.state_dict(), checkpoint)
    prepare_model_dir.prepare_model_dir(
        tmp_path / "model", TINY_MODEL, checkpoint=checkpoint, architecture_config=TINY_CONFIG
    )
    model = inference.model_fn(tmp_path / "model", device="cpu")
    # The relative name, not wherever SageMaker happened to extract the tarball.
    assert model.identity.pretrained == "weights.bin" and not model.identity.untrained


def test_baked_tag_layout_loads_offline_with_the_tags_preprocessing(
    tmp_path, monkeypatch, tiny_encoder
) -> None:
    """What BAKE_WEIGHTS=1 produces for ViT-L-14 [laion2b_s32b_b82k], with a tiny stand-in tag."""
    import open_clip.pretrained
    import torch

    tag_cfg = {"url": "", "hf_hub": "yard/tiny-clip/", "mean": (0.5,) * 3, "std": (0.5,) * 3}
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, TINY_MODEL, {"tiny_tag": tag_cfg})
    # The Hugging Face cache as a download leaves it: snapshot symlinks into blobs/.
    repo = tmp_path / "hf-cache" / "models--yard--tiny-clip"
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    torch.save(tiny_encoder._model.state_dict(), repo / "blobs" / "abc123")
    (snapshot / "open_clip_pytorch_model.bin").symlink_to("../../blobs/abc123")
    prepare_model_dir.materialise_symlinks(tmp_path / "hf-cache")
    assert not any(p.is_symlink() for p in tmp_path.rglob("*")) and not (repo / "blobs").exists()
    spec = {"model_name": TINY_MODEL, "pretrained": "tiny_tag", "hf_cache_dir": "hf-cache"}
    spec["architecture_config"] = TINY_CONFIG.name
    model = inference.model_fn(write_model_dir(tmp_path, spec), device="cpu")

    assert model.identity == EncoderIdentity(
        model_name=TINY_MODEL,
        pretrained="tiny_tag",
        untrained=False,
        dimension=64,
        weights_fingerprint=tiny_encoder.identity.weights_fingerprint,
    )
    assert tuple(model.encoder._model.visual.preprocess_cfg["mean"]) == (0.5, 0.5, 0.5)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (None, "model.json not found"),
        ({"model_name": TINY_MODEL}, "set `pretrained`"),
        ({"model_name": TINY_MODEL, "pretrained": "x.bin", "untrained": True}, "untrained models"),
        ({"model_name": "hf-hub:yard/x", "pretrained": "x.bin"}, "hf-hub: models"),
        ({"model_name": TINY_MODEL, "pretrained": "missing.bin"}, "not found in the model directory"),
        ({"model_name": TINY_MODEL, "pretrained": "../outside.bin"}, "inside the model directory"),
        ({"model_name": TINY_MODEL, "untrained": True, "architecture_config": "other.json"}, "not found"),
        ({"model_name": "hf-hub:yard/absent"}, "no weights of yard/absent"),
        ({"model_name": TINY_MODEL, "untrained": True, "typo": 1}, "Extra inputs"),
    ],
)
def test_model_fn_refuses_bad_model_dirs_clearly(tmp_path, tiny_model_name, spec, message) -> None:
    if spec is not None:
        (tmp_path / "model.json").write_text(json.dumps(spec))
    with pytest.raises(inference.ModelConfigError, match=message):
        inference.model_fn(tmp_path, device="cpu")


# --- input_fn / predict_fn / output_fn -------------------------------------------------------


@pytest.mark.parametrize("content_type", [JSON, "application/json; charset=utf-8", "Application/JSON"])
def test_input_fn_decodes_the_protocols_images_pixel_for_pixel(content_type) -> None:
    photos = _photos()
    images = inference.input_fn(_request(photos), content_type)
    assert [np.asarray(i).tobytes() for i in images] == [np.asarray(p).tobytes() for p in photos]
    assert len(inference.input_fn(_request(photos).decode(), content_type)) == len(photos)  # str bodies too


@pytest.mark.parametrize("content_type", ["text/csv", "application/x-image", None, ""])
def test_input_fn_refuses_other_content_types_with_415(content_type) -> None:
    with pytest.raises(inference.UnsupportedContentType) as caught:
        inference.input_fn(_request(), content_type)
    assert caught.value.status == 415


_PNG = endpoint_protocol.encode_image(Image.new("RGB", (8, 8)))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "Invalid JSON"),
        (b"[]", "body"),
        (json.dumps({"images": []}).encode(), "images"),
        (json.dumps({"images": [_PNG] * (endpoint_protocol.MAX_IMAGES_PER_REQUEST + 1)}).encode(), "images"),
        (json.dumps({"images": [_PNG], "extra": 1}).encode(), "extra"),
        (json.dumps({"images": ["not base64!"]}).encode(), r"images\[0\]: not a base64"),
        (
            json.dumps({"images": [_PNG, base64.b64encode(b"text, not an image").decode()]}).encode(),
            r"images\[1\]",
        ),
    ],
)
def test_input_fn_refuses_malformed_requests_with_400(body: bytes, message: str) -> None:
    with pytest.raises(inference.BadRequest, match=message) as caught:
        inference.input_fn(body, JSON)
    assert caught.value.status == 400
    assert json.loads(caught.value.body())["error"] == "bad_request"


def test_input_fn_errors_do_not_echo_the_payload() -> None:
    huge = "A" * 100_000
    with pytest.raises(inference.BadRequest) as caught:
        inference.input_fn(json.dumps({"images": [huge] * 17}).encode(), JSON)
    assert len(str(caught.value)) < 500


def test_input_fn_refuses_bodies_over_the_6_mb_limit_with_413() -> None:
    with pytest.raises(inference.PayloadTooLarge) as caught:
        inference.input_fn(b" " * (endpoint_protocol.MAX_REQUEST_BYTES + 1), JSON)
    assert caught.value.status == 413


def test_predict_fn_outputs_unit_rows_and_output_fn_round_trips(served_model) -> None:
    prediction = inference.predict_fn(inference.input_fn(_request(), JSON), served_model)
    assert prediction.embeddings.shape == (2, 64) and prediction.embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(prediction.embeddings, axis=1), 1.0, atol=1e-5)

    for accept in (JSON, "*/*", None, "application/json; charset=utf-8", "text/html, application/*;q=0.8"):
        response = endpoint_protocol.EmbedResponse.model_validate_json(
            inference.output_fn(prediction, accept)
        )
        assert response.model == served_model.identity
        assert response.model.weights_fingerprint  # on the wire: the runtime's index check needs it
        np.testing.assert_allclose(response.as_array(), prediction.embeddings, atol=1e-6)
    with pytest.raises(inference.NotAcceptable) as caught:
        inference.output_fn(prediction, "text/csv")
    assert caught.value.status == 406


# --- the HTTP server -------------------------------------------------------------------------


@pytest.fixture
def server(served_model) -> Iterator[serve.EmbeddingServer]:
    yield from _running(serve.EmbeddingServer(("127.0.0.1", 0), served_model))


def _running(server: serve.EmbeddingServer) -> Iterator[serve.EmbeddingServer]:
    # A short poll interval: shutdown() waits up to one interval (0.5 s by default) per server.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _call(
    server: serve.EmbeddingServer, method: str, path: str, body: bytes | None = None, **headers: str
) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request(
            method, path, body=body, headers={k.replace("_", "-"): v for k, v in headers.items()}
        )
        response = connection.getresponse()
        assert response.getheader("Content-Type") == JSON
        return response.status, json.loads(response.read())
    finally:
        connection.close()


@local_only
def test_server_pings_and_embeds_like_the_local_encoder(server, tiny_encoder) -> None:
    status, answer = _call(server, "GET", "/ping")
    assert status == 200 and answer["status"] == "ok"

    photos = _photos()
    status, answer = _call(server, "POST", "/invocations", _request(photos), Content_Type=JSON, Accept=JSON)
    assert status == 200
    response = endpoint_protocol.EmbedResponse.model_validate(answer)
    assert response.model == server.model.identity
    # Shared wire format, same pixels (lossless PNG): the endpoint's vectors are local mode's.
    np.testing.assert_allclose(response.as_array(), tiny_encoder.embed(photos), atol=1e-5)


@local_only
def test_server_answers_client_errors_with_json_bodies(server) -> None:
    status, answer = _call(server, "POST", "/invocations", _request(), Content_Type="text/plain")
    assert (status, answer["error"]) == (415, "unsupported_content_type")
    bad = json.dumps({"images": ["%%%"]}).encode()
    status, answer = _call(server, "POST", "/invocations", bad, Content_Type=JSON)
    assert (status, answer["error"]) == (400, "bad_request") and "images[0]" in answer["message"]
    status, answer = _call(server, "POST", "/invocations", _request(), Content_Type=JSON, Accept="image/png")
    assert (status, answer["error"]) == (406, "not_acceptable")
    assert _call(server, "GET", "/nowhere")[0] == 404
    assert _call(server, "POST", "/ping", b"{}", Content_Type=JSON)[0] == 404


@local_only
def test_server_refuses_oversized_bodies_before_reading_them(server) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.putrequest("POST", "/invocations")
        connection.putheader("Content-Type", JSON)
        connection.putheader("Content-Length", str(endpoint_protocol.MAX_REQUEST_BYTES + 1))
        connection.endheaders()  # no body sent: the answer must not wait for it
        response = connection.getresponse()
        assert response.status == 413 and json.loads(response.read())["error"] == "payload_too_large"
    finally:
        connection.close()


@local_only
def test_server_handles_concurrent_requests_on_one_model(server) -> None:
    results: list[tuple[int, dict]] = []

    def call() -> None:
        results.append(_call(server, "POST", "/invocations", _request(), Content_Type=JSON))

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 4 and all(status == 200 for status, _ in results)
    assert all(answer == results[0][1] for _, answer in results)  # serialised calls, same answers


@local_only
def test_server_pings_503_while_loading_and_hides_internal_errors(served_model, caplog) -> None:
    for running in _running(serve.EmbeddingServer(("127.0.0.1", 0))):
        assert _call(running, "GET", "/ping") == (503, {"status": "loading"})
        assert _call(running, "POST", "/invocations", _request(), Content_Type=JSON)[0] == 503

    class BrokenEncoder:
        def preprocess_batch(self, images: list[Image.Image]):
            raise RuntimeError("CUDA error: secret internals")

    broken = inference.LoadedModel(encoder=BrokenEncoder(), identity=served_model.identity)  # type: ignore[arg-type]
    for running in _running(serve.EmbeddingServer(("127.0.0.1", 0), broken)):
        with caplog.at_level(logging.ERROR, logger="serve"):
            status, answer = _call(running, "POST", "/invocations", _request(), Content_Type=JSON)
    assert (status, answer["error"]) == (500, "internal_error") and "secret" not in answer["message"]
    assert "secret internals" in caplog.text  # the traceback is in the log


def test_serve_takes_sagemakers_serve_argument_and_port_variable(monkeypatch) -> None:
    monkeypatch.setenv("SAGEMAKER_BIND_TO_PORT", "9123")
    monkeypatch.delenv("SM_MODEL_DIR", raising=False)
    args = serve.parse_args(["serve"])
    # No --model-dir: resolve_model_dir picks the baked weights or /opt/ml/model (test_gpu_contract.py).
    assert (args.command, args.port, args.model_dir, args.device) == ("serve", 9123, None, None)
    args = serve.parse_args(["--model-dir", "/tmp/m", "--port", "8081", "--device", "cpu"])
    assert (args.model_dir, args.port, args.device) == ("/tmp/m", 8081, "cpu")


def test_dockerfile_copies_what_the_server_imports() -> None:
    dockerfile = (Path(serve.__file__).parent / "Dockerfile").read_text()
    ignore = (Path(serve.__file__).parent / "Dockerfile.dockerignore").read_text()
    for name in ("inference.py", "serve.py", "prepare_model_dir.py", "requirements.txt"):
        assert f"containers/openclip/{name}" in dockerfile and f"!containers/openclip/{name}" in ignore
    assert 'ENTRYPOINT ["python", "-m", "serve"]' in dockerfile and "EXPOSE 8080" in dockerfile
