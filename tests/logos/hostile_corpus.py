"""A corpus of good, odd and hostile uploads, built in memory at test time.

Each case says what ``inspect_upload`` must make of it with the limits below: accepted (with
the displayed size and whether the logo keeps an alpha channel) or the exact rejection.
Builders are cached: a few cases (the real decompression bombs) take a moment to compress.
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from PIL import ExifTags, Image, ImageCms

from stockday.logos.images import CorruptImage, NotAnImage, RejectedImage, TooManyPixels
from tests.support.images import huge_png

MAX_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 25_000_000
MAX_SIDE = 256

RED = (220, 30, 30)
BLUE = (30, 60, 220)


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    # None: accepted. Otherwise the exact exception class inspect_upload must raise.
    rejected: type[RejectedImage] | None = None
    format: str | None = None
    # As displayed, after EXIF orientation.
    size: tuple[int, int] | None = None
    # Whether the resized logo must be RGBA.
    alpha: bool = False
    # Corner ("tl", "tr", "bl", "br") where the red quadrant must show after orientation.
    red_corner: str | None = None
    # The source's left half is fully transparent and its right half opaque.
    transparent_left_half: bool = False


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **params)
    return out.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_ihdr(width: int, height: int, bit_depth: int, colour_type: int) -> bytes:
    return png_chunk(
        b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    )


def noise_rgb(width: int, height: int, seed: int = 7) -> Image.Image:
    """Photo-like content (smooth noise), so encoders produce realistic amounts of data."""
    rng = random.Random(seed)
    small = Image.frombytes("RGB", (16, 12), rng.randbytes(16 * 12 * 3))
    return small.resize((width, height), Image.Resampling.BICUBIC)


def quadrants(width: int = 100, height: int = 50) -> Image.Image:
    """Blue image with a red top-left quadrant, to tell orientations apart."""
    image = Image.new("RGB", (width, height), BLUE)
    image.paste(RED, (0, 0, width // 2, height // 2))
    return image


def exif_bytes(orientation: int | None = None, *, gps: bool = False) -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Hostile Camera Co."
    if orientation is not None:
        exif[ExifTags.Base.Orientation] = orientation
    if gps:
        gps_ifd = exif.get_ifd(ExifTags.IFD.GPSInfo)
        gps_ifd[ExifTags.GPS.GPSLatitudeRef] = "N"
        gps_ifd[ExifTags.GPS.GPSLatitude] = (52.0, 22.0, 12.5)
        gps_ifd[ExifTags.GPS.GPSLongitudeRef] = "E"
        gps_ifd[ExifTags.GPS.GPSLongitude] = (4.0, 53.0, 41.0)
    return exif.tobytes()


def srgb_icc() -> bytes:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    data = profile.tobytes()
    assert isinstance(data, bytes)
    return data


XMP = (
    b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" dc:creator="secret"/>'
    b"</rdf:RDF></x:xmpmeta>"
)


# --- builders ------------------------------------------------------------------------------


def _text() -> Case:
    return Case("text", b"Hello, this is a plain text file.\n" * 20, NotAnImage)


def _empty() -> Case:
    return Case("empty", b"", NotAnImage)


def _random_bytes() -> Case:
    data = random.Random(1234).randbytes(4096)
    return Case("random_bytes", data, NotAnImage)


def _svg() -> Case:
    svg = (
        b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="100" '
        b'height="100"><circle cx="50" cy="50" r="40" fill="red"/></svg>\n'
    )
    return Case("svg", svg, NotAnImage)


def _pdf() -> Case:
    return Case("pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n", NotAnImage)


def _bmp() -> Case:
    return Case("bmp", encode(noise_rgb(64, 48), "BMP"), NotAnImage)


def _tiff() -> Case:
    return Case("tiff", encode(noise_rgb(64, 48), "TIFF"), NotAnImage)


def _ico() -> Case:
    return Case("ico", encode(noise_rgb(32, 32), "ICO"), NotAnImage)


def _jpeg() -> Case:
    data = encode(noise_rgb(320, 240), "JPEG", quality=85)
    return Case("jpeg", data, format="JPEG", size=(320, 240))


def _truncated_jpeg() -> Case:
    data = encode(noise_rgb(640, 480), "JPEG", quality=90)
    return Case("truncated_jpeg", data[: len(data) // 2], CorruptImage)


def _truncated_png() -> Case:
    data = encode(noise_rgb(640, 480), "PNG")
    return Case("truncated_png", data[: len(data) // 2], CorruptImage)


def _png_garbage_idat() -> Case:
    data = (
        PNG_SIGNATURE
        + png_ihdr(64, 64, 8, 2)
        + png_chunk(b"IDAT", b"this is not zlib data at all" * 4)
        + png_chunk(b"IEND", b"")
    )
    return Case("png_garbage_idat", data, CorruptImage)


def _png_no_idat() -> Case:
    data = PNG_SIGNATURE + png_ihdr(64, 64, 8, 2) + png_chunk(b"IEND", b"")
    return Case("png_no_idat", data, CorruptImage)


def _png_20k_header() -> Case:
    """Claims 20,000 x 20,000 RGBA (1.6 GB decoded) with the data for only one row."""
    row = b"\x00" + bytes(4 * 20_000)
    data = (
        PNG_SIGNATURE
        + png_ihdr(20_000, 20_000, 8, 6)
        + png_chunk(b"IDAT", zlib.compress(row, 9))
        + png_chunk(b"IEND", b"")
    )
    return Case("png_20k_header", data, TooManyPixels)


def _png_bomb() -> Case:
    """A complete, valid 20,000 x 20,000 1-bit PNG: about 50 KB that inflate to 50 MB."""
    return Case("png_bomb", huge_png(20_000, 20_000), TooManyPixels)


def _png_just_over_limit() -> Case:
    """Within Pillow's own limit but over ours: 5,001 x 5,000, all zeros, about 25 KB."""
    return Case("png_just_over_limit", huge_png(5_001, 5_000, bit_depth=8), TooManyPixels)


def _png_ztxt_bomb() -> Case:
    """A small image with a compressed text chunk that inflates to 16 MB."""
    compressor = zlib.compressobj(9)
    block = b"A" * 65536
    text = b"".join(compressor.compress(block) for _ in range(256)) + compressor.flush()
    data = (
        PNG_SIGNATURE
        + png_ihdr(8, 8, 8, 0)
        + png_chunk(b"zTXt", b"Comment\x00\x00" + text)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 9 * 8))
        + png_chunk(b"IEND", b"")
    )
    return Case("png_ztxt_bomb", data, CorruptImage)


def _gif_huge_header() -> Case:
    """GIF header and first image descriptor claiming 65,535 x 65,535."""
    side = 65_535
    data = (
        b"GIF89a"
        + struct.pack("<HHBBB", side, side, 0x80, 0, 0)
        + b"\x00\x00\x00\xff\xff\xff"
        + b","
        + struct.pack("<HHHHB", 0, 0, side, side, 0)
        + b"\x02\x02\x4c\x01\x00"
        + b";"
    )
    return Case("gif_huge_header", data, TooManyPixels)


def _webp_huge_header() -> Case:
    """WebP extended header claiming a 16,384 x 16,384 canvas, and nothing else."""
    vp8x = b"\x10\x00\x00\x00" + (16_383).to_bytes(3, "little") * 2
    body = b"WEBP" + b"VP8X" + struct.pack("<I", len(vp8x)) + vp8x
    data = b"RIFF" + struct.pack("<I", len(body)) + body
    return Case("webp_huge_header", data, TooManyPixels)


def _jpeg_cmyk() -> Case:
    data = encode(noise_rgb(200, 100).convert("CMYK"), "JPEG", quality=90)
    return Case("jpeg_cmyk", data, format="JPEG", size=(200, 100))


def _jpeg_progressive() -> Case:
    data = encode(noise_rgb(600, 400), "JPEG", quality=85, progressive=True)
    return Case("jpeg_progressive", data, format="JPEG", size=(600, 400))


def _jpeg_gray() -> Case:
    data = encode(noise_rgb(300, 300).convert("L"), "JPEG")
    return Case("jpeg_gray", data, format="JPEG", size=(300, 300))


def _jpeg_big() -> Case:
    data = encode(noise_rgb(4000, 3000), "JPEG", quality=90)
    return Case("jpeg_4000x3000", data, format="JPEG", size=(4000, 3000))


def _jpeg_orientation(orientation: int) -> Callable[[], Case]:
    displayed = {3: (100, 50), 6: (50, 100), 8: (50, 100)}[orientation]
    corner = {3: "br", 6: "tr", 8: "bl"}[orientation]

    def build() -> Case:
        data = encode(quadrants(), "JPEG", quality=95, exif=exif_bytes(orientation))
        return Case(
            f"jpeg_orientation_{orientation}",
            data,
            format="JPEG",
            size=displayed,
            red_corner=corner,
        )

    return build


def _png_orientation_6() -> Case:
    data = encode(quadrants(), "PNG", exif=exif_bytes(6))
    return Case("png_orientation_6", data, format="PNG", size=(50, 100), red_corner="tr")


def _jpeg_bad_exif() -> Case:
    """An APP1 segment that says Exif but holds garbage: the image is still fine."""
    good = encode(quadrants(), "JPEG", quality=95)
    payload = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff" + b"\xde\xad\xbe\xef" * 8
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    data = good[:2] + app1 + good[2:]
    return Case("jpeg_bad_exif", data, format="JPEG", size=(100, 50), red_corner="tl")


def _jpeg_metadata() -> Case:
    data = encode(
        noise_rgb(400, 300),
        "JPEG",
        quality=90,
        exif=exif_bytes(gps=True),
        icc_profile=srgb_icc(),
        xmp=XMP,
    )
    return Case("jpeg_metadata", data, format="JPEG", size=(400, 300))


def _jpeg_garbage_icc() -> Case:
    """An embedded ICC profile LittleCMS cannot parse: dropped, the image still works."""
    data = encode(quadrants(), "JPEG", quality=95, icc_profile=b"not an ICC profile" * 10)
    return Case("jpeg_garbage_icc", data, format="JPEG", size=(100, 50), red_corner="tl")


def _png_rgba() -> Case:
    image = noise_rgb(120, 80).convert("RGBA")
    image.paste((0, 0, 0, 0), (0, 0, 60, 80))
    data = encode(image, "PNG")
    return Case(
        "png_rgba", data, format="PNG", size=(120, 80), alpha=True, transparent_left_half=True
    )


def _png_la() -> Case:
    image = noise_rgb(90, 90).convert("LA")
    image.paste((0, 0), (0, 0, 45, 90))
    data = encode(image, "PNG")
    return Case("png_la", data, format="PNG", size=(90, 90), alpha=True, transparent_left_half=True)


def _png_gray() -> Case:
    return Case(
        "png_gray", encode(noise_rgb(64, 64).convert("L"), "PNG"), format="PNG", size=(64, 64)
    )


def _png_1bit() -> Case:
    return Case(
        "png_1bit", encode(noise_rgb(64, 32).convert("1"), "PNG"), format="PNG", size=(64, 32)
    )


def _png_16bit() -> Case:
    """16-bit grayscale (mode I;16), a full-range gradient."""
    width, height = 256, 16
    image = Image.new("I;16", (width, height))
    row = [x * 257 for x in range(width)]
    image.putdata(row * height)
    return Case("png_16bit", encode(image, "PNG"), format="PNG", size=(width, height))


def _png_16bit_transparency_key() -> Case:
    # Left half is the transparency key, right half opaque mid-gray (built from raw
    # little-endian samples: pasting an int into an I;16 image does not store it as is).
    row = struct.pack("<32H", *[1234] * 32) + struct.pack("<32H", *[40_000] * 32)
    image = Image.frombytes("I;16", (64, 64), row * 64)
    return _left_half_keyed_png("png_16bit_trns", image, 1234)


def _left_half_keyed_png(name: str, image: Image.Image, key: int | tuple[int, int, int]) -> Case:
    """A PNG whose transparency key ``key`` is the colour of its left half (made transparent)."""
    data = encode(image, "PNG", transparency=key)
    return Case(name, data, format="PNG", size=image.size, alpha=True, transparent_left_half=True)


def indexed(width: int, height: int, colours: int) -> Image.Image:
    """A P image whose right half uses indices 1..colours-1; index 0 fills the left half."""
    gray = noise_rgb(width, height).convert("L").point(lambda v: 1 + v * (colours - 2) // 255)
    image = Image.frombytes("P", (width, height), gray.tobytes())
    rng = random.Random(99)
    image.putpalette(bytes(3) + rng.randbytes(3 * (colours - 1)))
    image.paste(0, (0, 0, width // 2, height))
    return image


def _png_palette_transparency() -> Case:
    return _left_half_keyed_png("png_palette_trns", indexed(100, 60, 16), 0)


def _png_rgb_transparency_key() -> Case:
    image = noise_rgb(80, 80)
    image.paste((1, 2, 3), (0, 0, 40, 80))
    return _left_half_keyed_png("png_rgb_trns", image, (1, 2, 3))


def _png_tiny() -> Case:
    return Case("png_1x1", encode(Image.new("RGB", (1, 1), RED), "PNG"), format="PNG", size=(1, 1))


def _png_wide() -> Case:
    data = encode(noise_rgb(10_000, 1), "PNG")
    return Case("png_10000x1", data, format="PNG", size=(10_000, 1))


def _png_tall() -> Case:
    data = encode(noise_rgb(1, 10_000), "PNG")
    return Case("png_1x10000", data, format="PNG", size=(1, 10_000))


def _png_small() -> Case:
    """Smaller than the logo size: must not be upscaled."""
    return Case("png_40x20", encode(noise_rgb(40, 20), "PNG"), format="PNG", size=(40, 20))


def _gif_animated() -> Case:
    frames = [Image.new("P", (60, 40), 0) for _ in range(3)]
    palette = [*RED, *BLUE, 30, 200, 30] + [0] * (256 * 3 - 9)
    for index, frame in enumerate(frames):
        frame.putpalette(palette)
        frame.paste(index, (0, 0, 60, 40))
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return Case("gif_animated", data, format="GIF", size=(60, 40))


def _gif_transparent() -> Case:
    data = encode(indexed(50, 50, 8), "GIF", transparency=0)
    return Case(
        "gif_transparent", data, format="GIF", size=(50, 50), alpha=True, transparent_left_half=True
    )


def _gif_frame_outgrows_screen() -> Case:
    """The first frame is 60 x 40 but the header announces a 10 x 10 screen."""
    image = Image.new("P", (60, 40), 1)
    image.putpalette([0, 0, 0, *RED])
    data = bytearray(encode(image, "GIF"))
    data[6:10] = struct.pack("<HH", 10, 10)
    return Case("gif_frame_outgrows_screen", bytes(data), format="GIF", size=(60, 40))


def _webp_alpha() -> Case:
    image = noise_rgb(128, 96).convert("RGBA")
    image.paste((0, 0, 0, 0), (0, 0, 64, 96))
    data = encode(image, "WEBP", quality=80)
    return Case(
        "webp_alpha", data, format="WEBP", size=(128, 96), alpha=True, transparent_left_half=True
    )


def _webp_lossy() -> Case:
    return Case("webp_lossy", encode(noise_rgb(300, 200), "WEBP"), format="WEBP", size=(300, 200))


def _webp_lossless() -> Case:
    data = encode(noise_rgb(64, 64), "WEBP", lossless=True)
    return Case("webp_lossless", data, format="WEBP", size=(64, 64))


def _truncated_webp() -> Case:
    data = encode(noise_rgb(300, 200), "WEBP")
    return Case("truncated_webp", data[: len(data) // 2], CorruptImage)


def _truncated_gif() -> Case:
    data = encode(noise_rgb(300, 200).quantize(64), "GIF")
    return Case("truncated_gif", data[: len(data) // 2], CorruptImage)


BUILDERS: dict[str, Callable[[], Case]] = {
    "text": _text,
    "empty": _empty,
    "random_bytes": _random_bytes,
    "svg": _svg,
    "pdf": _pdf,
    "bmp": _bmp,
    "tiff": _tiff,
    "ico": _ico,
    "jpeg": _jpeg,
    "truncated_jpeg": _truncated_jpeg,
    "truncated_png": _truncated_png,
    "truncated_webp": _truncated_webp,
    "truncated_gif": _truncated_gif,
    "png_garbage_idat": _png_garbage_idat,
    "png_no_idat": _png_no_idat,
    "png_20k_header": _png_20k_header,
    "png_bomb": _png_bomb,
    "png_just_over_limit": _png_just_over_limit,
    "png_ztxt_bomb": _png_ztxt_bomb,
    "gif_huge_header": _gif_huge_header,
    "webp_huge_header": _webp_huge_header,
    "jpeg_cmyk": _jpeg_cmyk,
    "jpeg_progressive": _jpeg_progressive,
    "jpeg_gray": _jpeg_gray,
    "jpeg_4000x3000": _jpeg_big,
    "jpeg_orientation_3": _jpeg_orientation(3),
    "jpeg_orientation_6": _jpeg_orientation(6),
    "jpeg_orientation_8": _jpeg_orientation(8),
    "png_orientation_6": _png_orientation_6,
    "jpeg_bad_exif": _jpeg_bad_exif,
    "jpeg_metadata": _jpeg_metadata,
    "jpeg_garbage_icc": _jpeg_garbage_icc,
    "png_rgba": _png_rgba,
    "png_la": _png_la,
    "png_gray": _png_gray,
    "png_1bit": _png_1bit,
    "png_16bit": _png_16bit,
    "png_16bit_trns": _png_16bit_transparency_key,
    "png_palette_trns": _png_palette_transparency,
    "png_rgb_trns": _png_rgb_transparency_key,
    "png_1x1": _png_tiny,
    "png_10000x1": _png_wide,
    "png_1x10000": _png_tall,
    "png_40x20": _png_small,
    "gif_animated": _gif_animated,
    "gif_transparent": _gif_transparent,
    "gif_frame_outgrows_screen": _gif_frame_outgrows_screen,
    "webp_alpha": _webp_alpha,
    "webp_lossy": _webp_lossy,
    "webp_lossless": _webp_lossless,
}

CASE_NAMES: tuple[str, ...] = tuple(BUILDERS)


@cache
def case(name: str) -> Case:
    built = BUILDERS[name]()
    assert built.name == name, f"builder for {name} names its case {built.name}"
    assert (built.rejected is not None) == (name in REJECTED), f"{name}: fix REJECTED"
    return built


def accepted_names() -> tuple[str, ...]:
    """Names of the cases that must be accepted; cheap (does not build the cases)."""
    return tuple(name for name in CASE_NAMES if name not in REJECTED)


REJECTED: frozenset[str] = frozenset(
    {
        "text",
        "empty",
        "random_bytes",
        "svg",
        "pdf",
        "bmp",
        "tiff",
        "ico",
        "truncated_jpeg",
        "truncated_png",
        "truncated_webp",
        "truncated_gif",
        "png_garbage_idat",
        "png_no_idat",
        "png_20k_header",
        "png_bomb",
        "png_just_over_limit",
        "png_ztxt_bomb",
        "gif_huge_header",
        "webp_huge_header",
    }
)
