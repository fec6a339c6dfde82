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

    def head(self, key: str, n_bytes: int, version_id: str | None = None) -> ObjectHead:
        # The version the upload event named: what is checked here is what the workflow will read.
        pinned = {"VersionId": version_id} if version_id is not None else {}
        try:
            response = self.client.get_object(
                Bucket=self.bucket, Key=key, Range=f"bytes=0-{n_bytes - 1}", **pinned
            )
        except Exception as exc:
            code = error_code(exc)
            if code in {"NoSuchKey", "404", "NotFound"} or (
                version_id is not None and code == "NoSuchVersion"
            ):
                raise ObjectNotFound(f"no object at s3://{self.bucket}/{key}") from exc
            if code == "InvalidRange":  # a 0-byte object has no byte 0
                return ObjectHead(b"", {}, 0, version_id)
            raise
        with response["Body"] as body:
            data = body.read()
        # "bytes 0-15/12345": the total after the slash is the object's size now.
        total = response.get("ContentRange", "").rpartition("/")[2]
        return ObjectHead(
            data,
            dict(response.get("Metadata", {})),
            int(total) if total.isdigit() else None,
            # S3 answers "null" for an object written while versioning was off: no version to pin.
            _pinnable(response.get("VersionId")),
        )


def _pinnable(version_id: str | None) -> str | None:
    return None if version_id in (None, "", "null") else version_id
