"""Presigned S3 POST forms for photo uploads: what a browser or app posts straight to the bucket.

S3 checks every condition of the signed policy against the posted form (AWS docs, "POST Policy",
AmazonS3/latest/API/sigv4-HTTPPOSTConstructPolicy.html): each form field except ``policy``,
``x-amz-signature``, ``file`` and ``x-ignore-*`` must be named by a condition, and each condition must
hold. So the form is built to be satisfiable: the returned fields plus ``Content-Type`` (chosen by the
client, the one field the server cannot know) plus ``file``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vehicle_assessment.domain.content_type import IMAGE_TYPE_PREFIX

# The form field the client adds itself; named in the policy with a starts-with condition.
CONTENT_TYPE_FIELD = "Content-Type"


@dataclass(frozen=True)
class UploadForm:
    url: str
    fields: dict[str, str]


def presigned_upload_form(
    presigning_client: Any, bucket: str, key: str, max_bytes: int, expires_in_s: int
) -> UploadForm:
    """A form that uploads exactly ``key`` into ``bucket``: 1..max_bytes of a client-declared image/* type.

    ``presigning_client`` must come from ``clients.make_s3_presigning_client`` (SigV4, regional URL).
    The policy language has only ``eq`` and ``starts-with``, so the content type is held to the prefix
    all accepted types share; the upload trigger then holds the bytes to JPEG, PNG or WebP.
    """
    post = presigning_client.generate_presigned_post(
        Bucket=bucket,
        Key=key,  # botocore adds {"key": key} and {"bucket": bucket}: the client cannot pick another
        Conditions=[
            ["content-length-range", 1, max_bytes],
            ["starts-with", f"${CONTENT_TYPE_FIELD}", IMAGE_TYPE_PREFIX],
        ],
        ExpiresIn=expires_in_s,
    )
    return UploadForm(url=str(post["url"]), fields={str(k): str(v) for k, v in post["fields"].items()})
