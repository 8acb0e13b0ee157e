"""Small image files for tests, made in memory."""

from __future__ import annotations

import io
import random
import struct
import zlib
from functools import cache

from PIL import Image, ImageDraw


def png(
    width: int = 64, height: int = 48, color: tuple[int, int, int, int] = (200, 30, 30, 255)
) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (width, height), color).save(out, format="PNG")
    return out.getvalue()


def jpeg(width: int = 320, height: int = 200) -> bytes:
    out = io.BytesIO()
    image = Image.new("RGB", (width, height))
    for x in range(0, width, 8):
        image.paste((x % 255, 80, 160), (x, 0, x + 4, height))
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def truncated_jpeg() -> bytes:
    data = jpeg()
    return data[: len(data) // 2]


def huge_png(width: int = 20_000, height: int = 20_000, bit_depth: int = 1) -> bytes:
    """A valid, all-black grayscale PNG of width x height pixels: tiny on disk, huge when
    decoded."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)  # grayscale
    row = b"\x00" + b"\x00" * ((width * bit_depth + 7) // 8)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )


LARGE_KINDS = ("png_rgba", "png_rgb", "png_palette", "gif", "jpeg")


@cache
def large(kind: str, seed: int, side: int = 5000) -> bytes:
    """A valid ``side`` x ``side`` image (25 megapixels by default) of seeded ellipses: small on
    the wire (under a megabyte), as large as the pixel limit allows once decoded."""
    rng = random.Random(seed)
    mode = {"png_rgba": "RGBA", "png_palette": "P", "gif": "P"}.get(kind, "RGB")
    image = Image.new(mode, (side, side), 0)
    if mode == "P":
        image.putpalette(rng.randbytes(3 * 256))
    draw = ImageDraw.Draw(image)
    for _ in range(60):
        x, y = rng.randrange(side), rng.randrange(side)
        width, height = rng.randrange(side // 20, side // 3), rng.randrange(side // 20, side // 3)
        rgba = (rng.randrange(256), rng.randrange(256), rng.randrange(256), rng.randrange(256))
        colour = {"RGBA": rgba, "RGB": rgba[:3], "P": rgba[0]}[mode]
        draw.ellipse((x, y, x + width, y + height), fill=colour)
    out = io.BytesIO()
    if kind == "jpeg":
        image.save(out, format="JPEG", quality=80)
    elif kind == "gif":
        image.save(out, format="GIF")
    elif kind in LARGE_KINDS:
        image.save(out, format="PNG", compress_level=1)
    else:
        raise ValueError(f"unknown kind {kind}")
    return out.getvalue()
