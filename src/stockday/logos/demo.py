"""Generated placeholder logos for demo and seed data: no network, no font files.

A logo is a rounded tile in a colour derived from a stable hash of the symbol, with the
symbol's letters on it, on a transparent background. The same symbol always gives the same
PNG bytes (for a given Pillow version).
"""

from __future__ import annotations

import colorsys
import hashlib
import io
from functools import lru_cache

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

__all__ = ["demo_logo_png"]

_MIN_SIZE = 16
_MAX_SIZE = 4096
# The tile's edge is drawn this many times larger and scaled down: Pillow draws shapes
# without anti-aliasing.
_SUPERSAMPLE = 4
_MAX_LETTERS = 5
_LIGHT_INK = (255, 255, 255)
_DARK_INK = (24, 24, 28)


def demo_logo_png(symbol: str, size: int = 512) -> bytes:
    """A square ``size`` x ``size`` RGBA PNG logo for ``symbol``."""
    if not _MIN_SIZE <= size <= _MAX_SIZE:
        raise ValueError(f"size must be between {_MIN_SIZE} and {_MAX_SIZE}, got {size}")
    text = _letters(symbol)
    top, bottom = _colours(symbol.strip().upper())

    # linear_gradient runs from black (top) to white (bottom): white picks the first image.
    gradient = Image.linear_gradient("L").resize((size, size), Image.Resampling.BICUBIC)
    logo = Image.composite(
        Image.new("RGB", (size, size), bottom), Image.new("RGB", (size, size), top), gradient
    )
    letters = _text_mask(text, size)
    ink = _text_colour(top, bottom)
    if ink == _LIGHT_INK:
        # A soft drop shadow lifts light letters off the tile; under dark ones it smudges.
        shadow = (
            ImageChops.offset(letters, 0, max(1, size // 80))
            .filter(ImageFilter.GaussianBlur(max(1.0, size / 120)))
            .point(lambda value: value * 35 // 100)
        )
        logo.paste((0, 0, 0), (0, 0), shadow)
    logo.paste(ink, (0, 0), letters)
    # The colour is painted everywhere and only the alpha channel draws the tile, so its
    # anti-aliased edge has no dark fringe.
    logo.putalpha(_tile_mask(size))

    out = io.BytesIO()
    logo.save(out, format="PNG", optimize=False)
    return out.getvalue()


def _letters(symbol: str) -> str:
    letters = "".join(ch for ch in symbol.strip().upper() if ch.isalnum() or ch in ".-")
    return letters[:_MAX_LETTERS] or "?"


def _colours(key: str) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Top and bottom gradient colours; sha256, not hash(), which is salted per process."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    hue = int.from_bytes(digest[:2], "big") / 65536
    saturation = 0.55 + digest[2] / 255 * 0.25
    lightness = 0.40 + digest[3] / 255 * 0.12
    top = colorsys.hls_to_rgb(hue, min(lightness + 0.10, 0.75), saturation)
    bottom = colorsys.hls_to_rgb((hue + 0.04) % 1.0, max(lightness - 0.10, 0.15), saturation)
    return _rgb8(top), _rgb8(bottom)


def _rgb8(rgb: tuple[float, float, float]) -> tuple[int, int, int]:
    red, green, blue = (round(channel * 255) for channel in rgb)
    return red, green, blue


def _text_colour(top: tuple[int, int, int], bottom: tuple[int, int, int]) -> tuple[int, int, int]:
    """White on dark tiles, near-black on light ones (yellows, light greens)."""
    mean = [(a + b) / 2 / 255 for a, b in zip(top, bottom, strict=True)]
    luminance = 0.2126 * mean[0] + 0.7152 * mean[1] + 0.0722 * mean[2]
    return _LIGHT_INK if luminance < 0.55 else _DARK_INK


def _tile_mask(size: int) -> Image.Image:
    """Anti-aliased rounded square with a small transparent margin."""
    big = size * _SUPERSAMPLE
    margin = round(big * 0.04)
    mask = Image.new("L", (big, big), 0)
    ImageDraw.Draw(mask).rounded_rectangle(
        (margin, margin, big - 1 - margin, big - 1 - margin),
        radius=round(big * 0.22),
        fill=255,
    )
    return mask.resize((size, size), Image.Resampling.LANCZOS)


def _text_mask(text: str, size: int) -> Image.Image:
    """The letters as an L mask, fitted into the middle of the tile and centred by ink."""
    box_width = size * (0.70 if len(text) > 1 else 0.45)
    box_height = size * 0.42
    # Draw large and scale down: sharper than drawing small, and with the bitmap fallback
    # font (Pillow built without FreeType) this still gives letters of the right size.
    rendered = _render_text(text, max(32, size))
    ink = rendered.getbbox()
    mask = Image.new("L", (size, size), 0)
    if ink is None:
        return mask
    glyphs = rendered.crop(ink)
    scale = min(box_width / glyphs.width, box_height / glyphs.height)
    width = max(1, round(glyphs.width * scale))
    height = max(1, round(glyphs.height * scale))
    glyphs = glyphs.resize((width, height), Image.Resampling.LANCZOS)
    mask.paste(glyphs, ((size - width) // 2, (size - height) // 2))
    return mask


def _render_text(text: str, font_size: int) -> Image.Image:
    font = _font(font_size)
    # The bundled font is a regular weight; a thin stroke gives logo-like semibold letters.
    stroke = font_size // 45
    left, top, right, bottom = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox(
        (0, 0), text, font=font, stroke_width=stroke
    )
    pad = 4
    canvas = Image.new("L", (int(right - left) + 2 * pad, int(bottom - top) + 2 * pad), 0)
    ImageDraw.Draw(canvas).text(
        (pad - left, pad - top), text, fill=255, font=font, stroke_width=stroke, stroke_fill=255
    )
    return canvas


@lru_cache(maxsize=8)
def _font(font_size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # Pillow >= 10.1 bundles a scalable default font when it has FreeType.
    return ImageFont.load_default(size=font_size)
