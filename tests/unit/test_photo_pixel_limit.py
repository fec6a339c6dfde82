"""A photo over the pixel limit is refused quoting the documented limit, whatever Pillow raised."""

from __future__ import annotations

import pytest
from PIL import Image
from test_photo_intake import declared_png  # tests/unit is on sys.path (rootdir-relative, no package)

from vehicle_assessment.domain import limits
from vehicle_assessment.domain.photo import PhotoRejected, intake_photo
from vehicle_assessment.domain.rules import IntakeSettings


@pytest.mark.parametrize(
    ("width", "height"),
    [
        (10_000, 6_000),  # 60 Mpx: our own check, below Pillow's guard
        (10_000, 10_000),  # 100 Mpx: Pillow's DecompressionBombWarning (~89 Mpx)
        (30_000, 30_000),  # 900 Mpx: Pillow's DecompressionBombError (~179 Mpx)
    ],
)
def test_message_quotes_the_documented_limit(width: int, height: int) -> None:
    with pytest.raises(PhotoRejected) as caught:
        intake_photo(declared_png(width, height), IntakeSettings())
    message = str(caught.value)
    assert f"{width * height:,} pixels exceeds the {limits.MAX_PHOTO_PIXELS:,}-pixel limit" in message
    assert f"{Image.MAX_IMAGE_PIXELS:,}" not in message and str(Image.MAX_IMAGE_PIXELS) not in message
    assert "decompression bomb" not in message.lower()


def test_a_limit_configured_above_pillows_guard_names_the_guard_that_held() -> None:
    with pytest.raises(PhotoRejected) as caught:
        intake_photo(declared_png(100_000, 1_000), IntakeSettings(max_pixels=200_000_000))
    assert str(caught.value) == (
        f"image too large: 100,000,000 pixels exceeds the decoder's {Image.MAX_IMAGE_PIXELS:,}-pixel "
        "safety limit (the configured limit is 200,000,000)"
    )
