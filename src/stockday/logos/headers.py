"""What an upload is, learnt before any pixel is decoded.

Its format from the signature of its first bytes, its dimensions from the header (a WebP
canvas read by hand, since Pillow's decoder allocates it as it opens), checked against the pixel
limit; and whatever Pillow raises on hostile data turned into a :class:`RejectedImage`.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Final

from PIL import (
    GifImagePlugin,
    Image,
    ImageFile,
    JpegImagePlugin,
    PngImagePlugin,
    WebPImagePlugin,
)

from stockday.logos.rejections import CorruptImage, NotAnImage, RejectedImage, TooManyPixels

CONTENT_TYPES: Final[dict[str, str]] = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
}

ACCEPTED_FORMATS: Final[frozenset[str]] = frozenset(CONTENT_TYPES)
"""Pillow format names of the images an upload may be."""

_ACCEPTED_LIST = "JPEG, PNG, GIF or WebP"

# Pillow's plugin classes, called directly rather than through Image.open: Image.open checks
# Image.MAX_IMAGE_PIXELS by emitting a DecompressionBombWarning, and turning that warning into
# an error would mean changing the process-wide warning filters. check_pixels enforces the
# same global limit without any warning. Calling JpegImageFile also reads an MPO
# (multi-picture JPEG) as its first picture, which is exactly what a logo wants.
OPENERS: Final[dict[str, Callable[[IO[bytes]], ImageFile.ImageFile]]] = {
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


def sniff_format(data: bytes) -> str:
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
def pillow_errors() -> Iterator[None]:
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


def open_header(fmt: str, data: bytes, max_pixels: int) -> ImageFile.ImageFile:
    """Parse the header of a sniffed image and check its dimensions; no pixel is decoded."""
    if fmt == "WEBP":
        # Creating Pillow's WebP decoder already allocates the whole canvas, so look first.
        canvas = webp_canvas_size(data)
        if canvas is not None:
            check_pixels(canvas, max_pixels)
    with pillow_errors():
        image = OPENERS[fmt](io.BytesIO(data))
    try:
        check_pixels(image.size, max_pixels)
    except RejectedImage:
        image.close()
        raise
    return image


def webp_canvas_size(data: bytes) -> tuple[int, int] | None:
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


def check_pixels(size: tuple[int, int], max_pixels: int) -> None:
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
