"""ObjectProbe on one S3 bucket: the magic bytes and metadata of an upload without reading it all."""

from __future__ import annotations

from typing import Any

from vehicle_assessment.adapters.aws.errors import error_code
from vehicle_assessment.ports import ObjectHead, ObjectNotFound


class S3ObjectProbe:
    """A ranged GetObject: the magic bytes and metadata without reading a 15 MB photo."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def head(self, key: str, n_bytes: int) -> ObjectHead:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes=0-{n_bytes - 1}")
        except Exception as exc:
            code = error_code(exc)
            if code in {"NoSuchKey", "404", "NotFound"}:
                raise ObjectNotFound(f"no object at s3://{self.bucket}/{key}") from exc
            if code == "InvalidRange":  # a 0-byte object has no byte 0
                return ObjectHead(b"", {}, 0)
            raise
        with response["Body"] as body:
            data = body.read()
        # "bytes 0-15/12345": the total after the slash is the object's size now.
        total = response.get("ContentRange", "").rpartition("/")[2]
        return ObjectHead(data, dict(response.get("Metadata", {})), int(total) if total.isdigit() else None)
