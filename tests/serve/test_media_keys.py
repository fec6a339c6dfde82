"""Which object keys the local server links: photos of both entry paths, audio and reference copies."""

from __future__ import annotations

import pytest

from vehicle_assessment import pipeline
from vehicle_assessment.domain import upload_keys
from vehicle_assessment.serve.media import MediaRefused, SignedMediaLinks

SECRET = b"s" * 32


@pytest.mark.parametrize(
    "key",
    [
        upload_keys.api_upload_key("a-1", 1),  # posted through the API's upload form
        pipeline.photo_key("a-1", 1, "front.jpg"),  # given to `vehicle-assessment assess` (make demo)
        upload_keys.reference_image_key("ab" * 32),
        "audio/a-1/standard-en-0123456789abcdef.wav",
    ],
)
def test_the_photos_of_both_entry_paths_and_their_media_are_linked(key: str) -> None:
    links = SignedMediaLinks("http://127.0.0.1:8000", SECRET, clock=lambda: 1000.0)
    url = links.link(key, None, 60)
    expires, signature = url.split("?", 1)[1].replace("expires=", "").split("&signature=")
    assert links.verify(key, expires, signature) == key


@pytest.mark.parametrize("key", ["assessments.sqlite3", "photos/../assessments.sqlite3", "other/a.jpg"])
def test_anything_else_is_refused(key: str) -> None:
    with pytest.raises(MediaRefused):
        SignedMediaLinks("http://127.0.0.1:8000", SECRET).link(key, None, 60)
