"""The distributed index build's batch function: moto S3, the endpoint under botocore's Stubber, and
the OpenSearch Serverless index over a local HTTP fake that keeps what it is sent (no custom ids,
no refresh) and answers searches from it."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber
from opensearchpy import OpenSearch, RequestsHttpConnection
from PIL import Image

from tests.aws_adapters.test_aws_opensearch_index import FakeAoss, Recorded, make_handler
from tests.aws_adapters.test_aws_s3_store import BodyReadCountingS3
from tests.aws_runtime.conftest import BUCKET, PHOTOS, REGION
from vehicle_assessment import endpoint_protocol
from vehicle_assessment.adapters.aws.opensearch_index import OpenSearchReferenceIndex, transport_options
from vehicle_assessment.adapters.aws.sagemaker_encoder import SageMakerEncoder
from vehicle_assessment.domain import limits, upload_keys
from vehicle_assessment.domain.models import EncoderIdentity

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

INDEX = "reference-photos"
ENDPOINT = "encoder-test"
MANIFEST = f"{upload_keys.REFERENCE_SET_PREFIX}set-1/labels.csv"
IDENTITY = EncoderIdentity(
    model_name="ViT-B-32",
    pretrained="laion2b_s34b_b79k",
    untrained=False,
    dimension=4,
    weights_fingerprint="f1" * 32,
)
DENT = {"damaged": "true", "damage_type": "dent", "severity": "moderate"}
CLEAN = {"damaged": "false", "damage_type": "none", "severity": "none"}


@dataclass
class StoredIndex:
    """What AOSS keeps: the mapping and the documents (auto ids), and the answers it gives."""

    mapping: dict[str, Any] | None = None
    documents: list[dict[str, Any]] = field(default_factory=list)

    def script(self, fake: FakeAoss) -> None:
        fake.on("GET", f"/{INDEX}/_mapping", self.get_mapping)
        fake.on("PUT", f"/{INDEX}", self.create)
        fake.on("PUT", f"/{INDEX}/_mapping", self.put_mapping)
        fake.on("POST", "/_bulk", self.bulk)
        fake.on("POST", f"/{INDEX}/_search", self.search)

    def get_mapping(self, request: Recorded) -> tuple[int, Any]:
        if self.mapping is None:
            return 404, {"error": {"type": "index_not_found_exception"}, "status": 404}
        return 200, {INDEX: {"mappings": self.mapping}}

    def create(self, request: Recorded) -> tuple[int, Any]:
        self.mapping = request.json()["mappings"]
        return 200, {"acknowledged": True, "index": INDEX}

    def put_mapping(self, request: Recorded) -> tuple[int, Any]:
        assert self.mapping is not None
        self.mapping = {**self.mapping, **request.json()}
        return 200, {"acknowledged": True}

    def bulk(self, request: Recorded) -> tuple[int, Any]:
        lines = request.ndjson()
        items = []
        for action, document in zip(lines[::2], lines[1::2], strict=True):
            assert "_id" not in action["index"], "AOSS vector collections reject custom document ids"
            self.documents.append(document)
            items.append({"index": {"_index": INDEX, "_id": f"auto{len(self.documents)}", "status": 201}})
        return 200, {"took": 1, "errors": False, "items": items}

    def search(self, request: Recorded) -> tuple[int, Any]:
        query = request.json()
        if "terms" in query["query"]:
            wanted = set(query["query"]["terms"]["sha256"])
            hits = [
                {"_id": "x", "_source": {"sha256": d["sha256"]}}
                for d in self.documents
                if d["sha256"] in wanted
            ]
            return 200, {"hits": {"hits": hits}}
        return 200, {"hits": {"total": {"value": len(self.documents)}, "hits": []}}


@pytest.fixture
def stored_index(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[StoredIndex, OpenSearchReferenceIndex]]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    fake, stored = FakeAoss(), StoredIndex()
    stored.script(fake)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(fake))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    client = OpenSearch(
        hosts=[{"host": "127.0.0.1", "port": server.server_address[1]}],
        use_ssl=False,
        connection_class=RequestsHttpConnection,
        **transport_options(max_retries=0, timeout_s=5),
    )
    try:
        yield stored, OpenSearchReferenceIndex(client, INDEX, IDENTITY.without_fingerprint())
    finally:
        client.close()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def photo_bytes(name: str, variant: int = 0) -> bytes:
    """A real sample photo; ``variant`` re-encodes it so its bytes (and sha256) differ."""
    data = (PHOTOS / name).read_bytes()
    if variant == 0:
        return data
    with Image.open(io.BytesIO(data)) as image:
        out = io.BytesIO()
        image.convert("RGB").save(out, format="JPEG", quality=95 - variant)
        return out.getvalue()


def item(index: int, path: str, label: dict[str, str] | None = None) -> dict[str, Any]:
    return {"row": {"path": path, **(label or DENT)}, "index": index, "manifest_key": MANIFEST}


def stub_endpoint(stubber: Stubber, *batches: int) -> None:
    """One invoke_endpoint answer per request, with as many (distinct, unit) vectors as images."""
    for size in batches:
        vectors = np.eye(4, dtype=np.float32)[np.arange(size) % 4] + 0.1 * np.arange(size)[:, None]
        raw = endpoint_protocol.build_response(IDENTITY, vectors)
        stubber.add_response(
            "invoke_endpoint",
            {"Body": StreamingBody(io.BytesIO(raw), len(raw)), "ContentType": "application/json"},
            {
                "EndpointName": ENDPOINT,
                "Body": ANY,
                "ContentType": "application/json",
                "Accept": "application/json",
            },
        )


@pytest.fixture
def batch_function(aws, stored_index, monkeypatch: pytest.MonkeyPatch):
    """The handler with moto S3 (built by the handler itself), a stubbed endpoint and the AOSS fake."""
    import boto3

    from functions import index_build_batch

    stored, index = stored_index
    monkeypatch.setenv(
        "SAGEMAKER",
        json.dumps({"endpoint_name": ENDPOINT, "identity": IDENTITY.without_fingerprint().model_dump()}),
    )
    monkeypatch.setenv(
        "OPENSEARCH", json.dumps({"collection_endpoint": "collection.aoss.test", "index_name": INDEX})
    )
    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    stubber = Stubber(runtime)
    stubber.activate()
    encoder = SageMakerEncoder(runtime, ENDPOINT, IDENTITY.without_fingerprint())
    monkeypatch.setattr(index_build_batch, "get_encoder", lambda: encoder)
    monkeypatch.setattr(index_build_batch, "get_index", lambda: index)
    yield index_build_batch.handler, stubber, stored
    stubber.deactivate()


def test_a_batch_is_indexed_with_display_copies_and_bad_rows_are_skipped_with_reasons(
    aws, batch_function, lambda_context
) -> None:
    handler, stubber, stored = batch_function
    folder = MANIFEST.rsplit("/", 1)[0]
    aws.put_photo(f"{folder}/dents/a.jpg", photo_bytes("damaged_0003_JPEG.jpg"))
    aws.put_photo(f"{folder}/clean/b.jpg", photo_bytes("undamaged_white_6150526860_fd9cd2c04c_b.jpg"))
    aws.put_photo(f"{folder}/dents/copy.jpg", photo_bytes("damaged_0003_JPEG.jpg"))  # same bytes as a.jpg
    aws.put_photo(f"{folder}/tiny.jpg", photo_bytes("damaged_0003_JPEG.jpg")[:200])  # truncated
    aws.put_photo(f"{folder}/notes.jpg", b"not a photo at all")
    # The identity probe (the configuration names no weights fingerprint), then one 2-image request.
    stub_endpoint(stubber, 1, 2)
    event = {
        "Items": [
            item(0, "dents/a.jpg"),
            item(1, "clean/b.jpg", CLEAN),
            item(2, "dents/copy.jpg"),
            item(3, "tiny.jpg"),
            item(4, "notes.jpg"),
            item(5, "missing.jpg"),
            item(6, "../other-set/x.jpg"),
            item(7, "dents/a.jpg", {"damaged": "maybe", "damage_type": "dent", "severity": "minor"}),
            item(8, "dents/a.jpg", {"damaged": "true", "damage_type": "none", "severity": "minor"}),
        ]
    }

    result = handler(event, lambda_context)

    stubber.assert_no_pending_responses()
    assert (result["rows"], result["added"], result["already_indexed"]) == (9, 2, 0)
    reasons = {row["line"]: row["reason"] for row in result["skipped"]}
    assert sorted(reasons) == [4, 5, 6, 7, 8, 9, 10]  # CSV lines: the header is line 1
    assert reasons[4] == f"the same photo as {folder}/dents/a.jpg"
    assert reasons[5].startswith("truncated or corrupt image")
    assert reasons[6] == "not an image: content is not JPEG, PNG or WebP"
    assert reasons[7] == f"no object at s3://{BUCKET}/{folder}/missing.jpg"
    assert "without . or .." in reasons[8]
    assert "damaged must be true or false" in reasons[9] and "inconsistent label" in reasons[10]
    # The documents: the S3 key as source, the content's sha256, the label; no custom _id (checked).
    assert [(d["source"], d["damaged"]) for d in stored.documents] == [
        (f"{folder}/dents/a.jpg", True),
        (f"{folder}/clean/b.jpg", False),
    ]
    # Each indexed reference has its display copy under references/{sha256}.jpg.
    for document in stored.documents:
        copy = aws.s3.get_object(Bucket=BUCKET, Key=upload_keys.reference_image_key(document["sha256"]))
        with Image.open(io.BytesIO(copy["Body"].read())) as image:
            assert image.format == "JPEG" and max(image.size) <= limits.REFERENCE_IMAGE_MAX_SIDE
    # The index now records the served weights.
    assert stored.mapping is not None and stored.mapping["_meta"]["encoder"] == IDENTITY.model_dump(
        mode="json"
    )


def test_a_rerun_adds_nothing_and_calls_no_endpoint(aws, batch_function, lambda_context) -> None:
    handler, stubber, stored = batch_function
    folder = MANIFEST.rsplit("/", 1)[0]
    aws.put_photo(f"{folder}/a.jpg", photo_bytes("damaged_0003_JPEG.jpg"))
    aws.put_photo(f"{folder}/b.jpg", photo_bytes("damaged_0003_JPEG.jpg", variant=5))
    event = {"Items": [item(0, "a.jpg"), item(1, "b.jpg")]}
    stub_endpoint(stubber, 1, 2)
    assert handler(event, lambda_context)["added"] == 2

    again = handler(event, lambda_context)  # no answers queued: any endpoint call would fail

    stubber.assert_no_pending_responses()
    assert (again["added"], again["already_indexed"], again["skipped"]) == (0, 2, [])
    assert len(stored.documents) == 2


def test_an_object_over_the_intake_limit_is_skipped_on_its_size_and_the_rest_indexed(
    aws, batch_function, lambda_context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A manifest row naming a huge object must not take the batch's memory (and the batch) with it."""
    from functions import index_build_batch
    from vehicle_assessment.adapters.aws.s3_object_store import S3ObjectStore
    from vehicle_assessment.domain.rules import AssessmentRules

    handler, stubber, stored = batch_function
    folder = MANIFEST.rsplit("/", 1)[0]
    small = photo_bytes("damaged_0003_JPEG.jpg")
    limit = len(small) + 1000
    monkeypatch.setenv(
        "RULES", AssessmentRules.model_validate({"intake": {"max_bytes": limit}}).model_dump_json()
    )
    aws.put_photo(f"{folder}/small.jpg", small)
    aws.put_photo(f"{folder}/huge.jpg", b"\xff\xd8" + b"\0" * (limit - 1))  # one byte over the limit
    s3 = BodyReadCountingS3(aws.s3)
    monkeypatch.setattr(index_build_batch, "get_objects", lambda: S3ObjectStore(s3, BUCKET))
    stub_endpoint(stubber, 1, 1)

    result = handler(
        {"Items": [item(0, "small.jpg"), item(1, "huge.jpg"), item(2, "gone.jpg")]}, lambda_context
    )

    stubber.assert_no_pending_responses()
    assert (result["rows"], result["added"]) == (3, 1)
    reasons = {row["source"]: row["reason"] for row in result["skipped"]}
    assert reasons[f"{folder}/huge.jpg"].startswith("file too large: ")  # intake's own words
    assert reasons[f"{folder}/gone.jpg"] == f"no object at s3://{BUCKET}/{folder}/gone.jpg"
    assert [d["source"] for d in stored.documents] == [f"{folder}/small.jpg"]
    # Refused on its Content-Length: not one byte of the huge body was downloaded.
    assert s3.bytes_read[f"{folder}/huge.jpg"] == 0
    assert s3.bytes_read[f"{folder}/small.jpg"] == len(small)


def test_a_service_error_fails_the_batch_for_the_map_to_retry(aws, batch_function, lambda_context) -> None:
    """Skips are for rows; an endpoint that fails is not the photo's fault: the batch raises."""
    from vehicle_assessment.ports import EncoderUnavailable

    handler, stubber, stored = batch_function
    folder = MANIFEST.rsplit("/", 1)[0]
    aws.put_photo(f"{folder}/a.jpg", photo_bytes("damaged_0003_JPEG.jpg"))
    stub_endpoint(stubber, 1)
    stubber.add_client_error("invoke_endpoint", "ModelError", "boom", 424)

    with pytest.raises(EncoderUnavailable):
        handler({"Items": [item(0, "a.jpg")]}, lambda_context)
    assert stored.documents == []


def test_a_batch_event_without_items_is_refused(batch_function, lambda_context) -> None:
    from pydantic import ValidationError

    handler, _, _ = batch_function
    with pytest.raises(ValidationError):
        handler({"Items": []}, lambda_context)


# --- the time budget ---------------------------------------------------------------------------


def test_the_batch_budget_grows_with_the_batch_and_refuses_what_no_lambda_can_hold(monkeypatch) -> None:
    from vehicle_assessment.aws_runtime.index_build import (
        IndexBuildConfig,
        batch_timeout_s,
        batch_worst_case_s,
    )

    config = IndexBuildConfig.model_validate(
        {
            "bucket_name": BUCKET,
            "sagemaker": {"endpoint_name": ENDPOINT, "identity": IDENTITY.model_dump()},
            "opensearch": {"collection_endpoint": "collection.aoss.test"},
        }
    )
    assert batch_worst_case_s(32, config) > batch_worst_case_s(16, config) > batch_worst_case_s(1, config)
    assert batch_timeout_s(limits.DEFAULT_INDEX_BUILD_BATCH_SIZE, config) <= limits.LAMBDA_MAX_TIMEOUT_S
    with pytest.raises(ValueError, match="smaller index_build_batch_size"):
        batch_timeout_s(500, config)
