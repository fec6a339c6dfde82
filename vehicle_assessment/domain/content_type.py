"""Image type from magic bytes — no imaging library needed, so the upload trigger stays light."""

from __future__ import annotations

# The longest signature checked (WebP: RIFF....WEBP).
SIGNATURE_BYTES = 12


def sniff_content_type(data: bytes) -> str | None:
    """The image content type from the magic bytes, or None if not JPEG, PNG or WebP."""
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if len(data) >= SIGNATURE_BYTES and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None
