"""The reference index built inside AWS: one batch of labels-manifest rows per Lambda invocation.

A Distributed Map (infra/constructs/index_build.py) reads the manifest, a labels.csv with the columns
of the local ``index build`` (path, damaged, damage_type, severity) stored under
``upload_keys.REFERENCE_SET_PREFIX``, and hands batches of rows to `build_batch`. Each batch applies
the local build's label and intake rules, skips photos already indexed (by sha256, so a rerun of the
same or an overlapping manifest adds nothing twice), writes each new reference's display copy to
``upload_keys.reference_image_key(sha256)``, embeds the photos through the endpoint and bulk-writes
them. Every row not indexed comes back in the batch result with its reason; the Map Run writes the
results to S3.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from vehicle_assessment.adapters.aws.settings import (
    AwsClientSettings,
    OpenSearchSettings,
    SageMakerEncoderSettings,
)
from vehicle_assessment.domain import limits, upload_keys
from vehicle_assessment.domain.models import QualityLevel, ReferenceLabel
from vehicle_assessment.domain.rules import AssessmentRules, IntakeSettings
from vehicle_assessment.ports import (
    ImageEncoder,
    ObjectNotFound,
    ObjectStore,
    ObjectTooLarge,
    ReferenceItem,
    WritableReferenceIndex,
)

if TYPE_CHECKING:
    from PIL import Image

logger = logging.getLogger(__name__)

# CPU seconds one photo may take on a Lambda core: intake (decode, EXIF orientation, quality checks)
# plus the display copy. Measured here: 0.62 s for a 12 MP JPEG (0.60 intake, 0.02 display copy) on
# one core of this 2-core machine; the largest photo allowed (limits.MAX_PHOTO_PIXELS, 50 MP) is ~4×
# that, and a Lambda arm64 core is slower than this x86 one: 4 s holds both.
PHOTO_CPU_BUDGET_S = 4.0


class IndexedBySha256(WritableReferenceIndex, Protocol):
    """A reference index that can say which photos (by content) it already holds."""

    def indexed_sha256(self, candidates: Iterable[str]) -> set[str]: ...


class IndexBuildConfig(BaseSettings):
    """The batch function's environment: AWS_REGION, BUCKET_NAME, SAGEMAKER, OPENSEARCH, RULES."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, env_nested_delimiter="__")

    aws_region: str = Field(default="us-east-1", min_length=1)
    # The photos bucket: the reference sets are read from it and the display copies written to it.
    bucket_name: str = Field(min_length=3)
    sagemaker: SageMakerEncoderSettings
    opensearch: OpenSearchSettings
    # The deployment's rules: their intake part is what a local build applies.
    rules: AssessmentRules = Field(default_factory=AssessmentRules)
    client: AwsClientSettings = Field(default_factory=AwsClientSettings)
    # Photos downloaded, checked and copied at once; S3 latency, not CPU, is what this hides.
    download_workers: int = Field(default=limits.INDEX_BUILD_DOWNLOAD_WORKERS, ge=1, le=64)


# --- the batch the Distributed Map hands over -----------------------------------------------------


class ManifestItem(BaseModel):
    """One manifest row as the map's ItemSelector passes it on.

    ItemReader CSV with CSVHeaderLocation FIRST_ROW: each row is an object keyed by the header's
    column names, every value a string (Step Functions developer guide, "ItemReader (Map)", CSV files).
    ``index`` is ``$$.Map.Item.Index``, the row's position after the header.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    row: dict[str, str]
    index: int = Field(ge=0)
    manifest_key: str = Field(min_length=1)

    @property
    def line(self) -> int:
        return self.index + 2  # line 1 is the header

    @property
    def path(self) -> str:
        return (self.row.get("path") or "").strip()


class BatchEvent(BaseModel):
    """What a child workflow of a batched Distributed Map receives: ``{"Items": [...]}`` (plus
    ``BatchInput`` when the ItemBatcher sets one; Step Functions developer guide, "ItemBatcher (Map)")."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    items: list[ManifestItem] = Field(alias="Items", min_length=1)


class SkippedRow(BaseModel):
    line: int
    source: str
    reason: str


class BatchResult(BaseModel):
    rows: int
    added: int = 0
    already_indexed: int = 0
    skipped: list[SkippedRow] = Field(default_factory=list)


# --- the work ---------------------------------------------------------------------------------


@dataclass
class _Photo:
    item: ManifestItem
    key: str
    label: ReferenceLabel
    sha256: str = ""
    data: bytes = b""


@dataclass(frozen=True)
class _Prepared:
    photo: _Photo
    image: Image.Image  # the intake's embedding copy


def _skip(result: BatchResult, item: ManifestItem, source: str, reason: str) -> None:
    logger.info("skipping manifest line %d (%s): %s", item.line, source, reason)
    result.skipped.append(SkippedRow(line=item.line, source=source, reason=reason))


def _download(store: ObjectStore, photo: _Photo, max_bytes: int) -> _Photo | str:
    """The photo's bytes, unless the object is missing or larger than intake accepts: a multi-GB
    object named by the manifest is skipped on its size, never read into the function's memory."""
    from vehicle_assessment.domain.photo import too_large_reason

    try:
        photo.data = store.get(photo.key, max_bytes=max_bytes)
    except ObjectNotFound as exc:
        return str(exc)
    except ObjectTooLarge as exc:
        return too_large_reason(exc.size, exc.max_bytes)
    photo.sha256 = hashlib.sha256(photo.data).hexdigest()
    return photo


def _prepare(store: ObjectStore, photo: _Photo, intake: IntakeSettings) -> _Prepared | str:
    """Intake as a local build does, then the display copy (written before the photo is indexed, so
    every indexed reference has one; a crash in between leaves a copy that the rerun rewrites)."""
    from vehicle_assessment.domain.photo import PhotoRejected, display_copy_jpeg, intake_photo

    try:
        result = intake_photo(photo.data, intake)
    except PhotoRejected as exc:
        return str(exc)
    if result.quality.level == QualityLevel.REJECT:
        return "; ".join(result.quality.reasons)
    store.put(upload_keys.reference_image_key(photo.sha256), display_copy_jpeg(result.image), "image/jpeg")
    photo.data = b""  # the bytes are hashed and decoded: free them before the batch is embedded
    return _Prepared(photo, result.image)


def build_batch(
    batch: BatchEvent,
    store: ObjectStore,
    encoder: ImageEncoder,
    index: IndexedBySha256,
    intake: IntakeSettings,
    workers: int = limits.INDEX_BUILD_DOWNLOAD_WORKERS,
) -> BatchResult:
    """Index one batch of manifest rows; every row ends added, already indexed, or skipped with a reason.

    Errors of the services (the endpoint, the collection, S3 access) raise: the child workflow fails,
    Step Functions retries it, and past its retries it counts toward the tolerated failure percentage.
    """
    # numpy and Pillow load here, not at import: every handler module imports in the light package too
    # (tests/infra/test_bundle.py), and this function's own package (the photo one) has them.
    from vehicle_assessment.indexing import parse_label

    result = BatchResult(rows=len(batch.items))
    # Concurrent batches all bind the same served identity; binding is idempotent.
    index.bind(encoder.identity)
    photos: list[_Photo] = []
    for item in batch.items:
        try:
            key = upload_keys.reference_set_photo_key(item.manifest_key, item.path)
            label = parse_label(item.row)
        except ValueError as exc:
            _skip(result, item, item.path or f"line {item.line}", str(exc))
            continue
        photos.append(_Photo(item=item, key=key, label=label))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        downloaded: list[_Photo] = []
        for photo, outcome in zip(
            photos, pool.map(lambda p: _download(store, p, intake.max_bytes), photos), strict=True
        ):
            if isinstance(outcome, str):
                _skip(result, photo.item, photo.key, outcome)
            else:
                downloaded.append(outcome)
        known = index.indexed_sha256(photo.sha256 for photo in downloaded)
        fresh: list[_Photo] = []
        first_of: dict[str, _Photo] = {}
        for photo in downloaded:
            if photo.sha256 in known:
                result.already_indexed += 1
            elif photo.sha256 in first_of:
                _skip(result, photo.item, photo.key, f"the same photo as {first_of[photo.sha256].key}")
            else:
                first_of[photo.sha256] = photo
                fresh.append(photo)
        prepared: list[_Prepared] = []
        for photo, ready in zip(fresh, pool.map(lambda p: _prepare(store, p, intake), fresh), strict=True):
            if isinstance(ready, str):
                _skip(result, photo.item, photo.key, ready)
            else:
                prepared.append(ready)
    if prepared:
        vectors = encoder.embed([ready.image for ready in prepared])
        index.add(
            [
                ReferenceItem(
                    source=ready.photo.key, sha256=ready.photo.sha256, label=ready.photo.label, vector=vector
                )
                for ready, vector in zip(prepared, vectors, strict=True)
            ]
        )
        result.added = len(prepared)
    return result


# --- the time budget the batch function's timeout is sized to -------------------------------------


def batch_worst_case_s(batch_size: int, config: IndexBuildConfig) -> float:
    """The longest one batch can take, every client call at its worst case (each has its own timeouts
    and botocore/opensearch-py retries): what the function's timeout must hold.

    Fixed: the endpoint's identity probe, binding the index (mapping read, count, mapping write), the
    sha256 lookup and the bulk write (its chunks, each retried with the bulk helper's backoff).
    Per photo: a download and a display-copy upload (``download_workers`` at a time) and its CPU
    (sequential: a Lambda of this size has about one vCPU). Per request of up to 16 images: the endpoint.
    """
    from vehicle_assessment.endpoint_protocol import MAX_IMAGES_PER_REQUEST

    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    search = config.opensearch
    bulk_backoff = sum(search.bulk_initial_backoff_s * 2**retry for retry in range(search.bulk_max_retries))
    bulk_chunks = math.ceil(batch_size / search.bulk_chunk_size)
    fixed = (
        config.sagemaker.client.worst_case_s()
        + 3 * search.worst_case_s()
        + search.worst_case_s()
        + bulk_chunks * (search.worst_case_s() + bulk_backoff)
    )
    s3_rounds = math.ceil(batch_size / config.download_workers)
    transfers = s3_rounds * 2 * config.client.worst_case_s()
    cpu = batch_size * PHOTO_CPU_BUDGET_S
    endpoint = math.ceil(batch_size / MAX_IMAGES_PER_REQUEST) * config.sagemaker.client.worst_case_s()
    return fixed + transfers + cpu + endpoint


def batch_timeout_s(batch_size: int, config: IndexBuildConfig) -> int:
    """The batch function's timeout: the worst case within the share of it clients may use."""
    needed = math.ceil(batch_worst_case_s(batch_size, config) / limits.CLIENT_SHARE_OF_TIMEOUT)
    if needed > limits.LAMBDA_MAX_TIMEOUT_S:
        raise ValueError(
            f"a batch of {batch_size} photos could take {needed} s, more than Lambda's "
            f"{limits.LAMBDA_MAX_TIMEOUT_S} s: configure a smaller index_build_batch_size"
        )
    return needed
