"""Geometry of logos: EXIF orientation and the never-upscaling fit to a bounding square."""

from __future__ import annotations

from typing import Final

from PIL import ExifTags, Image

# The EXIF Orientation table used by ImageOps.exif_transpose. Applied here by hand so that
# inspect_upload (which only reads the tag) and resize_logo always agree, and so that an
# image without orientation is not copied.
ORIENTATION_TRANSPOSE: Final[dict[int, Image.Transpose]] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
SWAPS_SIDES: Final = frozenset({5, 6, 7, 8})


def orientation(image: Image.Image) -> int:
    """The EXIF orientation (1 to 8); 1 when absent or unreadable."""
    try:
        value = image.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:
        # Broken EXIF is common (camera and editor bugs) and orientation is only a hint:
        # show such an image as stored instead of rejecting it.
        return 1
    if isinstance(value, int) and value in ORIENTATION_TRANSPOSE:
        return value
    return 1


def fit(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """Shrink (never grow) so the longest side is max_side, rounding the other side."""
    width, height = size
    if max(width, height) <= max_side:
        return size
    if width >= height:
        # Integer round-half-up of height * max_side / width, at least one pixel.
        return max_side, max(1, (2 * height * max_side + width) // (2 * width))
    return max(1, (2 * width * max_side + height) // (2 * height)), max_side
