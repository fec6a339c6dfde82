"""Presigned S3 GETs for the review page: photos (by the version that was counted), audio, and the
reference photos' display copies. The bucket stays private; each URL reads one object for a while.

A presigned URL carries the signer's authority, so the API role may read exactly these prefixes
(``infra/constructs/api.py``). SigV4 query-string URLs last at most 7 days and no longer than the
temporary credentials that signed them ("Sharing objects with presigned URLs",
AmazonS3/latest/userguide/ShareObjectPreSignedURL.html); ours are limits.MEDIA_LINK_EXPIRES_S.
"""

from __future__ import annotations

from typing import Any


class S3MediaLinks:
    """Implements MediaLinks with the API's presigning client (SigV4, the bucket's regional URL)."""

    def __init__(self, presigning_client: Any, bucket: str) -> None:
        self._client = presigning_client
        self._bucket = bucket

    def link(self, key: str, version_id: str | None, expires_in_s: int) -> str:
        params = {"Bucket": self._bucket, "Key": key}
        if version_id is not None:
            # A pinned photo: the upload that was counted, not whatever was put under its key later.
            params["VersionId"] = version_id
        url: str = self._client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in_s)
        return url
