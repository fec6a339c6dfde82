"""Safe photo intake: untrusted bytes in, a normalised RGB image and a quality report out.

Pure: no file or network I/O. The caller keeps (and stores) the original bytes; this module
only reads them. Anything undecodable or unsafe raises `PhotoRejected`; an image that decodes
but is unusable (too small, extreme aspect ratio, blurry, dark) comes back with REJECT checks
in its `QualityReport`, so the caller can record why.
"""

from __future__ import annotations

import io
import re
import struct
import warnings
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vehicle_assessment.domain import figures, limits
from vehicle_assessment.domain.content_type import sniff_content_type
from vehicle_assessment.domain.models import QualityCheck, QualityLevel, QualityReport
from vehicle_assessment.domain.rules import IntakeSettings
from vehicle_assessment.domain.text import one_line

_MIB = 1024 * 1024
# Quality is measured on a copy of bounded size so thresholds mean the same for any camera.
QUALITY_LONG_SIDE = 512
_LAPLACIAN_MIN_SIDE = 3

# content type -> the one Pillow format allowed to decode it (no fallback to other decoders).
_PIL_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}
_LEVEL_ORDER = {QualityLevel.PASS: 0, QualityLevel.WARN: 1, QualityLevel.REJECT: 2}
# Errors Pillow's decoders raise on damaged data.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error, zlib.error)


class PhotoRejected(ValueError):
    """The bytes are not a photo we can safely decode; the message is a one-line reason."""


@dataclass(frozen=True)
class IntakeResult:
    image: Image.Image  # RGB, orientation applied, enhanced if settings.enhance: what is embedded
    original_size: tuple[int, int]  # (width, height) after the EXIF orientation
    source_format: str  # Pillow's format name: JPEG, PNG or WEBP
    source_mode: str  # Pillow's mode as decoded, before conversion to RGB
    quality: QualityReport
    content_type: str


def _one_line(exc: BaseException) -> str:
    return one_line(exc) or type(exc).__name__


def _pixel_limit_message(width: int, height: int, limit: int) -> str:
    return f"image too large: {width}x{height} = {width * height:,} pixels exceeds the {limit:,}-pixel limit"


# Pillow's bomb warning and error: "Image size (100000000 pixels) exceeds limit of 89478485 pixels, ..."
_PILLOW_BOMB = re.compile(r"\((\d+) pixels\) exceeds limit of (\d+) pixels")


def _bomb_rejection(exc: Exception, settings: IntakeSettings) -> PhotoRejected:
    """Pillow's own size guard fired: report our documented limit, not Pillow's internal one.

    Pillow refuses in Image.open, before we see the size, from about 89 Mpx (warning) and
    179 Mpx (error). Its message names its own threshold; the person should read ours.
    """
    match = _PILLOW_BOMB.search(str(exc))
    if match is None:
        return PhotoRejected(f"image too large: it exceeds the {settings.max_pixels:,}-pixel limit")
    pixels, pillow_limit = int(match.group(1)), int(match.group(2))
    if pixels > settings.max_pixels:
        return PhotoRejected(
            f"image too large: {pixels:,} pixels exceeds the {settings.max_pixels:,}-pixel limit"
        )
    # Only when max_pixels is configured above Pillow's guard: then Pillow's is the limit that held.
    return PhotoRejected(
        f"image too large: {pixels:,} pixels exceeds the decoder's {pillow_limit:,}-pixel safety limit "
        f"(the configured limit is {settings.max_pixels:,})"
    )


def _open_checked(data: bytes, content_type: str, settings: IntakeSettings) -> Image.Image:
    """Open lazily (header only), refuse oversized images, then decode the pixels."""
    pil_format = _PIL_FORMATS[content_type]
    # Pillow's own bomb check warns (or raises) inside Image.open; make the warning an error
    # so it can never be ignored. The filter is scoped to this block and one warning category
    # (catch_warnings is process-wide on Python < 3.14; another thread at worst also sees the
    # bomb warning as an error, the safe direction).
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=[pil_format])
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _bomb_rejection(exc, settings) from exc
        except UnidentifiedImageError as exc:
            raise PhotoRejected(
                f"truncated or corrupt image: the {pil_format} header cannot be read"
            ) from exc
        except _DECODE_ERRORS as exc:
            raise PhotoRejected(f"truncated or corrupt image: {_one_line(exc)}") from exc

        width, height = image.size
        if width * height > settings.max_pixels:
            image.close()
            raise PhotoRejected(_pixel_limit_message(width, height, settings.max_pixels))
        try:
            image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            image.close()
            raise _bomb_rejection(exc, settings) from exc
        except _DECODE_ERRORS as exc:
            image.close()
            raise PhotoRejected(f"truncated or corrupt image: {_one_line(exc)}") from exc
    return image


def _to_8bit(values: np.ndarray, mode: str) -> np.ndarray:
    """High-bit-depth grayscale to uint8 by scaling its full range, never by clipping."""
    data = values.astype(np.float64)
    data[~np.isfinite(data)] = 0.0
    low, high = (float(data.min()), float(data.max())) if data.size else (0.0, 0.0)
    if mode.startswith("I;16"):
        full_scale = 65535.0
    elif mode == "F" and low >= 0.0 and high <= 1.0:
        full_scale = 1.0
    elif mode == "F" and low >= 0.0 and high <= 255.0:
        full_scale = 255.0
    elif low >= 0.0 and high <= 65535.0:
        # "I" (and larger floats) from 16-bit sources.
        full_scale = 65535.0
    else:
        # Outside any known range: stretch what is there.
        data = data - low
        full_scale = high - low if high > low else 1.0
    scaled = np.rint(data * (255.0 / full_scale))
    return np.clip(scaled, 0, 255).astype(np.uint8)


def _on_white(image: Image.Image) -> Image.Image:
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any decoded mode to 8-bit RGB; transparency becomes white. An RGB image without transparency
    comes back as it is, not copied: the caller passes one it owns (the image it decoded)."""
    mode = image.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        gray = Image.fromarray(_to_8bit(np.asarray(image), mode), mode="L")
        return gray.convert("RGB")
    if mode in ("RGBa", "La"):  # premultiplied alpha: un-premultiply first
        return _on_white(image.convert("RGBA"))
    if mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        return _on_white(image)
    if mode == "RGB":
        return image
    try:
        return image.convert("RGB")  # 1, L, P, CMYK, YCbCr, ...
    except ValueError as exc:
        raise PhotoRejected(f"unsupported colour mode {mode}: {_one_line(exc)}") from exc


def _check(name: str, level: QualityLevel, value: float, reason: str | None) -> QualityCheck:
    return QualityCheck(
        name=name, level=level, value=value, reason=reason if level != QualityLevel.PASS else None
    )


def _geometry_checks(width: int, height: int, settings: IntakeSettings) -> list[QualityCheck]:
    short, long = min(width, height), max(width, height)
    if short < settings.min_side_reject:
        resolution = _check(
            "resolution",
            QualityLevel.REJECT,
            short,
            f"image too small: shortest side {short} px is below the {settings.min_side_reject} px minimum",
        )
    elif short < settings.min_side_warn:
        resolution = _check(
            "resolution",
            QualityLevel.WARN,
            short,
            f"low resolution: shortest side {short} px is below the recommended {settings.min_side_warn} px",
        )
    else:
        resolution = _check("resolution", QualityLevel.PASS, short, None)

    ratio = long / short
    if ratio > settings.max_aspect_ratio:
        shown, limit = figures.compared(ratio, settings.max_aspect_ratio, places=1)
        aspect = _check(
            "aspect_ratio",
            QualityLevel.REJECT,
            ratio,
            f"extreme aspect ratio: {shown}:1 exceeds the {limit}:1 limit",
        )
    else:
        aspect = _check("aspect_ratio", QualityLevel.PASS, ratio, None)
    return [resolution, aspect]


def quality_gray(image: Image.Image) -> np.ndarray:
    """Luminance (uint8) of a copy whose long side is at most QUALITY_LONG_SIDE."""
    gray = image.convert("L")
    width, height = gray.size
    scale = QUALITY_LONG_SIDE / max(width, height)
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        # BOX (area average) is deterministic and does not alias when shrinking.
        gray = gray.resize(size, Image.Resampling.BOX)
    return np.asarray(gray)


def laplacian_variance(gray: np.ndarray) -> float:
    """Variance of the 4-neighbour 3x3 Laplacian of 8-bit luminance over the valid interior (no padding).

    The Laplacian of 0..255 integers lies in -1020..1020, so int16 holds it exactly: the same values
    the float64 expression gives, at a quarter of the memory traffic. ``var`` then works in float64
    on those exact values, so the result is bit-identical to the float64 computation (a test checks).
    """
    pixels = gray.astype(np.int16)
    laplacian = pixels[:-2, 1:-1] + pixels[2:, 1:-1]
    laplacian += pixels[1:-1, :-2]
    laplacian += pixels[1:-1, 2:]
    laplacian -= 4 * pixels[1:-1, 1:-1]
    return float(laplacian.var())


def _below(value: float, limit: float) -> str:
    """ "39.96 is below 40.0": one decimal unless the comparison needs more to read true."""
    shown, shown_limit = figures.compared(value, limit, places=1)
    return f"{shown} is below {shown_limit}"


def _above(value: float, limit: float) -> str:
    shown, shown_limit = figures.compared(value, limit, places=1)
    return f"{shown} is above {shown_limit}"


def _sharpness_check(sharpness: float, settings: IntakeSettings) -> QualityCheck:
    if sharpness < settings.blur_reject:
        return _check(
            "sharpness",
            QualityLevel.REJECT,
            sharpness,
            "too blurry: sharpness (variance of the Laplacian) "
            f"{_below(sharpness, settings.blur_reject)}, the reject threshold",
        )
    if sharpness < settings.blur_warn:
        return _check(
            "sharpness",
            QualityLevel.WARN,
            sharpness,
            "possibly blurry: sharpness (variance of the Laplacian) "
            f"{_below(sharpness, settings.blur_warn)}, the warning threshold",
        )
    return _check("sharpness", QualityLevel.PASS, sharpness, None)


def _exposure_check(brightness: float, settings: IntakeSettings) -> QualityCheck:
    if brightness < settings.dark_reject:
        level, reason = (
            QualityLevel.REJECT,
            f"too dark: mean luminance {_below(brightness, settings.dark_reject)}",
        )
    elif brightness > settings.bright_reject:
        level, reason = (
            QualityLevel.REJECT,
            f"overexposed: mean luminance {_above(brightness, settings.bright_reject)}",
        )
    elif brightness < settings.dark_warn:
        level, reason = (
            QualityLevel.WARN,
            f"dark: mean luminance {_below(brightness, settings.dark_warn)}",
        )
    elif brightness > settings.bright_warn:
        level, reason = (
            QualityLevel.WARN,
            f"bright: mean luminance {_above(brightness, settings.bright_warn)}",
        )
    else:
        level, reason = QualityLevel.PASS, None
    return _check("exposure", level, brightness, reason)


def assess_quality(image: Image.Image, settings: IntakeSettings) -> QualityReport:
    """Geometry, sharpness and exposure checks of an RGB image; the level is the worst check."""
    width, height = image.size
    checks = _geometry_checks(width, height, settings)
    if width >= _LAPLACIAN_MIN_SIDE and height >= _LAPLACIAN_MIN_SIDE:
        gray = quality_gray(image)
        # An extreme aspect ratio can shrink below 3 px; it is rejected by aspect_ratio anyway.
        if min(gray.shape) >= _LAPLACIAN_MIN_SIDE:
            checks.append(_sharpness_check(laplacian_variance(gray), settings))
        checks.append(_exposure_check(float(gray.mean()), settings))
    level = max((c.level for c in checks), key=_LEVEL_ORDER.__getitem__)
    return QualityReport(level=level, checks=checks)


def too_large_reason(size: int, max_bytes: int) -> str:
    """Why a file of ``size`` bytes is refused: intake's words, also where a size is known unread."""
    shown, limit = figures.compared(size / _MIB, max_bytes / _MIB, places=1)
    return f"file too large: {shown} MB exceeds {limit} MB"


def intake_photo(data: bytes, settings: IntakeSettings) -> IntakeResult:
    """Validate and decode an uploaded photo. Raises PhotoRejected for unsafe/undecodable input.

    Deterministic: the same bytes and settings give a pixel-identical image and the same report.
    """
    size = len(data)
    if size == 0:
        raise PhotoRejected("empty file (0 bytes)")
    if size > settings.max_bytes:
        raise PhotoRejected(too_large_reason(size, settings.max_bytes))
    content_type = sniff_content_type(data)
    if content_type is None:
        raise PhotoRejected("not an image: content is not JPEG, PNG or WebP")

    decoded = _open_checked(data, content_type, settings)
    source_format = decoded.format or _PIL_FORMATS[content_type]
    source_mode = decoded.mode
    try:
        try:
            # Turned in place: the decoded image is ours, and a copy of it cost ~1 ms a photo.
            ImageOps.exif_transpose(decoded, in_place=True)
        except _DECODE_ERRORS as exc:
            raise PhotoRejected(
                f"truncated or corrupt image: unreadable EXIF orientation: {_one_line(exc)}"
            ) from exc
        rgb = _to_rgb(decoded)
    except BaseException:
        decoded.close()
        raise
    if rgb is not decoded:
        decoded.close()  # converted to a new RGB image: release the decoded pixels now

    quality = assess_quality(rgb, settings)
    # Enhance after measuring, so the report describes the photo as taken.
    image = ImageOps.autocontrast(rgb, cutoff=1) if settings.enhance else rgb
    # The encoder sees 224 px; a bounded copy keeps endpoint payloads small, and local mode embeds
    # the very same pixels.
    short = min(image.size)
    if short > settings.embedding_short_side:
        scale = settings.embedding_short_side / short
        target = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(target, Image.Resampling.BICUBIC)
    return IntakeResult(
        image=image,
        original_size=rgb.size,
        source_format=source_format,
        source_mode=source_mode,
        quality=quality,
        content_type=content_type,
    )


# The display copy is for eyes on a review page, not for embedding: JPEG at a quality where artefacts
# are not visible at that size.
DISPLAY_JPEG_QUALITY = 85


def display_copy_jpeg(image: Image.Image, max_side: int = limits.REFERENCE_IMAGE_MAX_SIDE) -> bytes:
    """A reference photo's display copy: JPEG, RGB, longest side at most ``max_side`` (never enlarged).

    ``image`` is an intake result's image (orientation applied), so the copy shows what was judged.
    """
    copy = image.convert("RGB")
    copy.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)  # keeps the aspect ratio
    out = io.BytesIO()
    copy.save(out, format="JPEG", quality=DISPLAY_JPEG_QUALITY, optimize=True)
    return out.getvalue()
