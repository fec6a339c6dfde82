"""Safe photo intake: rejection of unsafe input, colour-mode normalisation, quality checks."""

from __future__ import annotations

import io
import struct
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vehicle_assessment.domain.content_type import sniff_content_type
from vehicle_assessment.domain.models import QualityLevel, QualityReport
from vehicle_assessment.domain.photo import (
    IntakeResult,
    PhotoRejected,
    _to_rgb,
    intake_photo,
)
from vehicle_assessment.domain.rules import IntakeSettings

PHOTOS = Path(__file__).resolve().parents[1] / "data" / "photos"
REAL_PHOTOS = sorted(PHOTOS.glob("*.jpg"))
DEFAULTS = IntakeSettings()
# Conversion tests compare pixels, so they turn the auto-contrast enhancement off.
PLAIN = IntakeSettings(enhance=False)


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def declared_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height (1-bit gray) but holds almost no data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + png_chunk(b"IEND", b"")
    )


def textured(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """A sharp, mid-grey noisy RGB image that passes every quality check."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(40, 216, size=(size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels, mode="RGB")


def check(report: QualityReport, name: str) -> QualityLevel:
    return next(c.level for c in report.checks if c.name == name)


def pixels(result: IntakeResult) -> np.ndarray:
    return np.asarray(result.image)


# --- real photos ---------------------------------------------------------------------------


@pytest.fixture(params=REAL_PHOTOS, ids=lambda p: p.name)
def real_photo(request: pytest.FixtureRequest) -> Path:
    return request.param


def test_two_real_photos_are_present() -> None:
    assert len(REAL_PHOTOS) == 2


def test_real_photo_is_accepted(real_photo: Path) -> None:
    data = real_photo.read_bytes()
    result = intake_photo(data, DEFAULTS)
    assert result.content_type == "image/jpeg"
    assert result.source_format == "JPEG"
    assert result.image.mode == "RGB"
    # The embedded copy keeps the aspect ratio, shrunk to the configured short side.
    assert min(result.image.size) == min(min(result.original_size), IntakeSettings().embedding_short_side)
    assert result.quality.level in (QualityLevel.PASS, QualityLevel.WARN)
    assert {c.name for c in result.quality.checks} == {"resolution", "aspect_ratio", "sharpness", "exposure"}
    assert real_photo.read_bytes() == data  # the original is never touched


def test_same_bytes_give_identical_pixels(real_photo: Path) -> None:
    data = real_photo.read_bytes()
    first, second = intake_photo(data, DEFAULTS), intake_photo(data, DEFAULTS)
    assert np.array_equal(pixels(first), pixels(second))
    assert first.quality == second.quality


def test_enhance_auto_contrasts_only_the_copy(real_photo: Path) -> None:
    data = real_photo.read_bytes()
    enhanced, plain = intake_photo(data, DEFAULTS), intake_photo(data, PLAIN)
    assert enhanced.quality == plain.quality  # measured before enhancing
    assert not np.array_equal(pixels(enhanced), pixels(plain))


# --- refused input -------------------------------------------------------------------------


def test_zero_bytes_are_rejected() -> None:
    with pytest.raises(PhotoRejected, match="empty"):
        intake_photo(b"", DEFAULTS)


def test_oversized_file_is_rejected_before_decoding() -> None:
    data = b"\xff\xd8\xff" + bytes(int(16.2 * 1024 * 1024) - 3)
    with pytest.raises(PhotoRejected, match=r"file too large: 16\.2 MB exceeds 15\.0 MB"):
        intake_photo(data, DEFAULTS)


def test_text_named_jpg_is_not_an_image(tmp_path: Path) -> None:
    fake = tmp_path / "photo.jpg"
    fake.write_text("this is not a photo\n")
    with pytest.raises(PhotoRejected, match="not an image"):
        intake_photo(fake.read_bytes(), DEFAULTS)


def test_truncated_jpeg_is_rejected() -> None:
    data = REAL_PHOTOS[0].read_bytes()
    with pytest.raises(PhotoRejected, match="truncated"):
        intake_photo(data[: len(data) // 2], DEFAULTS)


def test_png_magic_with_garbage_is_rejected() -> None:
    with pytest.raises(PhotoRejected, match="truncated or corrupt"):
        intake_photo(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10, DEFAULTS)


def test_png_decompression_bomb_is_rejected_without_decoding() -> None:
    bomb = declared_png(30_000, 30_000)  # 900 Mpx declared in ~100 bytes
    assert len(bomb) < 200
    limit_before = Image.MAX_IMAGE_PIXELS
    started = time.perf_counter()
    with pytest.raises(PhotoRejected, match="pixel"):
        intake_photo(bomb, DEFAULTS)
    assert time.perf_counter() - started < 1.0  # refused from the header, nothing allocated
    assert limit_before == Image.MAX_IMAGE_PIXELS


def test_image_over_the_configured_pixel_limit_is_rejected() -> None:
    with pytest.raises(PhotoRejected) as caught:
        intake_photo(declared_png(10_000, 6_000), DEFAULTS)
    assert str(caught.value) == (
        "image too large: 10000x6000 = 60,000,000 pixels exceeds the 50,000,000-pixel limit"
    )


def test_pillow_bomb_warning_becomes_a_rejection() -> None:
    # Above Pillow's own warning threshold (~89 Mpx) and within a raised configured limit.
    settings = IntakeSettings(max_pixels=200_000_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the warning must not escape either
        with pytest.raises(PhotoRejected, match="pixel"):
            intake_photo(declared_png(100_000, 1_000), settings)


def test_declared_size_just_under_the_limit_reaches_the_decoder() -> None:
    # Passes the pixel check, then fails decoding (the data is missing): truncated, not "too large".
    with pytest.raises(PhotoRejected, match="truncated or corrupt"):
        intake_photo(declared_png(5_000, 5_000), DEFAULTS)


# --- sniffing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", None),
        (b"GIF89a\x01\x00\x01\x00", None),
        (b"hello, world", None),
        (b"\xff\xd8", None),
        (b"RIFF", None),
        (b"", None),
    ],
)
def test_sniff_content_type(data: bytes, expected: str | None) -> None:
    assert sniff_content_type(data) == expected


def test_sniff_real_encodings() -> None:
    image = textured((8, 8))
    assert sniff_content_type(encode(image, "JPEG")) == "image/jpeg"
    assert sniff_content_type(encode(image, "PNG")) == "image/png"
    assert sniff_content_type(encode(image, "WEBP")) == "image/webp"


# --- formats and colour modes --------------------------------------------------------------


def test_webp_is_accepted() -> None:
    result = intake_photo(encode(textured((300, 240)), "WEBP", lossless=True), PLAIN)
    assert result.content_type == "image/webp"
    assert result.source_format == "WEBP"
    assert result.image.mode == "RGB"
    assert result.original_size == (300, 240)
    assert result.quality.level == QualityLevel.PASS


def test_cmyk_jpeg_becomes_rgb() -> None:
    cmyk = Image.new("CMYK", (64, 64), (0, 255, 255, 0))  # pure red in CMYK
    result = intake_photo(encode(cmyk, "JPEG", quality=95), PLAIN)
    assert result.source_mode == "CMYK"
    assert result.image.mode == "RGB"
    red, green, blue = (int(v) for v in pixels(result).reshape(-1, 3).mean(axis=0))
    assert red > 200 and green < 50 and blue < 50


def test_16_bit_png_is_scaled_not_clipped() -> None:
    ramp = np.tile(np.linspace(0, 65535, 256).round().astype(np.uint16), (32, 1))
    image = Image.fromarray(ramp)
    assert image.mode == "I;16"
    result = intake_photo(encode(image, "PNG"), PLAIN)
    assert result.source_mode.startswith("I;16")
    out = pixels(result)
    assert result.image.mode == "RGB"
    assert out.max() > 200
    assert not (out == 255).all()
    row = out[0, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255
    assert abs(row[128] - 128) <= 1  # mid-grey stays mid-grey
    assert (np.diff(row) >= 0).all()


@pytest.mark.parametrize("dtype", [">u2", "<u2"])
def test_16_bit_modes_of_either_byte_order(dtype: str) -> None:
    values = np.array([[0, 257, 32896, 65535]], dtype=dtype)
    image = Image.fromarray(values)
    assert image.mode.startswith("I;16")
    assert np.asarray(_to_rgb(image))[0, :, 0].tolist() == [0, 1, 128, 255]


def test_32_bit_integer_mode_holding_16_bit_values() -> None:
    image = Image.fromarray(np.array([[0, 257, 65535]], dtype=np.int32), mode="I")
    assert np.asarray(_to_rgb(image))[0, :, 0].tolist() == [0, 1, 255]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0.0, 0.5, 1.0], [0, 128, 255]),  # 0..1 floats
        ([0.0, 127.0, 255.0], [0, 127, 255]),  # 0..255 floats
        ([-10.0, 0.0, 10.0], [0, 128, 255]),  # unknown range: stretched
    ],
)
def test_float_mode(values: list[float], expected: list[int]) -> None:
    image = Image.fromarray(np.array([values], dtype=np.float32), mode="F")
    assert np.asarray(_to_rgb(image))[0, :, 0].tolist() == expected


def test_transparent_png_is_composited_on_white() -> None:
    rgba = np.zeros((40, 40, 4), dtype=np.uint8)
    rgba[:, 20:] = (0, 0, 255, 255)  # right half opaque blue, left half fully transparent black
    result = intake_photo(encode(Image.fromarray(rgba, mode="RGBA"), "PNG"), PLAIN)
    assert result.source_mode == "RGBA"
    out = pixels(result)
    assert (out[:, :20] == 255).all()
    assert (out[:, 20:] == (0, 0, 255)).all()


def test_grayscale_with_alpha_is_composited_on_white() -> None:
    la = Image.merge("LA", (Image.new("L", (10, 10), 0), Image.new("L", (10, 10), 0)))
    out = pixels(intake_photo(encode(la, "PNG"), PLAIN))
    assert (out == 255).all()


def test_palette_png_becomes_rgb() -> None:
    image = Image.new("P", (32, 32), 1)
    image.putpalette([0, 0, 0, 10, 200, 30] + [0, 0, 0] * 254)
    result = intake_photo(encode(image, "PNG"), PLAIN)
    assert result.source_mode == "P"
    assert (pixels(result) == (10, 200, 30)).all()


def test_palette_png_with_transparency_is_composited_on_white() -> None:
    image = Image.new("P", (32, 32), 0)
    image.putpalette([255, 0, 0, 0, 255, 0] + [0, 0, 0] * 254)
    image.paste(1, (16, 0, 32, 32))
    result = intake_photo(encode(image, "PNG", transparency=0), PLAIN)
    out = pixels(result)
    assert (out[:, :16] == 255).all()
    assert (out[:, 16:] == (0, 255, 0)).all()


def test_grayscale_and_bilevel_become_rgb() -> None:
    for image in (Image.new("L", (16, 16), 90), Image.new("1", (16, 16), 1)):
        result = intake_photo(encode(image, "PNG"), PLAIN)
        assert result.image.mode == "RGB"
        assert len(np.unique(pixels(result))) == 1


def test_exif_orientation_is_applied() -> None:
    image = Image.new("RGB", (40, 20), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    result = intake_photo(encode(image, "JPEG", exif=exif.tobytes()), PLAIN)
    assert result.original_size == (20, 40)
    assert result.image.size == (20, 40)


# --- quality report ------------------------------------------------------------------------


def test_one_pixel_image_is_a_resolution_reject_only() -> None:
    result = intake_photo(encode(Image.new("RGB", (1, 1), (120, 120, 120)), "PNG"), PLAIN)
    report = result.quality
    assert report.level == QualityLevel.REJECT
    assert check(report, "resolution") == QualityLevel.REJECT
    assert {c.name for c in report.checks} == {"resolution", "aspect_ratio"}
    assert any("1 px" in reason and "64 px" in reason for reason in report.reasons)


def test_extreme_aspect_ratio_is_rejected() -> None:
    # 400 kpx decodes fine; the shape is what is unusable.
    result = intake_photo(encode(Image.new("L", (40_000, 10), 128), "PNG"), PLAIN)
    assert result.original_size == (40_000, 10)
    assert check(result.quality, "aspect_ratio") == QualityLevel.REJECT
    assert result.quality.level == QualityLevel.REJECT
    assert any("4000.0:1" in reason for reason in result.quality.reasons)


def test_low_resolution_warns() -> None:
    result = intake_photo(encode(textured((200, 150)), "PNG"), PLAIN)
    assert check(result.quality, "resolution") == QualityLevel.WARN
    assert result.quality.level == QualityLevel.WARN


def test_uniform_gray_image_is_blurry() -> None:
    result = intake_photo(encode(Image.new("RGB", (400, 300), (128, 128, 128)), "PNG"), PLAIN)
    sharpness = next(c for c in result.quality.checks if c.name == "sharpness")
    assert sharpness.level == QualityLevel.REJECT
    assert sharpness.value == 0.0
    assert (
        sharpness.reason is not None
        and "0.0" in sharpness.reason
        and f"{PLAIN.blur_reject:g}" in sharpness.reason
    )
    assert check(result.quality, "exposure") == QualityLevel.PASS
    assert result.quality.level == QualityLevel.REJECT


def test_black_image_is_too_dark() -> None:
    result = intake_photo(encode(Image.new("RGB", (400, 300)), "JPEG"), PLAIN)
    exposure = next(c for c in result.quality.checks if c.name == "exposure")
    assert exposure.level == QualityLevel.REJECT
    assert exposure.reason is not None and "dark" in exposure.reason and "15" in exposure.reason


def test_white_image_is_overexposed() -> None:
    result = intake_photo(encode(Image.new("RGB", (400, 300), (255, 255, 255)), "PNG"), PLAIN)
    assert check(result.quality, "exposure") == QualityLevel.REJECT


def test_sharp_well_exposed_image_passes_with_no_reasons() -> None:
    result = intake_photo(encode(textured((640, 480)), "PNG"), DEFAULTS)
    assert result.quality.level == QualityLevel.PASS
    assert result.quality.reasons == []
    assert all(c.reason is None for c in result.quality.checks)


def test_large_image_is_measured_on_a_bounded_copy() -> None:
    # Same content, two sizes: the measured copy is at most 512 px, so the checks agree.
    small = textured((256, 192), seed=3)
    large = small.resize((2048, 1536), Image.Resampling.NEAREST)
    small_report = intake_photo(encode(small, "PNG"), PLAIN).quality
    large_report = intake_photo(encode(large, "PNG"), PLAIN).quality
    assert check(large_report, "sharpness") == check(small_report, "sharpness") == QualityLevel.PASS
    large_exposure = next(c.value for c in large_report.checks if c.name == "exposure")
    small_exposure = next(c.value for c in small_report.checks if c.name == "exposure")
    assert large_exposure == pytest.approx(small_exposure, abs=0.5)


# --- the display copy of a reference photo ----------------------------------------------------


@pytest.mark.parametrize(
    ("size", "expected"), [((2000, 1000), (512, 256)), ((300, 900), (171, 512)), ((64, 48), (64, 48))]
)
def test_display_copy_is_a_jpeg_no_larger_than_the_limit(
    size: tuple[int, int], expected: tuple[int, int]
) -> None:
    from vehicle_assessment.domain import limits
    from vehicle_assessment.domain.photo import display_copy_jpeg

    data = display_copy_jpeg(Image.new("RGBA", size, (10, 200, 30, 255)))

    with Image.open(io.BytesIO(data)) as copy:
        assert copy.format == "JPEG" and copy.mode == "RGB"
        assert copy.size == expected and max(copy.size) <= limits.REFERENCE_IMAGE_MAX_SIDE


def test_laplacian_variance_is_bit_identical_to_the_float64_expression() -> None:
    # Computed in int16 for speed: the value (and so every sharpness verdict) must not move by one ulp.
    from vehicle_assessment.domain.photo import laplacian_variance, quality_gray

    def float64_expression(gray: np.ndarray) -> float:
        values = gray.astype(np.float64)
        centre = values[1:-1, 1:-1]
        return float(
            (values[:-2, 1:-1] + values[2:, 1:-1] + values[1:-1, :-2] + values[1:-1, 2:] - 4.0 * centre).var()
        )

    rng = np.random.default_rng(3)
    grays = [
        rng.integers(0, 256, shape, dtype=np.uint8) for shape in ((3, 3), (7, 512), (351, 512), (512, 512))
    ]
    # The extremes: the Laplacian's full range, -1020..1020, must not wrap.
    grays.append(np.indices((64, 64)).sum(axis=0).astype(np.uint8) % 2 * np.uint8(255))
    grays += [quality_gray(Image.open(path).convert("RGB")) for path in REAL_PHOTOS]
    for gray in grays:
        assert gray.dtype == np.uint8
        assert laplacian_variance(gray) == float64_expression(gray)


def test_an_rgb_photo_is_never_copied(monkeypatch: pytest.MonkeyPatch) -> None:
    # The decoded image is turned in place and used as it is: each copy cost ~1 ms a photo.
    copies: list[str] = []
    real_copy = Image.Image.copy

    def counting_copy(self: Image.Image) -> Image.Image:
        copies.append(self.mode)
        return real_copy(self)

    data = encode(Image.new("RGB", (440, 330), (90, 120, 150)), "JPEG")  # not shrunk: under 448 px
    expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    monkeypatch.setattr(Image.Image, "copy", counting_copy)
    result = intake_photo(data, PLAIN)
    assert copies == []
    assert np.array_equal(np.asarray(result.image), expected)
