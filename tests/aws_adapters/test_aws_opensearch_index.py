"""The AOSS adapter against a local HTTP server that records requests and answers like AOSS."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from botocore.credentials import Credentials
from opensearchpy import OpenSearch, RequestsHttpConnection

from vehicle_assessment.adapters.aws import opensearch_index
from vehicle_assessment.adapters.aws.opensearch_index import (
    OpenSearchReferenceIndex,
    ReferenceIndexError,
    index_body,
    knn_query,
    make_client,
    score_to_similarity,
    transport_options,
)
from vehicle_assessment.domain.models import DamageType, EncoderIdentity, ReferenceLabel, Severity
from vehicle_assessment.ports import IndexMismatch, ReferenceItem

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

INDEX = "reference-photos"
Answer = tuple[int, Any]


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def ndjson(self) -> list[Any]:
        return [json.loads(line) for line in self.body.decode().splitlines() if line.strip()]


@dataclass
class FakeAoss:
    """Scripted answers per (method, path), given in order; the last one repeats."""

    requests: list[Recorded] = field(default_factory=list)
    script: dict[tuple[str, str], list[Answer | Callable[[Recorded], Answer]]] = field(default_factory=dict)

    def on(self, method: str, path: str, *answers: Answer | Callable[[Recorded], Answer]) -> None:
        self.script[(method, path)] = list(answers)

    def answer(self, request: Recorded) -> Answer:
        queue = self.script.get((request.method, request.path))
        if not queue:
            return 404, {
                "error": {"type": "index_not_found_exception", "reason": "no such index"},
                "status": 404,
            }
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        return answer(request) if callable(answer) else answer

    def sent(self, method: str, path: str) -> list[Recorded]:
        return [r for r in self.requests if (r.method, r.path) == (method, path)]


def make_handler(fake: FakeAoss) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            url = urlsplit(self.path)
            request = Recorded(self.command, url.path, parse_qs(url.query), self.rfile.read(length))
            fake.requests.append(request)
            status, payload = fake.answer(request)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = _handle

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            return

    return Handler


@pytest.fixture
def fake_aoss(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeAoss, OpenSearch]]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    fake = FakeAoss()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(fake))
    # A short poll interval: shutdown() waits for the loop to notice, 0.5 s by default.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    # Plain HTTP and no signing for the test; the retry settings are the production ones.
    client = OpenSearch(
        hosts=[{"host": "127.0.0.1", "port": server.server_address[1]}],
        use_ssl=False,
        connection_class=RequestsHttpConnection,
        **transport_options(max_retries=2, timeout_s=5),
    )
    try:
        yield fake, client
    finally:
        client.close()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def mapping_answer(identity: EncoderIdentity) -> Answer:
    return 200, {INDEX: {"mappings": index_body(identity)["mappings"]}}


def item(source: str, vector: list[float], damaged: bool = True) -> ReferenceItem:
    label = (
        ReferenceLabel(damaged=True, damage_type=DamageType.DENT, severity=Severity.MODERATE)
        if damaged
        else ReferenceLabel(damaged=False, damage_type=DamageType.NONE, severity=Severity.NONE)
    )
    return ReferenceItem(source=source, sha256=f"sha-{source}", label=label, vector=np.asarray(vector))


def bulk_ok(request: Recorded) -> Answer:
    docs = len(request.ndjson()) // 2
    items = [
        {"index": {"_index": INDEX, "_id": f"auto{i}", "status": 201, "result": "created"}}
        for i in range(docs)
    ]
    return 200, {"took": 3, "errors": False, "items": items}


def hit(doc_id: str, score: float, source: str, damaged: bool) -> dict:
    label = (
        {"damaged": True, "damage_type": "dent", "severity": "moderate"}
        if damaged
        else {
            "damaged": False,
            "damage_type": "none",
            "severity": "none",
        }
    )
    return {
        "_index": INDEX,
        "_id": doc_id,
        "_score": score,
        "_source": {"source": source, "sha256": f"sha-{source}", **label},
    }


# --- index creation and identity --------------------------------------------------------------


def test_create_index_sends_a_faiss_innerproduct_knn_mapping(fake_aoss, identity) -> None:
    fake, client = fake_aoss
    fake.on(
        "PUT",
        f"/{INDEX}",
        (200, {"acknowledged": True, "shards_acknowledged": True, "index": INDEX}),
        (400, {"error": {"type": "resource_already_exists_exception", "reason": "exists"}, "status": 400}),
    )
    index = OpenSearchReferenceIndex(client, INDEX, identity, hnsw_m=24, hnsw_ef_construction=128)

    assert index.create_index() is True
    assert index.create_index() is False  # idempotent

    body = fake.sent("PUT", f"/{INDEX}")[0].json()
    assert body == {
        "settings": {"index": {"knn": True}},
        "mappings": {
            "_meta": {
                "encoder": {
                    "model_name": "ViT-B-32",
                    "pretrained": "laion2b_s34b_b79k",
                    "untrained": False,
                    "dimension": 4,
                    "weights_fingerprint": "f1" * 32,
                }
            },
            "properties": {
                "embedding": {
                    "type": "knn_vector",
                    "dimension": 4,
                    "method": {
                        "name": "hnsw",
                        "engine": "faiss",
                        "space_type": "innerproduct",
                        "parameters": {"ef_construction": 128, "m": 24},
                    },
                },
                "source": {"type": "keyword"},
                "sha256": {"type": "keyword"},
                "damaged": {"type": "boolean"},
                "damage_type": {"type": "keyword"},
                "severity": {"type": "keyword"},
                "origin": {"type": "keyword"},
                "provenance": {
                    "properties": {
                        "assessment_id": {"type": "keyword"},
                        "photo_id": {"type": "keyword"},
                        "reviewer": {"type": "keyword"},
                        "reviewed_at": {"type": "date"},
                    }
                },
            },
        },
    }


def test_create_index_reports_other_refusals(fake_aoss, identity) -> None:
    fake, client = fake_aoss
    fake.on(
        "PUT",
        f"/{INDEX}",
        (400, {"error": {"type": "mapper_parsing_exception", "reason": "bad"}, "status": 400}),
    )
    with pytest.raises(ReferenceIndexError, match="creating index reference-photos failed"):
        OpenSearchReferenceIndex(client, INDEX, identity).create_index()


def test_identity_is_read_from_the_mapping_meta(fake_aoss, identity) -> None:
    fake, client = fake_aoss
    index = OpenSearchReferenceIndex(client, INDEX)
    assert index.identity is None  # 404: no index yet

    fake.on("GET", f"/{INDEX}/_mapping", mapping_answer(identity))
    assert index.identity == identity
    assert index.identity == identity
    assert len(fake.sent("GET", f"/{INDEX}/_mapping")) == 2  # cached once found


def test_bind_creates_a_missing_index_then_checks_it(fake_aoss, identity) -> None:
    fake, client = fake_aoss
    created: list[bool] = []

    def create(request: Recorded) -> Answer:
        created.append(True)
        fake.on("GET", f"/{INDEX}/_mapping", mapping_answer(identity))
        return 200, {"acknowledged": True}

    fake.on("PUT", f"/{INDEX}", create)
    index = OpenSearchReferenceIndex(client, INDEX, identity)

    index.bind(identity)

    assert created == [True]
    other = identity.model_copy(update={"untrained": True, "pretrained": None})
    with pytest.raises(IndexMismatch, match="configured for"):
        index.bind(other)
    with pytest.raises(IndexMismatch, match="holds vectors of ViT-B-32"):
        OpenSearchReferenceIndex(client, INDEX).bind(other)


def test_bind_refuses_an_index_without_encoder_meta(fake_aoss, identity) -> None:
    fake, client = fake_aoss
    fake.on("GET", f"/{INDEX}/_mapping", (200, {INDEX: {"mappings": {"properties": {}}}}))
    fake.on(
        "PUT", f"/{INDEX}", (400, {"error": {"type": "resource_already_exists_exception"}, "status": 400})
    )
    with pytest.raises(IndexMismatch, match="records no encoder"):
        OpenSearchReferenceIndex(client, INDEX, identity).bind(identity)


def _count_answer(total: int) -> Answer:
    return 200, {"hits": {"total": {"value": total, "relation": "eq"}, "hits": []}}


def test_bind_refuses_an_index_of_other_weights_under_the_same_name(fake_aoss, identity) -> None:
    """Same model name, tag and dimension, other weights (e.g. another untrained draw): refused."""
    fake, client = fake_aoss
    stored = identity.model_copy(update={"weights_fingerprint": "0a" * 32})
    fake.on("GET", f"/{INDEX}/_mapping", mapping_answer(stored))
    configured = identity.without_fingerprint()  # the stack's config names the model only

    with pytest.raises(IndexMismatch, match=r"weights 0a0a0a0a0a0a, not .*weights f1f1f1f1f1f1.*rebuild"):
        OpenSearchReferenceIndex(client, INDEX, configured).bind(identity)
    with pytest.raises(IndexMismatch, match="no weights fingerprint"):
        OpenSearchReferenceIndex(client, INDEX, configured).bind(identity.without_fingerprint())
    assert not fake.sent("PUT", f"/{INDEX}/_mapping")


def test_an_empty_index_created_from_the_stack_config_is_claimed_by_the_served_weights(
    fake_aoss, identity
) -> None:
    """The custom resource creates the index before any endpoint has loaded weights: no fingerprint."""
    fake, client = fake_aoss
    configured = identity.without_fingerprint()
    fake.on("GET", f"/{INDEX}/_mapping", mapping_answer(configured))
    fake.on("POST", f"/{INDEX}/_search", _count_answer(0))
    fake.on("PUT", f"/{INDEX}/_mapping", (200, {"acknowledged": True}))
    index = OpenSearchReferenceIndex(client, INDEX, configured)
    reader = OpenSearchReferenceIndex(client, INDEX, configured)  # e.g. a warm analyse Lambda
    assert reader.identity == configured

    index.bind(identity)

    fake.on("GET", f"/{INDEX}/_mapping", mapping_answer(identity))
    assert reader.identity == identity  # an unfingerprinted identity is not cached
    [put] = fake.sent("PUT", f"/{INDEX}/_mapping")
    assert put.json() == {"_meta": {"encoder": identity.model_dump(mode="json")}}
    assert index.identity == identity
    index.bind(identity)  # now recorded: no second claim
    assert len(fake.sent("PUT", f"/{INDEX}/_mapping")) == 1


def test_a_legacy_index_holding_vectors_is_refused_whatever_the_name_says(fake_aoss, identity) -> None:
    fake, client = fake_aoss
    legacy = identity.model_dump(mode="json", exclude={"weights_fingerprint"})  # written before the field
    mappings = index_body(identity)["mappings"] | {"_meta": {"encoder": legacy}}
    fake.on("GET", f"/{INDEX}/_mapping", (200, {INDEX: {"mappings": mappings}}))
    fake.on("POST", f"/{INDEX}/_search", _count_answer(854))

    with pytest.raises(IndexMismatch, match=r"before weights were fingerprinted.*rebuild"):
        OpenSearchReferenceIndex(client, INDEX, identity.without_fingerprint()).bind(identity)
    assert not fake.sent("PUT", f"/{INDEX}/_mapping")


# --- bulk indexing ------------------------------------------------------------------------------


def test_add_bulk_indexes_without_ids(fake_aoss, identity) -> None:
    fake, client = fake_aoss
    fake.on("GET", f"/{INDEX}/_mapping", mapping_answer(identity))
    fake.on("POST", "/_bulk", bulk_ok)
    index = OpenSearchReferenceIndex(client, INDEX, identity)

    index.add([item("dents/a.jpg", [3, 4, 0, 0]), item("clean/b.jpg", [0, 0, 0, 2], damaged=False)])

    [bulk] = fake.sent("POST", "/_bulk")
    lines = bulk.ndjson()
    actions, docs = lines[0::2], lines[1::2]
    assert actions == [{"index": {"_index": INDEX}}, {"index": {"_index": INDEX}}]
    assert not any("_id" in action["index"] for action in actions)  # AOSS vector collections refuse ids
    assert docs[0] == {
        "embedding": pytest.approx([0.6, 0.8, 0.0, 0.0]),
        "source": "dents/a.jpg",
        "sha256": "sha-dents/a.jpg",
        "damaged": True,
        "damage_type": "dent",
        "severity": "moderate",
    }
    assert docs[1]["embedding"] == [0.0, 0.0, 0.0, 1.0] and docs[1]["damaged"] is False
    assert not fake.sent("POST", f"/{INDEX}/_refresh")  # AOSS has no refresh


def test_bulk_answered_429_is_retried_by_the_transport(fake_aoss, identity) -> None:
    fake, client = fake_aoss
    fake.on("GET", f"/{INDEX}/_mapping", mapping_answer(identity))
    throttled = (429, {"error": {"type": "too_many_requests", "reason": "throttled"}, "status": 429})
    fake.on("POST", "/_bulk", throttled, bulk_ok)
    # No helper retries: only opensearch-py's transport (retry_on_status) can resend.
    index = OpenSearchReferenceIndex(client, INDEX, identity, bulk_max_retries=0)

    index.add([item("dents/a.jpg", [1, 0, 0, 0])])

    first, second = fake.sent("POST", "/_bulk")
    assert first.body == second.body


def test_documents_answered_429_are_resent_by_the_bulk_helper(fake_aoss, identity) -> None:
    fake, client = fake_aoss
    fake.on("GET", f"/{INDEX}/_mapping", mapping_answer(identity))
    rejected = {"index": {"_index": INDEX, "status": 429, "error": {"type": "rejected_execution_exception"}}}
    created = {"index": {"_index": INDEX, "_id": "auto1", "status": 201}}
    fake.on(
        "POST",
        "/_bulk",
        (200, {"errors": True, "items": [created, rejected]}),
        (200, {"errors": False, "items": [created]}),
    )
    index = OpenSearchReferenceIndex(client, INDEX, identity, bulk_max_retries=2, bulk_initial_backoff_s=0)

    index.add([item("a.jpg", [1, 0, 0, 0]), item("b.jpg", [0, 1, 0, 0])])

    first, second = fake.sent("POST", "/_bulk")
    assert [doc["source"] for doc in first.ndjson()[1::2]] == ["a.jpg", "b.jpg"]
    assert [doc["source"] for doc in second.ndjson()[1::2]] == ["b.jpg"]  # only the rejected one


def test_bulk_item_failures_are_reported(fake_aoss, identity) -> None:
    fake, client = fake_aoss
    fake.on("GET", f"/{INDEX}/_mapping", mapping_answer(identity))
    failure = {"type": "mapper_parsing_exception", "reason": "wrong dimension"}
    fake.on(
        "POST",
        "/_bulk",
        (200, {"errors": True, "items": [{"index": {"_index": INDEX, "status": 400, "error": failure}}]}),
    )
    with pytest.raises(
        ReferenceIndexError, match=r"1 of 1 reference photos were not indexed.*wrong dimension"
    ):
        OpenSearchReferenceIndex(client, INDEX, identity).add([item("a.jpg", [1, 0, 0, 0])])


def test_add_validates_every_vector_before_sending(fake_aoss, identity) -> None:
    fake, client = fake_aoss
    fake.on("GET", f"/{INDEX}/_mapping", mapping_answer(identity))
    index = OpenSearchReferenceIndex(client, INDEX, identity)
    with pytest.raises(ValueError, match=r"b\.jpg: vector shape"):
        index.add([item("a.jpg", [1, 0, 0, 0]), item("b.jpg", [1, 0, 0])])
    with pytest.raises(ValueError, match="zero or not finite"):
        index.add([item("c.jpg", [0, 0, 0, 0])])
    assert not fake.sent("POST", "/_bulk")


def test_add_before_bind_is_refused(fake_aoss, identity) -> None:
    _, client = fake_aoss
    with pytest.raises(IndexMismatch, match="bind the index"):
        OpenSearchReferenceIndex(client, INDEX, identity).add([item("a.jpg", [1, 0, 0, 0])])


# --- known sources and count ------------------------------------------------------------------


def test_known_sources_pages_with_search_after(fake_aoss, monkeypatch) -> None:
    fake, client = fake_aoss
    monkeypatch.setattr(opensearch_index, "MAX_PAGE", 2)

    def page(request: Recorded) -> Answer:
        after = request.json().get("search_after")
        rows = {None: ["a.jpg", "b.jpg"], ("b.jpg",): ["c.jpg"]}[tuple(after) if after else None]
        return 200, {"hits": {"hits": [{"_id": s, "_source": {"source": s}, "sort": [s]} for s in rows]}}

    fake.on("POST", f"/{INDEX}/_search", page)

    assert OpenSearchReferenceIndex(client, INDEX).known_sources() == {"a.jpg", "b.jpg", "c.jpg"}

    first, second = (r.json() for r in fake.sent("POST", f"/{INDEX}/_search"))
    assert first == {
        "size": 2,
        "query": {"match_all": {}},
        "_source": ["source"],
        "sort": [{"source": "asc"}],
    }
    assert second == {**first, "search_after": ["b.jpg"]}


def test_known_sources_and_count_of_a_missing_index(fake_aoss) -> None:
    _, client = fake_aoss
    index = OpenSearchReferenceIndex(client, INDEX)
    assert index.known_sources() == set()
    assert index.count() == 0


def test_count_reads_the_total(fake_aoss) -> None:
    fake, client = fake_aoss
    fake.on(
        "POST", f"/{INDEX}/_search", (200, {"hits": {"total": {"value": 854, "relation": "eq"}, "hits": []}})
    )
    assert OpenSearchReferenceIndex(client, INDEX).count() == 854
    [request] = fake.sent("POST", f"/{INDEX}/_search")
    assert request.json() == {"size": 0, "track_total_hits": True, "query": {"match_all": {}}}


# --- k-NN search ------------------------------------------------------------------------------


def test_search_sends_one_msearch_with_exact_knn_queries(fake_aoss, identity) -> None:
    fake, client = fake_aoss
    fake.on("GET", f"/{INDEX}/_mapping", mapping_answer(identity))
    fake.on(
        "POST",
        "/_msearch",
        (
            200,
            {
                "took": 5,
                "responses": [
                    {
                        "hits": {
                            "hits": [
                                hit("id1", 1.9, "dents/a.jpg", True),  # ip 0.9
                                hit("id9", 1.9, "dents/a.jpg", True),  # duplicate of a.jpg: dropped
                                hit("id2", 0.8, "clean/b.jpg", False),  # ip -0.25
                            ]
                        },
                        "status": 200,
                    },
                    {"hits": {"hits": [hit("id2", 1.5, "clean/b.jpg", False)]}, "status": 200},
                ],
            },
        ),
    )
    queries = np.array([[0.5, 0.5, 0.5, 0.5], [1, 0, 0, 0]], dtype=np.float32)

    results = OpenSearchReferenceIndex(client, INDEX).search(queries, k=3)

    [request] = fake.sent("POST", "/_msearch")
    assert request.ndjson() == [
        {"index": INDEX},
        {
            "size": 3,
            "query": {"knn": {"embedding": {"vector": [0.5, 0.5, 0.5, 0.5], "k": 3}}},
            "_source": {"excludes": ["embedding"]},
        },
        {"index": INDEX},
        {
            "size": 3,
            "query": {"knn": {"embedding": {"vector": [1.0, 0.0, 0.0, 0.0], "k": 3}}},
            "_source": {"excludes": ["embedding"]},
        },
    ]
    first, second = results
    assert [(n.reference_id, n.source, n.similarity) for n in first] == [
        ("id1", "dents/a.jpg", pytest.approx(0.9)),
        ("id2", "clean/b.jpg", pytest.approx(-0.25)),
    ]
    assert first[0].label == ReferenceLabel(
        damaged=True, damage_type=DamageType.DENT, severity=Severity.MODERATE
    )
    assert second[0].similarity == pytest.approx(0.5) and second[0].label.damaged is False
    # The stored sha256 names the reference's display copy (upload_keys.reference_image_key).
    assert [n.sha256 for n in first] == ["sha-dents/a.jpg", "sha-clean/b.jpg"]


def test_search_errors(fake_aoss, identity) -> None:
    fake, client = fake_aoss
    index = OpenSearchReferenceIndex(client, INDEX)
    with pytest.raises(IndexMismatch, match="missing or unbound"):
        index.search(np.ones((1, 4), dtype=np.float32), 3)

    fake.on("GET", f"/{INDEX}/_mapping", mapping_answer(identity))
    with pytest.raises(IndexMismatch, match="query dimension 3"):
        index.search(np.ones((1, 3), dtype=np.float32), 3)

    fake.on("POST", "/_msearch", (200, {"responses": [{"hits": {"hits": []}, "status": 200}]}))
    with pytest.raises(IndexMismatch, match="no neighbours"):
        index.search(np.ones((1, 4), dtype=np.float32), 3)

    fake.on(
        "POST", "/_msearch", (200, {"responses": [{"error": {"type": "search_phase_execution_exception"}}]})
    )
    with pytest.raises(ReferenceIndexError, match="search_phase_execution_exception"):
        index.search(np.ones((1, 4), dtype=np.float32), 3)

    fake.on("POST", "/_msearch", (503, {"error": "unavailable"}))
    with pytest.raises(ReferenceIndexError, match="k-NN search on reference-photos failed"):
        index.search(np.ones((1, 4), dtype=np.float32), 3)
    assert len(fake.sent("POST", "/_msearch")) == 2 + 3  # the 503 was tried 1 + max_retries times


# --- score conversion and client -------------------------------------------------------------


@pytest.mark.parametrize("ip", [-1.0, -0.6, -0.25, 0.0, 0.3, 0.77, 1.0])
def test_innerproduct_score_inverts_the_documented_faiss_formula(ip: float) -> None:
    d = -ip  # OpenSearch docs, "Spaces": faiss innerproduct distance
    score = 1 / (1 + d) if d >= 0 else -d + 1
    assert score_to_similarity(score, "innerproduct") == pytest.approx(ip)


@pytest.mark.parametrize("cos", [-1.0, -0.2, 0.0, 0.5, 1.0])
def test_cosinesimil_score_inverts_the_documented_formula(cos: float) -> None:
    score = (2 - (1 - cos)) / 2
    assert score_to_similarity(score, "cosinesimil") == pytest.approx(cos)


def test_knn_query_shape() -> None:
    assert knn_query([0.1, 0.2], 7) == {
        "size": 7,
        "query": {"knn": {"embedding": {"vector": [0.1, 0.2], "k": 7}}},
        "_source": {"excludes": ["embedding"]},
    }


def test_make_client_signs_for_aoss_and_retries_throttling() -> None:
    client = make_client(
        "abc123.us-east-1.aoss.amazonaws.com",
        "us-east-1",
        credentials=Credentials("AKIDEXAMPLE", "secret"),
        max_retries=4,
        timeout_s=12,
    )
    transport = client.transport
    assert transport.retry_on_status == (429, 502, 503, 504)
    assert transport.retry_on_timeout is True and transport.max_retries == 4
    [connection] = transport.connection_pool.connections
    assert isinstance(connection, RequestsHttpConnection)
    assert connection.host == "https://abc123.us-east-1.aoss.amazonaws.com:443"
    assert connection.session.auth.service == "aoss"
    assert connection.session.auth.signer.region == "us-east-1"
    assert connection.timeout == 12


# --- which photos are already indexed (the distributed build's idempotence) -------------------


def test_indexed_sha256_asks_one_terms_query_and_returns_the_known_ones(fake_aoss) -> None:
    fake, client = fake_aoss
    fake.on(
        "POST",
        f"/{INDEX}/_search",
        (200, {"hits": {"hits": [{"_id": "a1", "_source": {"sha256": "aa"}}]}}),
    )
    index = OpenSearchReferenceIndex(client, INDEX)

    assert index.indexed_sha256(["bb", "aa", "aa"]) == {"aa"}
    [request] = fake.sent("POST", f"/{INDEX}/_search")
    assert request.json() == {
        "size": 10_000,
        "query": {"terms": {"sha256": ["aa", "bb"]}},
        "_source": ["sha256"],
    }


def test_indexed_sha256_of_a_missing_index_is_empty_and_errors_are_named(fake_aoss) -> None:
    fake, client = fake_aoss
    index = OpenSearchReferenceIndex(client, INDEX)
    assert index.indexed_sha256(["aa"]) == set()  # 404: nothing indexed yet
    fake.on("POST", f"/{INDEX}/_search", (400, {"error": {"type": "bad"}, "status": 400}))
    with pytest.raises(ReferenceIndexError, match="looking up photos"):
        index.indexed_sha256(["aa"])
