"""HTTP front of the embedding endpoint: SageMaker's ``/ping`` and ``/invocations`` on port 8080.

In the image:   ``docker run IMAGE serve``   (SageMaker appends ``serve``; the ENTRYPOINT runs this module)
Locally:        ``python containers/openclip/serve.py --model-dir DIR --port 8080 [--device cpu]``

The model loads once, in the background after the port is bound: ``/ping`` answers 503 until it is
ready, then 200; if it cannot load, the process logs why and exits 1 (SageMaker then fails the
deployment with the log, instead of pinging a broken container). Stdlib only: one model behind a
lock needs no framework, and the image stays free of another dependency tree.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import inference

from vehicle_assessment import endpoint_protocol

logger = logging.getLogger("serve")

DEFAULT_MODEL_DIR = "/opt/ml/model"
DEFAULT_PORT = 8080
_INTERNAL_ERROR = json.dumps(
    {"error": "internal_error", "message": "the endpoint failed to embed the images; see its logs"}
).encode()


class EmbeddingServer(ThreadingHTTPServer):
    daemon_threads = True  # a hung client never blocks shutdown

    def __init__(self, address: tuple[str, int], model: inference.LoadedModel | None = None) -> None:
        super().__init__(address, InvocationHandler)
        self.model = model  # None while loading; assigned once, read by request threads

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class InvocationHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: SageMaker reuses its connections to the container
    server_version = "openclip-embedder"
    timeout = 60  # a stalled client cannot hold a worker thread forever
    server: EmbeddingServer

    # --- routes ------------------------------------------------------------------------------

    def do_GET(self) -> None:
        if self.path != "/ping":
            self._send_error(HTTPStatus.NOT_FOUND, "not_found", f"no route GET {self.path}")
            return
        model = self.server.model
        if model is None:
            self._send_json(HTTPStatus.SERVICE_UNAVAILABLE, {"status": "loading"})
        else:
            self._send_json(HTTPStatus.OK, {"status": "ok", "model": model.identity.model_dump(mode="json")})

    def do_POST(self) -> None:
        # The body is read before any answer: closing a socket with unread data makes the kernel
        # reset the connection, and the client may then lose the answer (a 404 or 503 as well).
        body = self._read_body()
        if body is None:
            return
        if self.path != "/invocations":
            self._send_error(HTTPStatus.NOT_FOUND, "not_found", f"no route POST {self.path}")
            return
        model = self.server.model
        if model is None:
            self._send_error(HTTPStatus.SERVICE_UNAVAILABLE, "loading", "the model is loading")
            return
        try:
            answer = inference.handle_invocation(
                model, body, self.headers.get("Content-Type"), self.headers.get("Accept")
            )
        except inference.InvocationError as exc:
            logger.info("refused request: %s %s", exc.status, exc)
            self._send(exc.status, exc.body())
            return
        except Exception:  # anything else is our bug: log it all, tell the client nothing internal
            logger.exception("invocation failed")
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, _INTERNAL_ERROR)
            return
        self._send(HTTPStatus.OK, answer)

    # --- helpers -----------------------------------------------------------------------------

    def _read_body(self) -> bytes | None:
        """The request body, or None after answering an error (the body unread: connection closed).

        Only a missing length or one over the limit is refused unread: a client cannot make us buffer
        more than 6 MB (SageMaker itself caps invocations at 6 MB before they reach the container)."""
        if self.headers.get("Transfer-Encoding"):
            self._send_error(HTTPStatus.LENGTH_REQUIRED, "length_required", "send Content-Length", close=True)
            return None
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._send_error(HTTPStatus.LENGTH_REQUIRED, "length_required", "send Content-Length", close=True)
            return None
        if length < 0:
            self._send_error(HTTPStatus.BAD_REQUEST, "bad_request", "negative Content-Length", close=True)
            return None
        if length > endpoint_protocol.MAX_REQUEST_BYTES:
            # Refused before reading: a client cannot make us buffer more than the limit.
            self._send_error(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                "payload_too_large",
                f"request of {length:,} bytes exceeds {endpoint_protocol.MAX_REQUEST_BYTES:,} bytes",
                close=True,
            )
            return None
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True  # the client went away mid-body; nobody to answer
            return None
        return body

    def _send_json(self, status: int, payload: dict) -> None:
        self._send(status, json.dumps(payload).encode())

    def _send_error(self, status: int, code: str, message: str, close: bool = False) -> None:
        self._send(status, json.dumps({"error": code, "message": message}).encode(), close=close)

    def _send(self, status: int, body: bytes, close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", endpoint_protocol.CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        if close:
            # An unread request body would otherwise be parsed as the next request.
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # SageMaker pings every few seconds: keep successful pings out of the logs.
        level = logging.DEBUG if self.path == "/ping" and str(code) == "200" else logging.INFO
        logger.log(level, '"%s" %s %s', self.requestline, code, size)

    def log_message(self, format: str, *args: object) -> None:  # `format`: the stdlib's parameter name
        logger.info("%s - %s", self.address_string(), format % args)


# --- process ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Serve the OpenCLIP embedding endpoint (SageMaker protocol)."
    )
    parser.add_argument(
        "command", nargs="?", choices=["serve"], help="SageMaker starts the image as `docker run IMAGE serve`"
    )
    parser.add_argument(
        "--model-dir",
        default=None,
        help="directory holding model.json and the weights (default: the image's baked weights in "
        "$BAKED_MODEL_DIR, or the model data in $SM_MODEL_DIR or /opt/ml/model; see resolve_model_dir)",
    )
    parser.add_argument("--host", default="0.0.0.0", help="bind address (default: all interfaces)")
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("SAGEMAKER_BIND_TO_PORT", DEFAULT_PORT)),
        help="port (default: $SAGEMAKER_BIND_TO_PORT or 8080)",
    )
    parser.add_argument(
        "--device",
        default=None,
        help="cpu, cuda, cuda:1... (default: cuda if available; with EXPECT_GPU=true or SM_NUM_GPUS>0, "
        "a GPU is required)",
    )
    return parser.parse_args(argv)


def resolve_model_dir(explicit: str | None, environ: Mapping[str, str] = os.environ) -> Path:
    """Where the weights are: `explicit`, else whichever holds a model.json of the image's baked
    directory ($BAKED_MODEL_DIR, set by the Dockerfile) and SageMaker's model data ($SM_MODEL_DIR or
    /opt/ml/model, which SageMaker manages). Both: refused, the endpoint would serve one by accident."""
    if explicit:
        return Path(explicit)
    model_data = Path(environ.get("SM_MODEL_DIR") or DEFAULT_MODEL_DIR)
    baked = Path(environ["BAKED_MODEL_DIR"]) if environ.get("BAKED_MODEL_DIR") else None
    if baked is None or not (baked / inference.MODEL_SPEC_FILE).is_file():
        return model_data
    if (model_data / inference.MODEL_SPEC_FILE).is_file():
        raise inference.ModelConfigError(
            f"both the image's baked weights ({baked}) and model data ({model_data}) hold a "
            f"{inference.MODEL_SPEC_FILE}: deploy the image without ModelDataUrl, or build it "
            "without BAKE_WEIGHTS"
        )
    return baked


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args = parse_args(argv)
    # The endpoint never downloads weights: a missing file fails at once instead of retrying the hub
    # (~47 s). Read when huggingface_hub is first imported, i.e. inside model_fn.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # Checked before the port is bound: a host without the GPU it promised never answers /ping, so
    # SageMaker fails the deployment with this line in the log instead of serving on the CPU.
    try:
        device = inference.select_device(args.device)
        model_dir = resolve_model_dir(args.model_dir)
    except (inference.DeviceError, inference.ModelConfigError) as exc:
        logger.error("refusing to start: %s", exc)
        return 1
    server = EmbeddingServer((args.host, args.port))
    logger.info(
        "listening on %s:%d, loading the model from %s on %s", args.host, server.port, model_dir, device
    )
    load_failed = threading.Event()

    def load() -> None:
        try:
            server.model = inference.model_fn(model_dir, device=device)
        except Exception:  # any load failure ends the process, with the reason in the log
            logger.exception("could not load the model from %s; exiting", model_dir)
            load_failed.set()
            server.shutdown()

    threading.Thread(target=load, name="model-loader", daemon=True).start()
    # SIGTERM (SageMaker stopping the container): stop accepting and return; shutdown() must not run
    # on the thread that is inside serve_forever, hence the helper thread.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        logger.info("interrupted")
    finally:
        server.server_close()
        logger.info("stopped")
    return 1 if load_failed.is_set() else 0


if __name__ == "__main__":
    sys.exit(main())
