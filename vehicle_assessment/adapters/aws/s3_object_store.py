"""ObjectStore on one S3 bucket."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from vehicle_assessment.adapters.aws.errors import error_code
from vehicle_assessment.ports import ObjectNotFound, ObjectTooLarge

# GetObject says NoSuchKey; HeadObject has no body, so only the status ("404"/"NotFound") remains.
# Without s3:ListBucket on the bucket, S3 answers a missing key with 403 AccessDenied instead.
_MISSING = {"NoSuchKey", "404", "NotFound"}
_NO_VERSION = {"NoSuchVersion", "InvalidArgument"}


def _check_key(key: str) -> str:
    # The same rule as the filesystem store, so a key that works locally works here and back.
    if not key or key.startswith("/") or ".." in key.split("/"):
        raise ValueError(f"invalid object key: {key!r}")
    return key


class S3ObjectStore:
    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def put(self, key: str, data: bytes, content_type: str) -> None:
        key = _check_key(key)
        # Encryption at rest is the bucket's default (SSE-S3/KMS), set by the infrastructure.
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def get(self, key: str, version_id: str | None = None, max_bytes: int | None = None) -> bytes:
        """The current object, or the pinned version. A VersionId request needs s3:GetObjectVersion
        (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html#API_GetObject_RequestSyntax)."""
        key = _check_key(key)
        pinned = {"VersionId": version_id} if version_id is not None else {}
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key, **pinned)
        except ClientError as exc:
            # A version id S3 does not know answers NoSuchVersion (or 400 InvalidArgument for one
            # that is malformed): the pinned evidence is gone, which is ObjectNotFound to the caller.
            if error_code(exc) in _MISSING or (version_id is not None and error_code(exc) in _NO_VERSION):
                where = f"s3://{self.bucket}/{key}" + (f" version {version_id}" if version_id else "")
                raise ObjectNotFound(f"no object at {where}") from exc
            raise
        with response["Body"] as body:
            # GetObject answers with the headers first: Content-Length is the size of the body
            # (API_GetObject.html#API_GetObject_ResponseSyntax), known before a byte of it is read.
            # Closing the stream unread drops the connection instead of downloading the rest.
            size = int(response["ContentLength"])
            if max_bytes is not None and size > max_bytes:
                raise ObjectTooLarge(f"s3://{self.bucket}/{key}", size, max_bytes)
            return body.read()

    def exists(self, key: str) -> bool:
        key = _check_key(key)
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) in _MISSING:
                return False
            raise
        return True
