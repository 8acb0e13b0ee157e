"""Validate uploaded logo images and turn them into small WebP logos.

Pure functions over bytes; all decoding happens in memory with Pillow. Uploads are hostile
input, so every check that can be done from the header happens before any pixel is decoded,
and every failure inside Pillow surfaces as one of the :class:`RejectedImage` subclasses.

Pillow's global state is never changed (``ImageFile.LOAD_TRUNCATED_IMAGES``,
``Image.MAX_IMAGE_PIXELS``, warning filters): several threads of the same process may call
these functions at once, and other code shares the same Pillow.

This module is the entry point and names everything callers need: the header checks live in
:mod:`stockday.logos.headers`, the rejections in :mod:`stockday.logos.rejections`, the decode
cost and the strip-wise reduction in :mod:`stockday.logos.memory`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Final

from PIL import Image

from stockday.logos import geometry
from stockday.logos.colour import to_srgb_8bit
from stockday.logos.headers import (
    ACCEPTED_FORMATS,
    CONTENT_TYPES,
    check_pixels,
    open_header,
    pillow_errors,
    sniff_format,
)
from stockday.logos.memory import (
    DRAFT_GAP,
    REDUCING_GAP,
    decode_cost,
    reduce_in_strips,
    reduction_factors,
)
from stockday.logos.rejections import (
    CorruptImage,
    ImageTooLarge,
    NotAnImage,
    RejectedImage,
    TooManyPixels,
)

__all__ = [
    "ACCEPTED_FORMATS",
    "CorruptImage",
    "ImageTooLarge",
    "NotAnImage",
    "RejectedImage",
    "ResizedLogo",
    "TooManyPixels",
    "UploadInfo",
    "decode_cost",
    "guess_content_type",
    "inspect_upload",
    "resize_logo",
]


# WebP cannot store a side longer than this, so it also bounds the logo size.
_WEBP_MAX_SIDE: Final = 16383
_WEBP_QUALITY: Final = 85
# libwebp method 4 is its default trade-off: method 6 saves a few percent of a logo's few
# kilobytes for about twice the encoding time.
_WEBP_METHOD: Final = 4


@dataclass(frozen=True, slots=True)
class UploadInfo:
    """What an accepted upload is; width and height are as displayed (after EXIF rotation)."""

    format: str
    content_type: str
    width: int
    height: int
    size: int


@dataclass(frozen=True, slots=True)
class ResizedLogo:
    """An encoded logo (WebP bytes) and its pixel size."""

    data: bytes
    content_type: str
    width: int
    height: int


def guess_content_type(format: str) -> str:
    """The MIME type of a Pillow format name (``"JPEG"`` -> ``"image/jpeg"``).

    Formats other than the accepted ones give ``application/octet-stream``.
    """
    name = format.strip().upper()
    if name == "JPG":
        name = "JPEG"
    return CONTENT_TYPES.get(name, "application/octet-stream")


def inspect_upload(data: bytes, *, max_bytes: int, max_pixels: int) -> UploadInfo:
    """Check an upload and describe it, or raise a :class:`RejectedImage` subclass.

    Order matters for cost: byte count, then the format signature, then the dimensions from
    the header, and only then one full decode (which catches truncated files).
    """
    _require_positive(max_bytes=max_bytes, max_pixels=max_pixels)
    if len(data) > max_bytes:
        raise ImageTooLarge(
            f"The file is {_describe_bytes(len(data))}; the limit is {_describe_bytes(max_bytes)}."
        )
    fmt = sniff_format(data)
    image = open_header(fmt, data, max_pixels)
    try:
        size = image.size
        with pillow_errors():
            if fmt == "JPEG":
                # Every byte of the entropy-coded data is still decoded at 1/8 scale, so
                # truncation is detected just the same, for 1/64 of the pixel memory.
                image.draft(None, (1, 1))
            image.load()
        if fmt != "JPEG":
            # A GIF's first frame may be larger than the screen its header announced.
            size = image.size
            check_pixels(size, max_pixels)
        orientation = geometry.orientation(image)
    finally:
        image.close()
    width, height = size
    if orientation in geometry.SWAPS_SIDES:
        width, height = height, width
    return UploadInfo(
        format=fmt,
        content_type=CONTENT_TYPES[fmt],
        width=width,
        height=height,
        size=len(data),
    )


def resize_logo(data: bytes, *, max_side: int, max_pixels: int) -> ResizedLogo:
    """Turn an upload into a WebP logo whose longest side is at most ``max_side``.

    Validates like :func:`inspect_upload` (except for the byte count), applies the EXIF
    orientation, keeps transparency, converts embedded colour profiles to sRGB, never
    upscales, and writes no metadata. The same input always gives the same bytes.
    """
    _require_positive(max_side=max_side, max_pixels=max_pixels)
    max_side = min(max_side, _WEBP_MAX_SIDE)
    fmt = sniff_format(data)
    image = open_header(fmt, data, max_pixels)
    frame: Image.Image | None = None
    try:
        full_size = image.size
        box: tuple[float, float, float, float] | None = None
        with pillow_errors():
            if fmt == "JPEG":
                target = geometry.fit(full_size, max_side)
                if target != full_size:
                    drafted = image.draft(None, (target[0] * DRAFT_GAP, target[1] * DRAFT_GAP))
                    if drafted is not None:
                        # The region of the reduced image that maps onto the original,
                        # without the padding added when a side did not divide evenly.
                        box = drafted[1]
            image.load()
        if box is None:
            full_size = image.size
            check_pixels(full_size, max_pixels)
        orientation = geometry.orientation(image)
        target = geometry.fit(full_size, max_side)
        with pillow_errors():
            factors = reduction_factors(image.size, target) if box is None else (1, 1)
            if factors != (1, 1):
                frame = reduce_in_strips(image, factors)
                box = (0.0, 0.0, image.width / factors[0], image.height / factors[1])
            else:
                frame = to_srgb_8bit(image)
    finally:
        # The decoded pixels are reused as they are when no conversion was needed: closing
        # would discard them, and an in-memory file holds no OS resource anyway.
        if frame is not image:
            image.close()

    if frame.size != target or box is not None:
        frame = frame.resize(target, Image.Resampling.LANCZOS, box=box, reducing_gap=REDUCING_GAP)
    transpose = geometry.ORIENTATION_TRANSPOSE.get(orientation)
    if transpose is not None:
        frame = frame.transpose(transpose)
    # Nothing from the upload's metadata may reach the output; the WebP writer only takes
    # metadata from keyword arguments, and clearing info guards against that ever changing.
    frame.info.clear()
    out = io.BytesIO()
    frame.save(out, format="WEBP", quality=_WEBP_QUALITY, method=_WEBP_METHOD)
    return ResizedLogo(
        data=out.getvalue(),
        content_type=CONTENT_TYPES["WEBP"],
        width=frame.width,
        height=frame.height,
    )


def _require_positive(**limits: int) -> None:
    # Caller bugs, not bad uploads: plain ValueError, never a RejectedImage.
    for name, value in limits.items():
        if value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value}")


def _describe_bytes(count: int) -> str:
    if count < 1024:
        return f"{count} bytes"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} KiB"
    return f"{count / (1024 * 1024):.1f} MiB"
