"""DynamoDB photo registry: the reused-photo check on AWS, in the assessment table, without scans.

Items (beside the assessment items of ``dynamodb.py``; same PK/SK, no index)::

    item          PK                                SK                          attributes
    fingerprint   PHOTO#{assessment_id}#{photo_id}  FINGERPRINT                 the PhotoFingerprint
    hash band     PHOTO_HASH#{band}#{bits, hex}     {assessment_id}#{photo_id}  assessment_id, photo_id,
    exact copy    PHOTO_SHA256#{sha256}             {assessment_id}#{photo_id}  vin, sha256, perceptual_hash

Near-duplicate search is multi-index hashing (``domain.reuse.BandLayout``): the 64-bit hash is cut into
``bands`` bands; a photo within the threshold of another shares, in at least one band, a value within
``radius`` bits (pigeonhole). Remembering a photo writes one item per band (and the digest item and the
fingerprint) in ONE BatchWriteItem; a search Queries each probed band key and the digest key, then checks
the full Hamming distance of what it found. So a search costs ``layout.lookups + 1`` Queries whatever
the table holds, and reads only the photos sharing a band value (README "Reused photos": the measured
candidate fan-out). The Queries run ``limits.PHOTO_REGISTRY_QUERY_WORKERS`` at a time, on the table's
low-level client: boto3 clients may be shared between threads, resources (the Table) may not
(https://boto3.amazonaws.com/v1/documentation/api/latest/guide/resources.html#multithreading-or-multiprocessing-with-resources).
The keys live on the base table, not a GSI, so the Queries can be strongly consistent
("Strongly consistent reads are not supported on global secondary indexes",
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.ReadConsistency.html):
a photo remembered before a search is always seen by it (``pipeline.check_reuse`` relies on that).

The embedding path (trained encoders) is local-only for now: a k-NN query needs an OpenSearch index of
photos, which this stack does not have; the fingerprint keeps the vector and its encoder, so adding one
later (or learning from a reviewed photo) needs no re-embedding.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from datetime import datetime
from typing import Any, TypeVar

import numpy as np
from botocore.exceptions import BotoCoreError, ClientError

from vehicle_assessment.adapters.aws.errors import error_code
from vehicle_assessment.domain import limits
from vehicle_assessment.domain.models import EncoderIdentity, PhotoFingerprint, ReuseMatch
from vehicle_assessment.domain.reuse import BandLayout, band_keys, band_layout, match_candidates
from vehicle_assessment.domain.rules import ReuseSettings
from vehicle_assessment.ports import PhotoRegistryUnavailable

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

FINGERPRINT_SK = "FINGERPRINT"
_CANDIDATE_FIELDS = ("assessment_id", "photo_id", "vin", "sha256", "perceptual_hash", "recorded_at")
# Every projected attribute by an alias: none can collide with DynamoDB's reserved words
# (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ReservedWords.html).
_PROJECTION = ", ".join(f"#f{i}" for i in range(len(_CANDIDATE_FIELDS)))
_PROJECTED_NAMES = {f"#f{i}": name for i, name in enumerate(_CANDIDATE_FIELDS)}


def fingerprint_pk(assessment_id: str, photo_id: str) -> str:
    return f"PHOTO#{assessment_id}#{photo_id}"


def sha256_pk(sha256: str) -> str:
    return f"PHOTO_SHA256#{sha256}"


class DynamoPhotoRegistry:
    """The band layout comes from ``settings`` (threshold and ``hash_bands``); every photo is remembered
    and searched with the same layout, so changing either needs the band items rewritten."""

    def __init__(
        self,
        table: Any,
        settings: ReuseSettings,
        ttl_days: int | None = None,
        query_workers: int = limits.PHOTO_REGISTRY_QUERY_WORKERS,
        deadline_s: float = limits.PHOTO_REGISTRY_DEADLINE_S,
    ) -> None:
        if query_workers < 1:
            raise ValueError(f"query_workers must be at least 1, got {query_workers}")
        if deadline_s <= 0:
            raise ValueError(f"deadline_s must be positive, got {deadline_s}")
        self.table = table
        # The searches' Queries go through the Table's own client (thread-safe), with the resource's
        # Python <-> DynamoDB type conversion; its hooks keep state only while building expressions
        # from Key()/Attr() objects, which the registry never passes.
        self._client = table.meta.client
        self._table_name: str = table.name
        self.settings = settings
        self.ttl_days = ttl_days
        self.query_workers = query_workers
        self.deadline_s = deadline_s
        self.layout: BandLayout = band_layout(settings.perceptual_max_distance, settings.hash_bands)

    def remember(self, fingerprint: PhotoFingerprint) -> None:
        """One BatchWriteItem: the fingerprint, one item per band, the digest item; band or digest items
        of an earlier, different fingerprint of the same photo are deleted in the same batch.

        BatchWriteItem takes at most 25 put/delete requests (16 MB, 400 KB per item) and is not atomic
        (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html): the
        layout has at most 33 band keys at the highest threshold, and boto3's batch_writer splits into 25s
        and resends UnprocessedItems. A partial write is repaired by the next remember (idempotent).
        Past ``deadline_s`` it raises PhotoRegistryUnavailable (``_before_deadline``).
        """
        self._before_deadline("remember", [functools.partial(self._remember, fingerprint)], workers=1)

    def _remember(self, fingerprint: PhotoFingerprint) -> None:
        reference = f"{fingerprint.assessment_id}#{fingerprint.photo_id}"
        keys = {
            *band_keys(fingerprint.perceptual_hash, self.layout, probe=False),
            sha256_pk(fingerprint.sha256),
        }
        pk = fingerprint_pk(fingerprint.assessment_id, fingerprint.photo_id)
        stored = self.table.get_item(Key={"PK": pk, "SK": FINGERPRINT_SK}, ConsistentRead=True).get("Item")
        stale: set[str] = set()
        if stored:
            stale = {
                *band_keys(str(stored["perceptual_hash"]), self.layout, probe=False),
                sha256_pk(str(stored["sha256"])),
            } - keys
        with self.table.batch_writer() as batch:
            batch.put_item(Item=self._fingerprint_item(pk, fingerprint))
            for key in sorted(keys):
                batch.put_item(Item=self._reference_item(key, reference, fingerprint))
            for key in sorted(stale):
                batch.delete_item(Key={"PK": key, "SK": reference})

    def find_reuse(self, fingerprint: PhotoFingerprint) -> list[ReuseMatch]:
        """Past ``deadline_s`` it raises PhotoRegistryUnavailable (``_before_deadline``)."""
        if fingerprint.vector is not None and fingerprint.encoder and not fingerprint.encoder.untrained:
            logger.debug("photo registry: the embedding check is local-only; DynamoDB compares hashes")
        keys = [
            *band_keys(fingerprint.perceptual_hash, self.layout, probe=True),
            sha256_pk(fingerprint.sha256),
        ]
        answers = self._before_deadline(
            "search", [functools.partial(self._query, key) for key in keys], workers=self.query_workers
        )
        candidates: dict[tuple[str, str], PhotoFingerprint] = {}
        # The answers come in the keys' order, whatever order they arrived in: the candidates (and the
        # matches) are the same as one Query after another.
        for items in answers:
            for item in items:
                if item["vin"] == fingerprint.vin:
                    continue
                candidate = _candidate(item)
                candidates[(candidate.assessment_id, candidate.photo_id)] = candidate
        return match_candidates(fingerprint, list(candidates.values()), self.settings)

    def _before_deadline(self, what: str, calls: Sequence[Callable[[], _T]], workers: int) -> list[_T]:
        """The calls' results in order, ``workers`` calls at a time; PhotoRegistryUnavailable when one
        fails or they are not all done within ``deadline_s``.

        The check is advisory (``pipeline.check_reuse`` records an unavailable registry and goes on), so
        a slow DynamoDB must not hold the analyse step past its Lambda timeout: past the deadline this
        returns at once, the calls not started are dropped, and the ones in flight are left to finish on
        their own. The table's client bounds those (``settings.photo_registry_client``: short attempts,
        two in all), so at most ``workers`` threads outlive the deadline, by one call's worst case (a
        Query's pages: one per ~1 MB of a band's items, a single page in practice). In a Lambda
        environment frozen after the handler returned they go on (or time out) when it thaws; nothing
        reads their results, and every call has its own pool.
        """
        pool = ThreadPoolExecutor(
            max_workers=min(workers, len(calls)), thread_name_prefix=f"photo-registry-{what}"
        )
        try:
            futures = [pool.submit(call) for call in calls]
            done, pending = wait(futures, timeout=self.deadline_s, return_when=FIRST_EXCEPTION)
            failed = [future for future in futures if future in done and future.exception() is not None]
            if pending and not failed:
                raise PhotoRegistryUnavailable(
                    f"photo registry {what} did not finish within its {self.deadline_s:g} s deadline "
                    f"({len(done)} of {len(calls)} done)"
                )
            # The first failure (in the calls' order), else every result in order.
            return [future.result() for future in (failed[:1] or futures)]
        except (ClientError, BotoCoreError) as exc:
            raise self._unavailable(what, exc) from exc
        finally:
            # Never waits: past the deadline or after a failure the calls not started are dropped, not sent.
            pool.shutdown(wait=False, cancel_futures=True)

    def fingerprint(self, assessment_id: str, photo_id: str) -> PhotoFingerprint | None:
        key = {"PK": fingerprint_pk(assessment_id, photo_id), "SK": FINGERPRINT_SK}
        try:
            item = self.table.get_item(Key=key, ConsistentRead=True).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise self._unavailable("read", exc) from exc
        return _stored_fingerprint(item) if item else None

    def _query(self, pk: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        request: dict[str, Any] = {
            "TableName": self._table_name,
            "KeyConditionExpression": "PK = :pk",
            "ExpressionAttributeValues": {":pk": pk},
            "ProjectionExpression": _PROJECTION,
            "ExpressionAttributeNames": _PROJECTED_NAMES,
            "ConsistentRead": True,
        }
        while True:
            page = self._client.query(**request)
            items += page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return items
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _fingerprint_item(self, pk: str, fingerprint: PhotoFingerprint) -> dict[str, Any]:
        item: dict[str, Any] = {
            "PK": pk,
            "SK": FINGERPRINT_SK,
            **_reference_attributes(fingerprint),
        }
        if fingerprint.encoder is not None:
            item["encoder"] = fingerprint.encoder.model_dump_json()
        if fingerprint.vector is not None:
            # float32 bytes: 3 KB for 768 dimensions, far below the 400 KB item limit, and exact.
            item["vector"] = np.asarray(fingerprint.vector, dtype=np.float32).tobytes()
        return self._with_ttl(item, fingerprint)

    def _reference_item(self, pk: str, reference: str, fingerprint: PhotoFingerprint) -> dict[str, Any]:
        return self._with_ttl({"PK": pk, "SK": reference, **_reference_attributes(fingerprint)}, fingerprint)

    def _with_ttl(self, item: dict[str, Any], fingerprint: PhotoFingerprint) -> dict[str, Any]:
        # Expires with its assessment (same ttl_days as the repository's), so no stale photo stays findable.
        if self.ttl_days:
            item["expires_at"] = int(fingerprint.recorded_at.timestamp()) + self.ttl_days * 86_400
        return item

    @staticmethod
    def _unavailable(what: str, exc: ClientError | BotoCoreError) -> PhotoRegistryUnavailable:
        code = error_code(exc) or type(exc).__name__
        return PhotoRegistryUnavailable(f"photo registry {what} failed: {code}: {exc}")


def _reference_attributes(fingerprint: PhotoFingerprint) -> dict[str, Any]:
    return {
        "assessment_id": fingerprint.assessment_id,
        "photo_id": fingerprint.photo_id,
        "vin": fingerprint.vin,
        "sha256": fingerprint.sha256,
        "perceptual_hash": fingerprint.perceptual_hash,
        "recorded_at": fingerprint.recorded_at.isoformat(),
    }


def _candidate(item: dict[str, Any]) -> PhotoFingerprint:
    return PhotoFingerprint(
        assessment_id=str(item["assessment_id"]),
        photo_id=str(item["photo_id"]),
        vin=str(item["vin"]),
        sha256=str(item["sha256"]),
        perceptual_hash=str(item["perceptual_hash"]),
        recorded_at=datetime.fromisoformat(str(item["recorded_at"])),
    )


def _stored_fingerprint(item: dict[str, Any]) -> PhotoFingerprint:
    vector = item.get("vector")
    raw = bytes(vector.value if hasattr(vector, "value") else vector) if vector is not None else None
    encoder = item.get("encoder")
    return _candidate(item).model_copy(
        update={
            "encoder": EncoderIdentity.model_validate_json(str(encoder)) if encoder else None,
            "vector": np.frombuffer(raw, dtype=np.float32).tolist() if raw is not None else None,
        }
    )
