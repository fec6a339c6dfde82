"""Reference index on an OpenSearch Serverless (AOSS) vector search collection.

AOSS differs from a provisioned domain in ways this adapter is built around:
  * vector collections reject a custom document ``_id``, so documents are indexed without one and
    resuming a build relies on the ``source`` field (`known_sources`), not on ids;
  * there is no ``_refresh``: new documents become searchable after a short delay;
  * shard/replica settings are ignored, so the index body sets only ``index.knn``.

The encoder identity, weights fingerprint included, is stored in the mapping's ``_meta``, so a query
from another encoder is refused whatever its name says.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import boto3
import numpy as np
from opensearchpy import (
    AWSV4SignerAuth,
    NotFoundError,
    OpenSearch,
    RequestError,
    RequestsHttpConnection,
    TransportError,
    helpers,
)

from vehicle_assessment.adapters.aws.settings import OpenSearchSettings
from vehicle_assessment.domain.models import (
    DamageType,
    EncoderIdentity,
    Neighbour,
    ReferenceLabel,
    ReferenceProvenance,
    Severity,
)
from vehicle_assessment.ports import IndexMismatch, PortError, ReferenceItem

VECTOR_FIELD = "embedding"
# Throttling (429) and gateway errors are transient on AOSS; anything else is a real answer.
RETRY_ON_STATUS = (429, 502, 503, 504)
# The largest page a plain search returns (index.max_result_window); deeper pages use search_after.
MAX_PAGE = 10_000

# Space: "innerproduct" on L2-normalised vectors ranks exactly like cosine. Faiss HNSW supports
# innerproduct in every OpenSearch 2.x, while faiss "cosinesimil" needs OpenSearch 2.19+
# (OpenSearch docs, "Methods and engines" > Faiss engine > supported spaces); AOSS does not expose
# its engine version, so innerproduct is the choice that cannot be refused.
DEFAULT_SPACE_TYPE = "innerproduct"

# A reference learnt from a review says where it came from (ReferenceItem.provenance / origin). Adding
# fields to an existing index's mapping is allowed (PUT <index>/_mapping, aoss:UpdateIndex), so an index
# created before these existed gains them on the first reviewed photo.
PROVENANCE_PROPERTIES: dict[str, Any] = {
    "origin": {"type": "keyword"},
    "provenance": {
        "properties": {
            "assessment_id": {"type": "keyword"},
            "photo_id": {"type": "keyword"},
            "reviewer": {"type": "keyword"},
            "reviewed_at": {"type": "date"},
        }
    },
}


class ReferenceIndexError(PortError):
    """The collection refused or failed a request."""


def score_to_similarity(score: float, space_type: str) -> float:
    """Invert OpenSearch's score back to cosine similarity (vectors are unit length).

    OpenSearch docs, "Spaces": for faiss innerproduct d = -x·y and score = 1/(1+d) if d >= 0,
    else score = 1 - d. So score >= 1 means x·y = score - 1; score < 1 means x·y = 1 - 1/score.
    For cosinesimil d = 1 - cos and score = (2 - d)/2 = (1 + cos)/2, so cos = 2·score - 1.
    """
    if space_type == "innerproduct":
        similarity = score - 1.0 if score >= 1.0 else 1.0 - 1.0 / score
    elif space_type == "cosinesimil":
        similarity = 2.0 * score - 1.0
    else:
        raise ValueError(f"cannot turn a {space_type!r} score into a cosine similarity")
    return min(1.0, max(-1.0, similarity))


def index_body(identity: EncoderIdentity, hnsw_m: int = 16, hnsw_ef_construction: int = 256) -> dict:
    return {
        "settings": {"index": {"knn": True}},
        "mappings": {
            "_meta": {"encoder": identity.model_dump(mode="json")},
            "properties": {
                VECTOR_FIELD: {
                    "type": "knn_vector",
                    "dimension": identity.dimension,
                    "method": {
                        "name": "hnsw",
                        "engine": "faiss",
                        "space_type": DEFAULT_SPACE_TYPE,
                        "parameters": {"ef_construction": hnsw_ef_construction, "m": hnsw_m},
                    },
                },
                "source": {"type": "keyword"},
                "sha256": {"type": "keyword"},
                "damaged": {"type": "boolean"},
                "damage_type": {"type": "keyword"},
                "severity": {"type": "keyword"},
                **PROVENANCE_PROPERTIES,
            },
        },
    }


def knn_query(vector: Sequence[float], k: int) -> dict:
    return {
        "size": k,
        "query": {"knn": {VECTOR_FIELD: {"vector": list(vector), "k": k}}},
        "_source": {"excludes": [VECTOR_FIELD]},
    }


def transport_options(max_retries: int = 3, timeout_s: float = 30.0) -> dict[str, Any]:
    """opensearch-py's own retry: the transport resends on these statuses and on timeouts.

    Its retry is the library mechanism (as botocore's is for boto3); the bulk helper adds backoff
    for documents answered 429. The transport retries at once, without backoff, so it is kept small.
    """
    return {
        "timeout": timeout_s,
        "max_retries": max_retries,
        "retry_on_status": RETRY_ON_STATUS,
        "retry_on_timeout": True,
    }


def make_client(
    host: str,
    region: str,
    *,
    port: int = 443,
    credentials: Any = None,
    max_retries: int = 3,
    timeout_s: float = 30.0,
) -> OpenSearch:
    """An OpenSearch client signing every request with SigV4 for the ``aoss`` service."""
    if credentials is None:
        credentials = boto3.Session().get_credentials()
    if credentials is None:
        raise ReferenceIndexError("no AWS credentials found to sign OpenSearch Serverless requests")
    return OpenSearch(
        hosts=[{"host": host, "port": port}],
        http_auth=AWSV4SignerAuth(credentials, region, "aoss"),
        use_ssl=True,
        verify_certs=True,
        connection_class=RequestsHttpConnection,
        pool_maxsize=10,
        **transport_options(max_retries, timeout_s),
    )


class OpenSearchReferenceIndex:
    """A WritableReferenceIndex on one AOSS index; `identity` is the encoder the index is built for."""

    def __init__(
        self,
        client: OpenSearch,
        index_name: str,
        identity: EncoderIdentity | None = None,
        *,
        hnsw_m: int = 16,
        hnsw_ef_construction: int = 256,
        bulk_chunk_size: int = 200,
        bulk_max_retries: int = 3,
        bulk_initial_backoff_s: float = 2.0,
    ) -> None:
        self.client = client
        self.index_name = index_name
        self.expected_identity = identity
        self.hnsw_m = hnsw_m
        self.hnsw_ef_construction = hnsw_ef_construction
        self.bulk_chunk_size = bulk_chunk_size
        self.bulk_max_retries = bulk_max_retries
        self.bulk_initial_backoff_s = bulk_initial_backoff_s
        self._identity: EncoderIdentity | None = None
        self._space_type = DEFAULT_SPACE_TYPE
        self._provenance_mapped = False

    @classmethod
    def from_settings(
        cls,
        settings: OpenSearchSettings,
        region: str,
        identity: EncoderIdentity | None = None,
        credentials: Any = None,
    ) -> OpenSearchReferenceIndex:
        client = make_client(
            settings.collection_endpoint,
            region,
            port=settings.port,
            credentials=credentials,
            max_retries=settings.max_retries,
            timeout_s=settings.timeout_s,
        )
        return cls(
            client,
            settings.index_name,
            identity,
            hnsw_m=settings.hnsw_m,
            hnsw_ef_construction=settings.hnsw_ef_construction,
            bulk_chunk_size=settings.bulk_chunk_size,
            bulk_max_retries=settings.bulk_max_retries,
            bulk_initial_backoff_s=settings.bulk_initial_backoff_s,
        )

    # --- identity ------------------------------------------------------------------------------

    def _read_mapping(self) -> dict | None:
        try:
            response = self.client.indices.get_mapping(index=self.index_name)
        except NotFoundError:
            return None
        except TransportError as exc:
            raise ReferenceIndexError(f"reading the mapping of {self.index_name} failed: {exc}") from exc
        # The answer is keyed by index name: {"<index>": {"mappings": {...}}}.
        entry: dict[str, Any] = response.get(self.index_name) or next(iter(response.values()), {})
        return entry.get("mappings", {})

    def close(self) -> None:
        self.client.close()

    @property
    def identity(self) -> EncoderIdentity | None:
        # A fingerprinted identity never changes, so one read per instance (per Lambda container) is
        # enough. One without is re-read: the stack-created index gets its fingerprint from the first
        # `index build`, and a warm container must then see it rather than refuse every assessment.
        if self._identity is not None:
            return self._identity
        mapping = self._read_mapping() or {}
        encoder = mapping.get("_meta", {}).get("encoder")
        if encoder is None:
            return None
        vector = mapping.get("properties", {}).get(VECTOR_FIELD, {})
        self._space_type = (vector.get("method") or {}).get("space_type") or vector.get(
            "space_type", DEFAULT_SPACE_TYPE
        )
        identity = EncoderIdentity.model_validate(encoder)
        if identity.weights_fingerprint is not None:
            self._identity = identity
        return identity

    def create_index(self, identity: EncoderIdentity | None = None) -> bool:
        """Create the index for `identity`; False when it already exists (safe to call every time)."""
        identity = identity or self.expected_identity
        if identity is None:
            raise ValueError("creating the index needs the encoder identity (its vector dimension)")
        body = index_body(identity, self.hnsw_m, self.hnsw_ef_construction)
        try:
            self.client.indices.create(index=self.index_name, body=body)
        except RequestError as exc:
            if exc.error == "resource_already_exists_exception":
                return False
            raise ReferenceIndexError(f"creating index {self.index_name} failed: {exc}") from exc
        return True

    def _record_identity(self, identity: EncoderIdentity) -> None:
        """Replace the identity in the mapping's ``_meta`` (a put-mapping replaces ``_meta`` whole).

        AOSS allows ``PUT <index>/_mapping`` under ``aoss:UpdateIndex`` (Amazon OpenSearch Service
        developer guide, "Supported operations and plugins in Amazon OpenSearch Serverless").
        """
        try:
            self.client.indices.put_mapping(
                index=self.index_name, body={"_meta": {"encoder": identity.model_dump(mode="json")}}
            )
        except TransportError as exc:
            raise ReferenceIndexError(
                f"recording the encoder in the mapping of {self.index_name} failed: {exc}"
            ) from exc
        self._identity = identity

    def bind(self, identity: EncoderIdentity) -> None:
        """Create the index for `identity`, or check it against the identity the index records.

        The deployment's configured identity usually names the model without its weights fingerprint
        (known only once the endpoint has loaded them), so the index the stack creates records none.
        Such an index is claimed by the first fingerprinted encoder while it is still empty, and
        refused once it holds vectors: nothing tells which weights made them.
        """
        if identity.weights_fingerprint is None:
            raise IndexMismatch(
                f"cannot bind {self.index_name} to {identity.describe()}: the encoder reports no weights "
                "fingerprint (redeploy the endpoint with the current container)"
            )
        if self.expected_identity is not None and not identity.conforms_to(self.expected_identity):
            raise IndexMismatch(
                f"asked to bind {self.index_name} to {identity.describe()}, but this deployment "
                f"is configured for {self.expected_identity.describe()}"
            )
        if self.identity is None:
            self.create_index(identity)
        current = self.identity
        if current is None:
            raise IndexMismatch(
                f"index {self.index_name} exists but records no encoder in its mapping _meta; "
                "delete it and rebuild the reference index"
            )
        if current.comparable_with(identity):
            return
        if current.weights_fingerprint is None and current == identity.without_fingerprint():
            # AOSS makes new documents searchable only after a short delay, so a build started
            # seconds ago could still count 0 here; two builds of one index at once are not supported.
            if self.count() == 0:
                self._record_identity(identity)
                return
            raise IndexMismatch(
                f"index {self.index_name} holds vectors of {current.describe()}: it was built before "
                f"weights were fingerprinted, so nothing shows they came from {identity.describe()}; "
                "delete it and rebuild the reference index"
            )
        raise IndexMismatch(
            f"index {self.index_name} holds vectors of {current.describe()}, not "
            f"{identity.describe()}; rebuild it with the same encoder settings"
        )

    # --- writing --------------------------------------------------------------------------------

    def known_sources(self) -> set[str]:
        """Sources already indexed: without custom ids this is what makes a build resumable."""
        sources: set[str] = set()
        body: dict[str, Any] = {
            "size": MAX_PAGE,
            "query": {"match_all": {}},
            "_source": ["source"],
            "sort": [{"source": "asc"}],
        }
        while True:
            try:
                response = self.client.search(index=self.index_name, body=body)
            except NotFoundError:
                return sources
            except TransportError as exc:
                raise ReferenceIndexError(f"listing sources of {self.index_name} failed: {exc}") from exc
            hits = response["hits"]["hits"]
            sources.update(hit["_source"]["source"] for hit in hits)
            if len(hits) < MAX_PAGE:
                return sources
            body = {**body, "search_after": hits[-1]["sort"]}

    def indexed_sha256(self, candidates: Iterable[str]) -> set[str]:
        """Which of ``candidates`` the index already holds a photo of: what makes the distributed
        build idempotent, one query per batch. Documents written within the last seconds may not be
        searchable yet (AOSS has no refresh), so a rerun started at once can index a photo twice;
        search answers count a source once (`_neighbours`)."""
        wanted = sorted(set(candidates))
        found: set[str] = set()
        # A terms query takes up to index.max_terms_count (65,536) values; a batch is far below.
        for start in range(0, len(wanted), MAX_PAGE):
            chunk = wanted[start : start + MAX_PAGE]
            body = {"size": MAX_PAGE, "query": {"terms": {"sha256": chunk}}, "_source": ["sha256"]}
            try:
                response = self.client.search(index=self.index_name, body=body)
            except NotFoundError:
                return found
            except TransportError as exc:
                raise ReferenceIndexError(f"looking up photos in {self.index_name} failed: {exc}") from exc
            found.update(hit["_source"]["sha256"] for hit in response["hits"]["hits"])
        return found

    def count(self) -> int:
        try:
            response = self.client.search(
                index=self.index_name, body={"size": 0, "track_total_hits": True, "query": {"match_all": {}}}
            )
        except NotFoundError:
            return 0
        except TransportError as exc:
            raise ReferenceIndexError(f"counting documents of {self.index_name} failed: {exc}") from exc
        return int(response["hits"]["total"]["value"])

    def _actions(self, items: Sequence[ReferenceItem], dimension: int) -> Iterator[dict]:
        for item in items:
            document: dict[str, Any] = {
                VECTOR_FIELD: item.unit_vector(dimension).tolist(),
                "source": item.source,
                "sha256": item.sha256,
                "damaged": item.label.damaged,
                "damage_type": item.label.damage_type.value,
                "severity": item.label.severity.value,
            }
            if item.origin is not None:
                document["origin"] = item.origin
            if item.provenance is not None:
                document["provenance"] = item.provenance.model_dump(mode="json")
            # No "_id": AOSS vector collections reject custom document ids.
            yield {"_index": self.index_name, "_source": document}

    def add(self, items: Sequence[ReferenceItem]) -> None:
        identity = self.identity
        if identity is None:
            raise IndexMismatch("bind the index to an encoder before adding vectors")
        actions = list(self._actions(items, identity.dimension))  # validate all before sending any
        if not actions:
            return
        try:
            # raise_on_error=False: with True the helper raises on a chunk's 429 items instead of
            # retrying them; we collect the failures that remain after its retries ourselves.
            _, errors = helpers.bulk(
                self.client,
                actions,
                chunk_size=self.bulk_chunk_size,
                max_retries=self.bulk_max_retries,
                initial_backoff=self.bulk_initial_backoff_s,
                raise_on_error=False,
            )
        except TransportError as exc:
            raise ReferenceIndexError(f"bulk indexing into {self.index_name} failed: {exc}") from exc
        if errors:
            first: dict[str, Any] = next(iter(errors[0].values()), {}) if isinstance(errors[0], dict) else {}
            raise ReferenceIndexError(
                f"{len(errors)} of {len(actions)} reference photos were not indexed into "
                f"{self.index_name}; first error: {first.get('error')}"
            )

    def _ensure_provenance_mapping(self) -> None:
        """Add the provenance fields to an index created before they existed (once per instance)."""
        if self._provenance_mapped:
            return
        properties = (self._read_mapping() or {}).get("properties", {})
        if not all(name in properties for name in PROVENANCE_PROPERTIES):
            try:
                self.client.indices.put_mapping(
                    index=self.index_name, body={"properties": PROVENANCE_PROPERTIES}
                )
            except TransportError as exc:
                raise ReferenceIndexError(
                    f"adding the provenance fields to the mapping of {self.index_name} failed: {exc}"
                ) from exc
        self._provenance_mapped = True

    def _document_ids(self, source: str) -> list[str]:
        """The (generated) ids of every document of `source`."""
        body = {"size": MAX_PAGE, "query": {"term": {"source": source}}, "_source": False}
        try:
            response = self.client.search(index=self.index_name, body=body)
        except TransportError as exc:
            raise ReferenceIndexError(f"looking up {source} in {self.index_name} failed: {exc}") from exc
        return [str(hit["_id"]) for hit in response["hits"]["hits"]]

    def upsert(self, item: ReferenceItem) -> None:
        """Index `item`, then delete every older document of its source.

        AOSS vector collections refuse a document id chosen by the client, so a reference cannot be
        overwritten in place: the new document is indexed first (the reference is never missing), then
        the documents found for its source before are deleted by their generated ids (deleting by
        ``_id`` is allowed; only writing one is not). AOSS makes a new document searchable after a short
        delay: a second review within it may not see the first document, which the next replacement
        removes; meanwhile searches keep one document per source, the latest reviewed
        (`_neighbours`).
        """
        if item.provenance is not None or item.origin is not None:
            self._ensure_provenance_mapping()
        older = self._document_ids(item.source)
        self.add([item])
        if not older:
            return
        actions = [{"_op_type": "delete", "_index": self.index_name, "_id": doc_id} for doc_id in older]
        try:
            _, errors = helpers.bulk(
                self.client,
                actions,
                max_retries=self.bulk_max_retries,
                initial_backoff=self.bulk_initial_backoff_s,
                raise_on_error=False,
            )
        except TransportError as exc:
            raise ReferenceIndexError(
                f"deleting the replaced reference {item.source} from {self.index_name} failed: {exc}"
            ) from exc
        # A document already gone (404) is what we wanted; anything else is a failure.
        outcomes: list[dict[str, Any]] = [next(iter(error.values()), {}) for error in errors]
        failed = [outcome for outcome in outcomes if outcome.get("status") != 404]
        if failed:
            raise ReferenceIndexError(
                f"{len(failed)} replaced document(s) of {item.source} were not deleted from "
                f"{self.index_name}; first error: {failed[0].get('error')}"
            )

    # --- searching ------------------------------------------------------------------------------

    def search(self, vectors: np.ndarray, k: int) -> list[list[Neighbour]]:
        identity = self.identity
        if identity is None:
            raise IndexMismatch(
                f"the reference index {self.index_name} is missing or unbound; build it first"
            )
        queries = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        if queries.shape[1] != identity.dimension:
            raise IndexMismatch(f"query dimension {queries.shape[1]} != index dimension {identity.dimension}")
        if queries.shape[0] == 0:
            return []
        # One _msearch round trip for all photos of an assessment instead of one request each.
        lines: list[dict] = []
        for query in queries:
            lines.extend([{"index": self.index_name}, knn_query(query.astype(float).tolist(), k)])
        try:
            response = self.client.msearch(body=lines)
        except TransportError as exc:
            raise ReferenceIndexError(f"k-NN search on {self.index_name} failed: {exc}") from exc
        answers = response.get("responses", [])
        if len(answers) != queries.shape[0]:
            raise ReferenceIndexError(f"k-NN search answered {len(answers)} of {queries.shape[0]} queries")
        results = []
        for answer in answers:
            if "error" in answer:
                raise ReferenceIndexError(f"k-NN search on {self.index_name} failed: {answer['error']}")
            hits = answer["hits"]["hits"]
            if not hits:
                raise IndexMismatch(
                    f"the reference index {self.index_name} returned no neighbours; is it empty?"
                )
            results.append(self._neighbours(hits))
        return results

    def _neighbours(self, hits: Sequence[Mapping[str, Any]]) -> list[Neighbour]:
        # A retried bulk request may have stored a photo twice (no ids to dedupe on), and a replaced
        # reviewed photo lives on until its deletion is visible: count each source once, keeping its
        # latest review (documents without provenance: the best-scoring one).
        chosen: dict[str, Mapping[str, Any]] = {}
        for hit in hits:
            source = hit["_source"]["source"]
            if source not in chosen or _reviewed_later(hit, chosen[source]):
                chosen[source] = hit
        neighbours = []
        for hit in hits:
            doc = hit["_source"]
            if chosen.get(doc["source"]) is not hit:
                continue
            neighbours.append(
                Neighbour(
                    reference_id=str(hit["_id"]),
                    source=doc["source"],
                    similarity=round(score_to_similarity(float(hit["_score"]), self._space_type), 6),
                    # Every document carries it (see _actions); it names the reference's display copy.
                    sha256=doc.get("sha256"),
                    label=ReferenceLabel(
                        damaged=bool(doc["damaged"]),
                        damage_type=DamageType(doc["damage_type"]),
                        severity=Severity(doc["severity"]),
                    ),
                )
            )
        return neighbours


def _provenance(hit: Mapping[str, Any]) -> ReferenceProvenance | None:
    raw = hit["_source"].get("provenance")
    return ReferenceProvenance.model_validate(raw) if raw else None


def _reviewed_later(hit: Mapping[str, Any], than: Mapping[str, Any]) -> bool:
    """Whether `hit` records a later review than `than` (a document without provenance: the earliest)."""
    new, old = _provenance(hit), _provenance(than)
    return new is not None and (old is None or new.reviewed_at > old.reviewed_at)
