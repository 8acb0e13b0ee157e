"""Colour of decoded logos: any Pillow mode and embedded ICC profile to 8-bit sRGB."""

from __future__ import annotations

import io
from typing import Final

from PIL import Image, ImageCms, ImageMath

_ALPHA_MODES: Final = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_WIDE_GRAY_MODES: Final = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})


def has_alpha(image: Image.Image) -> bool:
    return image.mode in _ALPHA_MODES or "transparency" in image.info


def to_srgb_8bit(image: Image.Image) -> Image.Image:
    """An RGB or RGBA image in sRGB; RGBA whenever the source has alpha or a colour key.

    May return ``image`` itself when it already qualifies.
    """
    alpha = has_alpha(image)
    icc = image.info.get("icc_profile")
    if image.mode in _WIDE_GRAY_MODES:
        image = _wide_gray_to_8bit(image)
    elif image.mode == "P" or image.mode == "PA":
        image = image.convert("RGBA" if alpha else "RGB")
    elif alpha and image.mode in ("1", "L"):
        image = image.convert("LA")
    elif alpha and image.mode == "RGB":
        image = image.convert("RGBA")
    elif image.mode in ("1", "La"):
        image = image.convert("LA" if alpha else "L")
    elif image.mode == "RGBa":
        image = image.convert("RGBA")
    # Now one of L, LA, RGB, RGBA, CMYK (or something exotic that convert() handles).
    target = "RGBA" if alpha else "RGB"
    if isinstance(icc, bytes) and icc:
        converted = _apply_icc(image, icc, target)
        if converted is not None:
            return converted
    if image.mode == target:
        # convert() would copy, which costs more than the resize of a large image.
        return image
    return image.convert(target)


def _wide_gray_to_8bit(image: Image.Image) -> Image.Image:
    """16-bit grayscale to L (or LA for a transparency key), scaling instead of clipping.

    Pillow's own I;16 -> L conversion clips every value above 255 to white, and its
    conversion to RGBA drops a 16-bit transparency key.
    """
    wide = image.convert("I")
    gray = wide.point(lambda value: value * (1 / 257) + 0.5).convert("L")
    key = image.info.get("transparency")
    if not isinstance(key, int):
        return gray
    matches = ImageMath.lambda_eval(lambda args: args["equal"](args["im"], key), im=wide)
    assert isinstance(matches, Image.Image)
    mask = matches.convert("L").point(lambda value: 0 if value else 255)
    return Image.merge("LA", (gray, mask))


def _apply_icc(image: Image.Image, icc: bytes, target: str) -> Image.Image | None:
    """Convert the colour bands to sRGB through the embedded profile, keeping alpha.

    Best effort: a profile LittleCMS cannot use, or one that does not match the image's
    colour space, is dropped (None) and the image is taken as sRGB already.
    """
    alpha = image.getchannel("A") if image.mode in ("LA", "RGBA") else None
    colour = image if alpha is None else image.convert("L" if image.mode == "LA" else "RGB")
    if colour.mode not in ("L", "RGB", "CMYK"):
        return None
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        converted = ImageCms.profileToProfile(
            colour, source, ImageCms.createProfile("sRGB"), outputMode="RGB"
        )
    except MemoryError:
        raise
    except Exception:
        return None
    if converted is None:
        return None
    if alpha is not None and target == "RGBA":
        converted.putalpha(alpha)
    return converted
