"""Local media links: ``/media/{key}?expires=...&signature=...`` URLs the local server signs and checks.

The local stand-in for presigned S3 GETs (``adapters/aws/s3_media_links.py``): an HMAC-SHA256 over the
key and the expiry with a secret only this server process holds, so a link reads one object until it
expires, and a link for another key cannot be made from it. The key grammar is checked before any file
is touched: only the prefixes a page shows (uploads, audio, reference copies), no ``..``, no empty or
hidden segments, no backslashes or control characters.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable
from urllib.parse import quote

from vehicle_assessment.domain.upload_keys import REFERENCE_IMAGE_PREFIX

MEDIA_PATH = "/media/"
# What a page may read: photos as uploaded (through the API, or by the CLI's `assess`), description
# audio, reference display copies.
READABLE_PREFIXES = ("uploads/", "photos/", "audio/", REFERENCE_IMAGE_PREFIX)
_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


class MediaRefused(Exception):
    """A media request the server does not answer: the message says why (never the secret)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def check_media_key(key: str) -> str:
    """The key, if it is one a page may read; raises MediaRefused (404) otherwise."""
    if not key.startswith(READABLE_PREFIXES):
        raise MediaRefused(404, "no such media")
    segments = key.split("/")
    if any(not _SEGMENT.fullmatch(segment) or segment in (".", "..") for segment in segments):
        raise MediaRefused(404, "no such media")
    return key


class SignedMediaLinks:
    """Implements MediaLinks for the local server at ``base_url``."""

    def __init__(self, base_url: str, secret: bytes, clock: Callable[[], float] = time.time) -> None:
        if len(secret) < 32:
            raise ValueError("the media secret must be at least 32 bytes")
        self.base_url = base_url.rstrip("/")
        self._secret = secret
        self._clock = clock

    def _signature(self, key: str, expires: int) -> str:
        message = f"{key}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def link(self, key: str, version_id: str | None, expires_in_s: int) -> str:
        if version_id is not None:
            # The filesystem store keeps one version per key; only S3 names versions.
            raise ValueError(f"the local object store keeps no versions: cannot link {key!r} {version_id!r}")
        expires = int(self._clock()) + expires_in_s
        # Signed as stored; `verify` refuses a key outside the grammar, so such a link reads nothing.
        signature = self._signature(key, expires)
        return f"{self.base_url}{MEDIA_PATH}{quote(key)}?expires={expires}&signature={signature}"

    def verify(self, key: str, expires: str | None, signature: str | None) -> str:
        """The key a request may read; raises MediaRefused (403 bad or expired link, 404 no such key)."""
        check_media_key(key)
        if not expires or not signature or not expires.isdigit():
            raise MediaRefused(403, "the link is not signed: ask the API for the assessment's media")
        if not hmac.compare_digest(signature, self._signature(key, int(expires))):
            raise MediaRefused(403, "the link's signature does not match")
        if int(expires) <= self._clock():
            raise MediaRefused(403, "the link has expired: ask the API for the assessment's media again")
        return key
