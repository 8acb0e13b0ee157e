"""The memory a logo's decode holds, and how resizing keeps it small.

:func:`decode_cost` estimates a decode's peak from the header alone, so that work is admitted
within a budget; the estimate follows the reductions :func:`stockday.logos.images.resize_logo`
applies, defined here beside it: JPEGs decoded at a reduced scale, and large images converted
and box-reduced a strip at a time, never copied whole.
"""

from __future__ import annotations

import io
from typing import Final

from PIL import Image

from stockday.logos import geometry
from stockday.logos.colour import to_srgb_8bit
from stockday.logos.headers import OPENERS, pillow_errors, sniff_format, webp_canvas_size
from stockday.logos.rejections import RejectedImage

# Like Image.thumbnail: decode JPEGs at a reduced scale that still leaves at least twice the
# target size, then let LANCZOS do the final step, so DCT scaling never limits sharpness.
DRAFT_GAP: Final = 2
# Image.resize first shrinks by an integer factor with a box filter while the image is more
# than this many times the target, then resamples; 3.0 is visually identical to pure LANCZOS.
REDUCING_GAP: Final = 3.0
# A large image is converted and box-reduced a strip of about this many pixels at a time, so
# that besides its decoded pixels only a few megabytes are held, never a second full copy
# (Pillow premultiplies RGBA into a new image before reducing, and converts into one).
_STRIP_PIXELS: Final = 1 << 20
# Bytes per pixel that Pillow holds for a decoded image of each mode (RGB takes four).
_MODE_BYTES: Final[dict[str, int]] = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2}
_FULL_PIXEL_BYTES: Final = 4
# Pillow's WebP decoder holds libwebp's canvases and a copy of the frame besides the image:
# measured at about 15 bytes per pixel.
_WEBP_PIXEL_BYTES: Final = 16
# What a decode holds besides its pixels: the strip buffers above, zlib's and the codec's.
_DECODE_OVERHEAD_BYTES: Final = 8 * 1024 * 1024


def decode_cost(data: bytes, *, max_pixels: int, max_side: int | None = None) -> int:
    """The memory, in bytes, that inspecting (or, given ``max_side``, resizing) ``data`` holds
    at its peak: an estimate from the header alone, for admitting decodes within a budget.

    A file whose header does not parse, or claims more than ``max_pixels``, costs only its own
    size: the checks refuse it before any pixel is decoded, so a bomb never waits its turn.
    """
    try:
        fmt = sniff_format(data)
    except RejectedImage:
        return len(data)
    if fmt == "WEBP":
        # Never through Pillow here: its WebP decoder allocates the canvas as it opens.
        canvas = webp_canvas_size(data)
        pixels = 0 if canvas is None else canvas[0] * canvas[1]
        if pixels > max_pixels:
            return len(data)
        return len(data) + pixels * _WEBP_PIXEL_BYTES + _DECODE_OVERHEAD_BYTES
    try:
        with pillow_errors():
            image = OPENERS[fmt](io.BytesIO(data))
    except RejectedImage:
        return len(data)
    with image:
        width, height = image.size
        mode = image.mode
    if width * height > max_pixels:
        return len(data)
    if fmt == "JPEG":
        # Decoded at a reduced scale: 1/8 to inspect, down to twice the logo to resize.
        scale = 8 if max_side is None else _draft_scale((width, height), max_side)
        pixels = -(-width // scale) * -(-height // scale)
        per_pixel = _FULL_PIXEL_BYTES
    else:
        pixels = width * height
        per_pixel = _MODE_BYTES.get(mode, _FULL_PIXEL_BYTES)
    return len(data) + pixels * per_pixel + _DECODE_OVERHEAD_BYTES


def _draft_scale(size: tuple[int, int], max_side: int) -> int:
    """The largest of libjpeg's scales (1/1 to 1/8) that still leaves twice the logo's size."""
    target = geometry.fit(size, max_side)
    for scale in (8, 4, 2):
        if all(side // scale >= DRAFT_GAP * want for side, want in zip(size, target, strict=True)):
            return scale
    return 1


def reduction_factors(size: tuple[int, int], target: tuple[int, int]) -> tuple[int, int]:
    """The integer box-reduction per axis that Image.resize would apply before resampling."""
    return (
        max(1, int(size[0] / target[0] / REDUCING_GAP)),
        max(1, int(size[1] / target[1] / REDUCING_GAP)),
    )


def reduce_in_strips(image: Image.Image, factors: tuple[int, int]) -> Image.Image:
    """``to_srgb_8bit(image).reduce(factors)``, computed a strip at a time.

    Both steps work pixel by pixel (or block by block, with strips a whole number of blocks
    high), so the result is the same; only the strip's copies are held besides ``image``.
    """
    width, height = image.size
    factor_x, factor_y = factors
    rows = factor_y * max(1, _STRIP_PIXELS // (width * factor_y))
    reduced: Image.Image | None = None
    for top in range(0, height, rows):
        strip = image.crop((0, top, width, min(height, top + rows)))
        small = to_srgb_8bit(strip).reduce(factors)
        if reduced is None:
            size = (-(-width // factor_x), -(-height // factor_y))
            reduced = Image.new(small.mode, size)
        reduced.paste(small, (0, top // factor_y))
    assert reduced is not None  # an image has at least one row
    return reduced
