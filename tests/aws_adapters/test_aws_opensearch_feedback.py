"""A reviewed photo in OpenSearch Serverless: provenance fields, replacement without client ids."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from vehicle_assessment.adapters.aws.opensearch_index import (
    PROVENANCE_PROPERTIES,
    OpenSearchReferenceIndex,
    ReferenceIndexError,
    index_body,
)
from vehicle_assessment.domain.models import (
    DamageType,
    EncoderIdentity,
    ReferenceLabel,
    ReferenceProvenance,
    Severity,
)
from vehicle_assessment.ports import ReferenceItem

from .test_aws_opensearch_index import INDEX, Answer, Recorded, bulk_ok, fake_aoss, hit, mapping_answer

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])
__all__ = ["fake_aoss"]  # the fixture, imported for pytest

PROVENANCE = ReferenceProvenance(
    assessment_id="a1", photo_id="01", reviewer="ana", reviewed_at=datetime(2026, 11, 27, 12, tzinfo=UTC)
)
SEVERE_DENT = ReferenceLabel(damaged=True, damage_type=DamageType.DENT, severity=Severity.SEVERE)


def reviewed(vector: list[float], label: ReferenceLabel = SEVERE_DENT) -> ReferenceItem:
    return ReferenceItem(
        source="review/a1/01",
        sha256="ab" * 32,
        label=label,
        vector=np.asarray(vector),
        provenance=PROVENANCE,
        origin="review",
    )


def legacy_mapping(identity: EncoderIdentity) -> Answer:
    """A mapping from before provenance fields existed."""
    mappings = index_body(identity)["mappings"]
    properties = {k: v for k, v in mappings["properties"].items() if k not in PROVENANCE_PROPERTIES}
    return 200, {INDEX: {"mappings": {**mappings, "properties": properties}}}


def ids_of(*doc_ids: str) -> Answer:
    return 200, {"hits": {"hits": [{"_index": INDEX, "_id": d, "_score": 1.0} for d in doc_ids]}}


def deleted(request: Recorded) -> Answer:
    items = [
        {"delete": {"_index": INDEX, "_id": line["delete"]["_id"], "status": 200, "result": "deleted"}}
        for line in request.ndjson()
    ]
    return 200, {"errors": False, "items": items}


def test_a_reviewed_photo_is_indexed_with_provenance_and_older_copies_are_deleted(
    fake_aoss, identity
) -> None:
    fake, client = fake_aoss
    fake.on("GET", f"/{INDEX}/_mapping", legacy_mapping(identity))
    fake.on("PUT", f"/{INDEX}/_mapping", (200, {"acknowledged": True}))
    fake.on("POST", f"/{INDEX}/_search", ids_of("old1", "old2"))
    fake.on("POST", "/_bulk", bulk_ok, deleted)
    index = OpenSearchReferenceIndex(client, INDEX, identity)

    index.upsert(reviewed([0, 3, 4, 0]))

    [put_mapping] = fake.sent("PUT", f"/{INDEX}/_mapping")
    assert put_mapping.json() == {"properties": PROVENANCE_PROPERTIES}  # fields added, _meta untouched
    [lookup] = fake.sent("POST", f"/{INDEX}/_search")
    assert lookup.json()["query"] == {"term": {"source": "review/a1/01"}}
    write, delete = fake.sent("POST", "/_bulk")
    action, document = write.ndjson()
    assert action == {"index": {"_index": INDEX}}  # still no client id: AOSS refuses them
    assert document == {
        "embedding": pytest.approx([0.0, 0.6, 0.8, 0.0]),
        "source": "review/a1/01",
        "sha256": "ab" * 32,
        "damaged": True,
        "damage_type": "dent",
        "severity": "severe",
        "origin": "review",
        "provenance": {
            "assessment_id": "a1",
            "photo_id": "01",
            "reviewer": "ana",
            "reviewed_at": "2026-11-27T12:00:00Z",
        },
    }
    # Indexed first, deleted after: the reference is never missing.
    assert delete.ndjson() == [
        {"delete": {"_index": INDEX, "_id": "old1"}},
        {"delete": {"_index": INDEX, "_id": "old2"}},
    ]


def test_a_first_review_deletes_nothing_and_a_current_mapping_is_left_alone(fake_aoss, identity) -> None:
    fake, client = fake_aoss
    fake.on("GET", f"/{INDEX}/_mapping", mapping_answer(identity))
    fake.on("POST", f"/{INDEX}/_search", ids_of())
    fake.on("POST", "/_bulk", bulk_ok)

    OpenSearchReferenceIndex(client, INDEX, identity).upsert(reviewed([1, 0, 0, 0]))

    assert not fake.sent("PUT", f"/{INDEX}/_mapping")
    assert len(fake.sent("POST", "/_bulk")) == 1


def test_a_failed_deletion_is_reported_but_one_already_gone_is_not(fake_aoss, identity) -> None:
    fake, client = fake_aoss
    fake.on("GET", f"/{INDEX}/_mapping", mapping_answer(identity))
    fake.on("POST", f"/{INDEX}/_search", ids_of("gone", "stuck"))
    answer = {
        "errors": True,
        "items": [
            {"delete": {"_index": INDEX, "_id": "gone", "status": 404, "result": "not_found"}},
            {"delete": {"_index": INDEX, "_id": "stuck", "status": 403, "error": {"type": "forbidden"}}},
        ],
    }
    fake.on("POST", "/_bulk", bulk_ok, (200, answer))
    with pytest.raises(ReferenceIndexError, match=r"1 replaced document\(s\) of review/a1/01.*forbidden"):
        OpenSearchReferenceIndex(client, INDEX, identity, bulk_max_retries=0).upsert(reviewed([1, 0, 0, 0]))


def test_search_keeps_the_latest_review_of_a_photo_not_yet_deleted(fake_aoss, identity) -> None:
    fake, client = fake_aoss
    fake.on("GET", f"/{INDEX}/_mapping", mapping_answer(identity))

    def with_review(doc: dict, reviewed_at: str) -> dict:
        doc["_source"]["provenance"] = {**PROVENANCE.model_dump(mode="json"), "reviewed_at": reviewed_at}
        return doc

    first = with_review(hit("first", 1.95, "review/a1/01", True), "2026-11-27T12:00:00Z")
    second = with_review(hit("second", 1.9, "review/a1/01", False), "2026-11-27T12:05:00+00:00")
    other = hit("x", 1.5, "clean/b.jpg", False)
    fake.on("POST", "/_msearch", (200, {"responses": [{"hits": {"hits": [first, second, other]}}]}))

    [neighbours] = OpenSearchReferenceIndex(client, INDEX).search(np.array([[1.0, 0, 0, 0]]), k=3)

    assert [(n.reference_id, n.label.damaged) for n in neighbours] == [("second", False), ("x", False)]
