"""Validate uploaded logo images and turn them into small WebP logos.

Pure functions over bytes; all decoding happens in memory with Pillow. Uploads are hostile
input, so every check that can be done from the header happens before any pixel is decoded,
and every failure inside Pillow surfaces as one of the :class:`RejectedImage` subclasses.

Pillow's global state is never changed (``ImageFile.LOAD_TRUNCATED_IMAGES``,
``Image.MAX_IMAGE_PIXELS``, warning filters): several threads of the same process may call
these functions at once, and other code shares the same Pillow.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Final

from PIL import (
    GifImagePlugin,
    Image,
    ImageFile,
    JpegImagePlugin,
    PngImagePlugin,
    WebPImagePlugin,
)

from stockday.logos import geometry
from stockday.logos.colour import to_srgb_8bit

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


class RejectedImage(ValueError):
    """An upload that cannot become a logo; ``str(exc)`` is safe to show to the uploader."""

    status_code: int = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ImageTooLarge(RejectedImage):
    """The file has more bytes than allowed."""

    status_code = 413


class NotAnImage(RejectedImage):
    """The file is not an image, or is an image in a format that is not accepted."""

    status_code = 415


class TooManyPixels(RejectedImage):
    """Width x height is over the limit (this is how decompression bombs are stopped)."""

    status_code = 422


class CorruptImage(RejectedImage):
    """The file claims an accepted format but is truncated or cannot be decoded."""

    status_code = 422


_CONTENT_TYPES: Final[dict[str, str]] = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
}

ACCEPTED_FORMATS: Final[frozenset[str]] = frozenset(_CONTENT_TYPES)
"""Pillow format names of the images an upload may be."""

_ACCEPTED_LIST = "JPEG, PNG, GIF or WebP"

# Pillow's plugin classes, called directly rather than through Image.open: Image.open checks
# Image.MAX_IMAGE_PIXELS by emitting a DecompressionBombWarning, and turning that warning into
# an error would mean changing the process-wide warning filters. Our own pixel check below
# enforces the same global limit without any warning. Calling JpegImageFile also reads an MPO
# (multi-picture JPEG) as its first picture, which is exactly what a logo wants.
_OPENERS: Final[dict[str, Callable[[IO[bytes]], ImageFile.ImageFile]]] = {
    "JPEG": JpegImagePlugin.JpegImageFile,
    "PNG": PngImagePlugin.PngImageFile,
    "GIF": GifImagePlugin.GifImageFile,
    "WEBP": WebPImagePlugin.WebPImageFile,
}

# Signatures of common formats we refuse, only to give the uploader a precise message.
_REFUSED_SIGNATURES: Final[tuple[tuple[bytes, str], ...]] = (
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"\x00\x00\x02\x00", "CUR"),
    (b"%PDF", "PDF"),
    (b"8BPS", "PSD"),
    (b"\xff\x0a", "JPEG XL"),
    (b"\x00\x00\x00\x0cJXL ", "JPEG XL"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
)

# WebP cannot store a side longer than this, so it also bounds the logo size.
_WEBP_MAX_SIDE: Final = 16383
_WEBP_QUALITY: Final = 85
# libwebp method 4 is its default trade-off: method 6 saves a few percent of a logo's few
# kilobytes for about twice the encoding time.
_WEBP_METHOD: Final = 4
# Like Image.thumbnail: decode JPEGs at a reduced scale that still leaves at least twice the
# target size, then let LANCZOS do the final step, so DCT scaling never limits sharpness.
_DRAFT_GAP: Final = 2
# Image.resize first shrinks by an integer factor with a box filter while the image is more
# than this many times the target, then resamples; 3.0 is visually identical to pure LANCZOS.
_REDUCING_GAP: Final = 3.0
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
    return _CONTENT_TYPES.get(name, "application/octet-stream")


def decode_cost(data: bytes, *, max_pixels: int, max_side: int | None = None) -> int:
    """The memory, in bytes, that inspecting (or, given ``max_side``, resizing) ``data`` holds
    at its peak: an estimate from the header alone, for admitting decodes within a budget.

    A file whose header does not parse, or claims more than ``max_pixels``, costs only its own
    size: the checks refuse it before any pixel is decoded, so a bomb never waits its turn.
    """
    try:
        fmt = _sniff_format(data)
    except RejectedImage:
        return len(data)
    if fmt == "WEBP":
        # Never through Pillow here: its WebP decoder allocates the canvas as it opens.
        canvas = _webp_canvas_size(data)
        pixels = 0 if canvas is None else canvas[0] * canvas[1]
        if pixels > max_pixels:
            return len(data)
        return len(data) + pixels * _WEBP_PIXEL_BYTES + _DECODE_OVERHEAD_BYTES
    try:
        with _pillow_errors():
            image = _OPENERS[fmt](io.BytesIO(data))
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
        if all(side // scale >= _DRAFT_GAP * want for side, want in zip(size, target, strict=True)):
            return scale
    return 1


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
    fmt = _sniff_format(data)
    image = _open_header(fmt, data, max_pixels)
    try:
        size = image.size
        with _pillow_errors():
            if fmt == "JPEG":
                # Every byte of the entropy-coded data is still decoded at 1/8 scale, so
                # truncation is detected just the same, for 1/64 of the pixel memory.
                image.draft(None, (1, 1))
            image.load()
        if fmt != "JPEG":
            # A GIF's first frame may be larger than the screen its header announced.
            size = image.size
            _check_pixels(size, max_pixels)
        orientation = geometry.orientation(image)
    finally:
        image.close()
    width, height = size
    if orientation in geometry.SWAPS_SIDES:
        width, height = height, width
    return UploadInfo(
        format=fmt,
        content_type=_CONTENT_TYPES[fmt],
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
    fmt = _sniff_format(data)
    image = _open_header(fmt, data, max_pixels)
    frame: Image.Image | None = None
    try:
        full_size = image.size
        box: tuple[float, float, float, float] | None = None
        with _pillow_errors():
            if fmt == "JPEG":
                target = geometry.fit(full_size, max_side)
                if target != full_size:
                    drafted = image.draft(None, (target[0] * _DRAFT_GAP, target[1] * _DRAFT_GAP))
                    if drafted is not None:
                        # The region of the reduced image that maps onto the original,
                        # without the padding added when a side did not divide evenly.
                        box = drafted[1]
            image.load()
        if box is None:
            full_size = image.size
            _check_pixels(full_size, max_pixels)
        orientation = geometry.orientation(image)
        target = geometry.fit(full_size, max_side)
        with _pillow_errors():
            factors = _reduction_factors(image.size, target) if box is None else (1, 1)
            if factors != (1, 1):
                frame = _reduce_in_strips(image, factors)
                box = (0.0, 0.0, image.width / factors[0], image.height / factors[1])
            else:
                frame = to_srgb_8bit(image)
    finally:
        # The decoded pixels are reused as they are when no conversion was needed: closing
        # would discard them, and an in-memory file holds no OS resource anyway.
        if frame is not image:
            image.close()

    if frame.size != target or box is not None:
        frame = frame.resize(target, Image.Resampling.LANCZOS, box=box, reducing_gap=_REDUCING_GAP)
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
        content_type=_CONTENT_TYPES["WEBP"],
        width=frame.width,
        height=frame.height,
    )


def _reduction_factors(size: tuple[int, int], target: tuple[int, int]) -> tuple[int, int]:
    """The integer box-reduction per axis that Image.resize would apply before resampling."""
    return (
        max(1, int(size[0] / target[0] / _REDUCING_GAP)),
        max(1, int(size[1] / target[1] / _REDUCING_GAP)),
    )


def _reduce_in_strips(image: Image.Image, factors: tuple[int, int]) -> Image.Image:
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


def _sniff_format(data: bytes) -> str:
    """The accepted format named by the file's signature, judged by the first bytes only."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "WEBP"
    if not data:
        raise NotAnImage(f"The file is empty. Upload a {_ACCEPTED_LIST} image.")
    refused = _refused_format(data)
    if refused is not None:
        raise NotAnImage(
            f"{refused} files are not accepted as logos. Upload a {_ACCEPTED_LIST} image."
        )
    raise NotAnImage(f"The file is not a supported image. Upload a {_ACCEPTED_LIST} image.")


def _refused_format(data: bytes) -> str | None:
    for signature, name in _REFUSED_SIGNATURES:
        if data.startswith(signature):
            return name
    if data[4:8] == b"ftyp":
        return "HEIC/AVIF"
    head = data[:1024].lstrip().lower()
    if head.startswith(b"<") and b"<svg" in head:
        return "SVG"
    return None


@contextmanager
def _pillow_errors() -> Iterator[None]:
    """Map whatever Pillow raises on hostile data to a RejectedImage subclass.

    Pillow's decoders report bad data with many exception types (OSError, SyntaxError,
    ValueError, EOFError, struct.error, IndexError...), so everything except our own
    rejections and MemoryError (a server problem, not the uploader's) becomes CorruptImage.
    """
    try:
        yield
    except RejectedImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # The warning arrives as an exception only when the process runs with warnings as
        # errors; either way it is Pillow's own pixel limit.
        raise TooManyPixels(
            "The image has too many pixels to be processed safely. Upload a smaller image."
        ) from exc
    except MemoryError:
        raise
    except Exception as exc:
        raise CorruptImage(
            "The image is damaged or incomplete and cannot be read. Upload it again or "
            "export it anew."
        ) from exc


def _open_header(fmt: str, data: bytes, max_pixels: int) -> ImageFile.ImageFile:
    """Parse the header of a sniffed image and check its dimensions; no pixel is decoded."""
    if fmt == "WEBP":
        # Creating Pillow's WebP decoder already allocates the whole canvas, so look first.
        canvas = _webp_canvas_size(data)
        if canvas is not None:
            _check_pixels(canvas, max_pixels)
    with _pillow_errors():
        image = _OPENERS[fmt](io.BytesIO(data))
    try:
        _check_pixels(image.size, max_pixels)
    except RejectedImage:
        image.close()
        raise
    return image


def _webp_canvas_size(data: bytes) -> tuple[int, int] | None:
    """Canvas size from the first chunk of a WebP file (RFC 9649), or None if unreadable."""
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width = int.from_bytes(data[26:28], "little") & 0x3FFF
        height = int.from_bytes(data[28:30], "little") & 0x3FFF
        return width, height
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise CorruptImage(f"The image claims to be {width} x {height} pixels, which is empty.")
    limit = max_pixels
    # Honour Pillow's own decompression-bomb limit as well, if the application lowered it.
    if Image.MAX_IMAGE_PIXELS is not None:
        limit = min(limit, Image.MAX_IMAGE_PIXELS)
    if width * height > limit:
        raise TooManyPixels(
            f"The image is {width} x {height} pixels ({width * height:,} pixels); "
            f"the limit is {limit:,} pixels. Upload a smaller image."
        )
