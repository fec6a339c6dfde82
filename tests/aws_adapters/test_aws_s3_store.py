from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from vehicle_assessment.adapters.aws.s3_object_store import S3ObjectStore
from vehicle_assessment.adapters.aws.settings import AwsClientSettings
from vehicle_assessment.ports import ObjectNotFound, ObjectTooLarge

from .conftest import REGION

BUCKET = "assessment-photos"


@pytest.fixture
def s3(aws_credentials: None) -> Iterator[object]:
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=BUCKET)
        yield client


def test_put_get_exists_round_trip(s3) -> None:
    store = S3ObjectStore(s3, BUCKET)
    assert not store.exists("photos/a1/front.jpg")

    store.put("photos/a1/front.jpg", b"\xff\xd8jpeg", "image/jpeg")

    assert store.exists("photos/a1/front.jpg")
    assert store.get("photos/a1/front.jpg") == b"\xff\xd8jpeg"
    head = s3.head_object(Bucket=BUCKET, Key="photos/a1/front.jpg")
    assert head["ContentType"] == "image/jpeg"


def test_missing_key_is_object_not_found(s3) -> None:
    store = S3ObjectStore(s3, BUCKET)
    with pytest.raises(ObjectNotFound, match="s3://assessment-photos/nothing/here"):
        store.get("nothing/here")


class _CountingBody:
    def __init__(self, body: Any, counts: dict[str, int], key: str) -> None:
        self.body, self.counts, self.key = body, counts, key

    def read(self, amt: int | None = None) -> bytes:
        data: bytes = self.body.read(amt)
        self.counts[self.key] = self.counts.get(self.key, 0) + len(data)
        return data

    def __enter__(self) -> _CountingBody:
        return self

    def __exit__(self, *exc: object) -> None:
        self.body.close()


class BodyReadCountingS3:
    """An S3 client whose GetObject bodies count the bytes read from them, per key."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.bytes_read: dict[str, int] = {}

    def get_object(self, **kwargs: Any) -> dict[str, Any]:
        response: dict[str, Any] = self.client.get_object(**kwargs)
        self.bytes_read.setdefault(kwargs["Key"], 0)
        return {**response, "Body": _CountingBody(response["Body"], self.bytes_read, kwargs["Key"])}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def test_an_object_over_max_bytes_is_refused_from_its_length_without_reading_its_body(s3) -> None:
    s3.put_object(Bucket=BUCKET, Key="refs/big.jpg", Body=b"x" * 1001)
    s3.put_object(Bucket=BUCKET, Key="refs/fits.jpg", Body=b"x" * 1000)
    client = BodyReadCountingS3(s3)
    store = S3ObjectStore(client, BUCKET)

    with pytest.raises(ObjectTooLarge, match=r"refs/big.jpg is 1,001 bytes, more than the 1,000") as refused:
        store.get("refs/big.jpg", max_bytes=1000)
    assert (refused.value.size, refused.value.max_bytes) == (1001, 1000)
    assert client.bytes_read == {"refs/big.jpg": 0}
    assert store.get("refs/fits.jpg", max_bytes=1000) == b"x" * 1000
    assert store.get("refs/big.jpg") == b"x" * 1001  # no limit asked: the whole object


def test_other_errors_are_not_disguised_as_missing(s3) -> None:
    # A missing bucket is a deployment error, not a missing photo: it must surface as itself.
    store = S3ObjectStore(s3, "no-such-bucket")
    with pytest.raises(s3.exceptions.NoSuchBucket):
        store.get("photos/a.jpg")


@pytest.mark.parametrize("key", ["", "/abs/key", "photos/../secret"])
def test_rejects_keys_that_could_escape(key: str) -> None:
    store = S3ObjectStore(object(), BUCKET)  # refused before any client call
    for call in (
        lambda: store.put(key, b"x", "text/plain"),
        lambda: store.get(key),
        lambda: store.exists(key),
    ):
        with pytest.raises(ValueError, match="invalid object key"):
            call()


def test_the_factory_configures_retries_and_timeouts(s3) -> None:
    from vehicle_assessment.aws_runtime import factory
    from vehicle_assessment.aws_runtime.config import WorkflowConfig

    config = WorkflowConfig(
        aws_region=REGION,
        table_name="assessments",
        bucket_name=BUCKET,
        client=AwsClientSettings(
            retry_mode="adaptive", max_attempts=5, connect_timeout_s=2, read_timeout_s=9
        ),
    )
    store = factory.build_object_store(config)
    assert isinstance(store, S3ObjectStore) and store.bucket == BUCKET
    config = store.client.meta.config
    assert config.retries == {"mode": "adaptive", "total_max_attempts": 5}
    assert (config.connect_timeout, config.read_timeout) == (2, 9)
    store.put("k", b"v", "text/plain")  # the factory's client works against the (mocked) service
    assert store.get("k") == b"v"
