"""Image type from magic bytes — no imaging library needed, so the upload trigger stays light."""

from __future__ import annotations

# The longest signature checked (WebP: RIFF....WEBP).
SIGNATURE_BYTES = 12
# Every type sniff_content_type can answer: the photos the upload trigger accepts.
ACCEPTED_IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")
# What all of them start with. An S3 POST policy can only say `eq` or `starts-with`, so this prefix is
# as narrow as the upload form can be; the trigger then holds each photo to ACCEPTED_IMAGE_TYPES.
IMAGE_TYPE_PREFIX = "image/"


def sniff_content_type(data: bytes) -> str | None:
    """The image content type from the magic bytes, or None if not JPEG, PNG or WebP."""
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if len(data) >= SIGNATURE_BYTES and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None
