"""Upload validation and logo resizing, against a corpus of good, odd and hostile files."""

from __future__ import annotations

import contextlib
import io
import struct
import tracemalloc
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile, JpegImagePlugin, WebPImagePlugin, _imaging

from stockday.logos.demo import demo_logo_png
from stockday.logos.images import (
    ACCEPTED_FORMATS,
    CorruptImage,
    ImageTooLarge,
    NotAnImage,
    RejectedImage,
    ResizedLogo,
    TooManyPixels,
    UploadInfo,
    guess_content_type,
    inspect_upload,
    resize_logo,
)

from .hostile_corpus import (
    CASE_NAMES,
    MAX_BYTES,
    MAX_PIXELS,
    MAX_SIDE,
    RED,
    accepted_names,
    case,
    encode,
    exif_bytes,
    noise_rgb,
    png_chunk,
)

# Pillow warns about the deliberately broken EXIF in the corpus (and in fuzzed files).
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL.TiffImagePlugin")

FUZZ_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def inspect(data: bytes, **limits: int) -> UploadInfo:
    return inspect_upload(
        data,
        max_bytes=limits.get("max_bytes", MAX_BYTES),
        max_pixels=limits.get("max_pixels", MAX_PIXELS),
    )


def resize(data: bytes, **limits: int) -> ResizedLogo:
    return resize_logo(
        data,
        max_side=limits.get("max_side", MAX_SIDE),
        max_pixels=limits.get("max_pixels", MAX_PIXELS),
    )


def fitted(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """The expected logo size: longest side max_side (never grown), other side rounded."""
    width, height = size
    scale = min(1.0, max_side / max(width, height))
    if width >= height:
        return min(width, max_side), max(1, round(height * scale))
    return max(1, round(width * scale)), min(height, max_side)


def webp_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """The RIFF chunks of a WebP file, checking the container framing on the way."""
    assert data[:4] == b"RIFF"
    assert data[8:12] == b"WEBP"
    assert int.from_bytes(data[4:8], "little") + 8 == len(data)
    chunks = []
    pos = 12
    while pos < len(data):
        kind = data[pos : pos + 4]
        length = int.from_bytes(data[pos + 4 : pos + 8], "little")
        chunks.append((kind, data[pos + 8 : pos + 8 + length]))
        pos += 8 + length + (length & 1)
    assert pos == len(data)
    return chunks


def open_logo(logo: ResizedLogo) -> Image.Image:
    image = Image.open(io.BytesIO(logo.data))
    image.load()
    assert image.format == "WEBP"
    return image


def is_red(pixel: tuple[int, ...]) -> bool:
    return pixel[0] > 150 and pixel[2] < 110


def is_blue(pixel: tuple[int, ...]) -> bool:
    return pixel[2] > 150 and pixel[0] < 110


@pytest.fixture(autouse=True)
def pillow_globals_untouched() -> Iterator[None]:
    """No call may leave Pillow's process-wide switches changed."""
    before = (ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS)
    yield
    after = (ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS)
    assert after == before
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


# --- the corpus ----------------------------------------------------------------------------


def refused_as_listed(name: str, call: Callable[[bytes], object]) -> bool:
    """For a corpus case the checks refuse: ``call`` raises its listed rejection (True)."""
    item = case(name)
    if item.rejected is None:
        return False
    with pytest.raises(RejectedImage) as caught:
        call(item.data)
    assert type(caught.value) is item.rejected
    assert caught.value.status_code == item.rejected.status_code
    assert str(caught.value)
    return True


@pytest.mark.parametrize("name", CASE_NAMES)
def test_inspect_upload_corpus(name: str) -> None:
    if refused_as_listed(name, inspect):
        return
    item = case(name)
    assert item.format is not None
    assert item.size is not None
    assert inspect(item.data) == UploadInfo(
        format=item.format,
        content_type=guess_content_type(item.format),
        width=item.size[0],
        height=item.size[1],
        size=len(item.data),
    )


@pytest.mark.parametrize("name", CASE_NAMES)
def test_resize_logo_corpus(name: str) -> None:
    if refused_as_listed(name, resize):
        return
    item = case(name)
    assert item.size is not None
    logo = resize(item.data)
    image = open_logo(logo)
    assert logo.content_type == "image/webp"
    assert (logo.width, logo.height) == image.size == fitted(item.size, MAX_SIDE)
    assert image.mode == ("RGBA" if item.transparent_left_half else "RGB")
    assert_no_metadata(logo, image)
    if item.transparent_left_half:
        assert_left_half_transparent(image)
    if item.red_corner is not None:
        assert_red_corner(image, item.red_corner)


def assert_no_metadata(logo: ResizedLogo, image: Image.Image) -> None:
    kinds = [kind for kind, _ in webp_chunks(logo.data)]
    assert set(kinds) <= {b"VP8 ", b"VP8L", b"VP8X", b"ALPH"}, kinds
    for kind, payload in webp_chunks(logo.data):
        if kind == b"VP8X":
            # Flag bits for ICC profile (0x20), EXIF (0x08) and XMP (0x04).
            assert payload[0] & 0x2C == 0
    for key in ("exif", "icc_profile", "xmp", "XML:com.adobe.xmp"):
        assert key not in image.info
    assert len(image.getexif()) == 0


def assert_left_half_transparent(image: Image.Image) -> None:
    width, height = image.size
    for y in range(height):
        left = image.getpixel((width // 4, y))
        right = image.getpixel((width - 1 - width // 4, y))
        assert isinstance(left, tuple)
        assert isinstance(right, tuple)
        assert left[3] == 0, (y, left)
        assert right[3] == 255, (y, right)


def assert_red_corner(image: Image.Image, corner: str) -> None:
    width, height = image.size
    centres = {
        "tl": (width // 4, height // 4),
        "tr": (3 * width // 4, height // 4),
        "bl": (width // 4, 3 * height // 4),
        "br": (3 * width // 4, 3 * height // 4),
    }
    for name, point in centres.items():
        pixel = image.getpixel(point)
        assert isinstance(pixel, tuple)
        if name == corner:
            assert is_red(pixel), (name, pixel)
        else:
            assert is_blue(pixel), (name, pixel)


@pytest.mark.parametrize("name", accepted_names())
def test_resize_is_deterministic(name: str) -> None:
    data = case(name).data
    assert resize(data).data == resize(data).data


def test_concurrent_resizes_match_sequential_ones() -> None:
    # The consumer resizes in worker threads: no shared state may leak between calls.
    names = ["jpeg_metadata", "png_16bit_trns", "gif_animated", "webp_alpha", "jpeg_cmyk"] * 4
    expected = {name: resize(case(name).data).data for name in set(names)}
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda name: resize(case(name).data).data, names))
    assert results == [expected[name] for name in names]


# --- resizing ------------------------------------------------------------------------------


@pytest.mark.parametrize("max_side", [40, 41, 256, 4096])
def test_never_upscales(max_side: int) -> None:
    logo = resize(case("png_40x20").data, max_side=max_side)
    assert (logo.width, logo.height) == (40, 20)
    tiny = resize(case("png_1x1").data, max_side=max_side)
    assert (tiny.width, tiny.height) == (1, 1)


def test_extreme_aspect_ratios_keep_one_pixel() -> None:
    wide = resize(case("png_10000x1").data)
    assert (wide.width, wide.height) == (256, 1)
    tall = resize(case("png_1x10000").data, max_side=16)
    assert (tall.width, tall.height) == (1, 16)


@settings(max_examples=120, deadline=None)
@given(
    width=st.integers(1, 700),
    height=st.integers(1, 700),
    max_side=st.integers(1, 300),
)
def test_keeps_aspect_ratio_within_one_pixel(width: int, height: int, max_side: int) -> None:
    data = encode(Image.new("RGB", (width, height), (10, 120, 200)), "PNG")
    logo = resize(data, max_side=max_side)
    assert max(logo.width, logo.height) == min(max_side, max(width, height))
    assert logo.width >= 1
    assert logo.height >= 1
    scale = logo.width / width if width >= height else logo.height / height
    assert abs(logo.width - width * scale) <= 1
    assert abs(logo.height - height * scale) <= 1


def test_large_jpeg_is_fitted_exactly() -> None:
    logo = resize(case("jpeg_4000x3000").data, max_side=512)
    assert (logo.width, logo.height) == (512, 384)


def test_large_jpeg_is_never_decoded_at_full_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """What makes a large JPEG's resize fast (bench/logo_pipeline.py times resizing): libjpeg
    decodes it at a reduced scale, a sixteenth of its pixels here, never all 12 million."""
    decoded: list[tuple[int, int]] = []
    original = JpegImagePlugin.JpegImageFile.load

    def spy(self: JpegImagePlugin.JpegImageFile) -> Any:
        loaded = original(self)
        decoded.append(self.size)
        return loaded

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", spy)
    resize(case("jpeg_4000x3000").data)
    assert decoded, "the JPEG was never loaded"
    assert all(width * height <= 4000 * 3000 // 16 for width, height in decoded), decoded


def test_first_frame_of_animated_gif() -> None:
    image = open_logo(resize(case("gif_animated").data))
    pixel = image.getpixel((30, 20))
    assert isinstance(pixel, tuple)
    assert all(abs(a - b) < 12 for a, b in zip(pixel, RED, strict=True)), pixel


def test_cmyk_jpeg_keeps_its_colours() -> None:
    source = noise_rgb(200, 100)
    image = open_logo(resize(case("jpeg_cmyk").data))
    for point in [(20, 20), (100, 50), (180, 80)]:
        got = image.getpixel(point)
        want = source.getpixel(point)
        assert isinstance(got, tuple)
        assert isinstance(want, tuple)
        assert all(abs(a - b) < 40 for a, b in zip(got, want, strict=True)), (point, got, want)


def test_16_bit_grayscale_is_scaled_not_clipped() -> None:
    # The source runs from 0 to 65535 left to right.
    image = open_logo(resize(case("png_16bit").data))
    row = [image.getpixel((x, 8)) for x in (2, 128, 253)]
    assert all(isinstance(pixel, tuple) for pixel in row)
    dark, middle, bright = (pixel[0] for pixel in row if isinstance(pixel, tuple))
    assert dark < 20
    assert 100 < middle < 156
    assert bright > 235


def test_metadata_is_stripped_from_the_logo() -> None:
    item = case("jpeg_metadata")
    source = Image.open(io.BytesIO(item.data))
    assert {"exif", "icc_profile", "xmp"} <= set(source.info)
    logo = resize(item.data)
    assert b"Hostile Camera" not in logo.data
    assert b"secret" not in logo.data
    assert_no_metadata(logo, open_logo(logo))


# --- limits --------------------------------------------------------------------------------


def test_byte_limit_is_checked_first() -> None:
    with pytest.raises(ImageTooLarge) as caught:
        inspect(b"not even an image" * 100, max_bytes=1000)
    assert caught.value.status_code == 413
    data = case("png_40x20").data
    assert inspect(data, max_bytes=len(data)).size == len(data)
    with pytest.raises(ImageTooLarge):
        inspect(data, max_bytes=len(data) - 1)


def test_pixel_limit_boundary() -> None:
    data = encode(noise_rgb(100, 100), "PNG")
    assert inspect(data, max_pixels=10_000).width == 100
    assert resize(data, max_pixels=10_000).width == 100
    with pytest.raises(TooManyPixels):
        inspect(data, max_pixels=9_999)
    with pytest.raises(TooManyPixels):
        resize(data, max_pixels=9_999)


@pytest.mark.parametrize(
    "name", ["png_20k_header", "png_bomb", "gif_huge_header", "webp_huge_header"]
)
def test_huge_images_are_rejected_from_the_header(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = case(name).data
    loads: list[object] = []

    def no_load(self: ImageFile.ImageFile) -> None:
        loads.append(self)
        raise AssertionError("pixels must not be decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_load)
    monkeypatch.setattr(WebPImagePlugin.WebPImageFile, "load", no_load)
    allocated = _imaging.get_stats()["new_count"]
    tracemalloc.start()
    try:
        for call in (inspect, resize):
            with pytest.raises(TooManyPixels):
                call(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert loads == []
    # Pillow allocates image memory outside Python's allocator; its own counter shows that
    # no image (not even a small one) was created.
    assert _imaging.get_stats()["new_count"] == allocated
    assert peak < 2 * 1024 * 1024 + 2 * len(data)


def test_pillow_pixel_limit_is_honoured_without_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    warning_zone = encode(noise_rgb(40, 40), "PNG")  # 1,600 pixels: Pillow would warn
    error_zone = encode(noise_rgb(100, 100), "PNG")  # 10,000 pixels: Pillow would raise
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for data in (warning_zone, error_zone):
            with pytest.raises(TooManyPixels):
                inspect(data)
            with pytest.raises(TooManyPixels):
                resize(data)
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]


def test_pillow_decompression_bomb_error_maps_to_too_many_pixels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Pillow itself raises DecompressionBombError while reading this GIF's header, when the
    # first frame turns out larger than the screen (60 x 40 > 2 x 1000 pixels).
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    data = case("gif_frame_outgrows_screen").data
    with pytest.raises(TooManyPixels) as caught:
        inspect(data)
    assert isinstance(caught.value.__cause__, Image.DecompressionBombError)


def test_jpeg_is_decoded_at_reduced_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    requested: list[tuple[int, int] | None] = []
    original = JpegImagePlugin.JpegImageFile.draft

    def spy(
        self: JpegImagePlugin.JpegImageFile, mode: str | None, size: tuple[int, int] | None
    ) -> tuple[str, tuple[int, int, float, float]] | None:
        requested.append(size)
        return original(self, mode, size)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    resize(case("jpeg_4000x3000").data)
    assert requested == [(512, 384)]


@pytest.mark.parametrize(
    "limits",
    [
        {"max_bytes": 0, "max_pixels": 1},
        {"max_bytes": 1, "max_pixels": 0},
    ],
)
def test_bad_inspect_limits_are_programming_errors(limits: dict[str, int]) -> None:
    with pytest.raises(ValueError) as caught:
        inspect_upload(case("png_1x1").data, **limits)
    assert not isinstance(caught.value, RejectedImage)


def test_bad_resize_limits_are_programming_errors() -> None:
    with pytest.raises(ValueError) as caught:
        resize_logo(case("png_1x1").data, max_side=0, max_pixels=100)
    assert not isinstance(caught.value, RejectedImage)


# --- names and exceptions ------------------------------------------------------------------


def test_exception_classes() -> None:
    assert issubclass(RejectedImage, ValueError)
    expected = {ImageTooLarge: 413, NotAnImage: 415, TooManyPixels: 422, CorruptImage: 422}
    for cls, status in expected.items():
        assert issubclass(cls, RejectedImage)
        error = cls("message for people")
        assert error.status_code == status
        assert str(error) == error.message == "message for people"


def test_accepted_formats_and_content_types() -> None:
    assert frozenset({"JPEG", "PNG", "GIF", "WEBP"}) == ACCEPTED_FORMATS
    assert guess_content_type("JPEG") == "image/jpeg"
    assert guess_content_type("jpg") == "image/jpeg"
    assert guess_content_type("PNG") == "image/png"
    assert guess_content_type("GIF") == "image/gif"
    assert guess_content_type("webp") == "image/webp"
    assert guess_content_type("BMP") == "application/octet-stream"


# --- fuzzing: only RejectedImage may escape ------------------------------------------------


def survives(data: bytes) -> None:
    """Both entry points either succeed or raise a RejectedImage subclass."""
    for call in (
        lambda: inspect_upload(data, max_bytes=1 << 20, max_pixels=1 << 20),
        lambda: resize_logo(data, max_side=64, max_pixels=1 << 20),
    ):
        with contextlib.suppress(RejectedImage):
            call()


SIGNATURES = [
    b"\xff\xd8\xff",
    b"\xff\xd8\xff\xe1",
    b"\x89PNG\r\n\x1a\n",
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR",
    b"GIF89a",
    b"GIF87a",
    b"RIFF\x00\x01\x00\x00WEBPVP8 ",
    b"RIFF\x00\x01\x00\x00WEBPVP8L",
    b"RIFF\x00\x01\x00\x00WEBPVP8X",
]


@FUZZ_SETTINGS
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_never_escape(data: bytes) -> None:
    survives(data)


@FUZZ_SETTINGS
@given(st.sampled_from(SIGNATURES), st.binary(max_size=2048))
def test_bytes_behind_a_signature_never_escape(signature: bytes, tail: bytes) -> None:
    survives(signature + tail)


def _seeds() -> list[bytes]:
    small = noise_rgb(24, 16)
    with_alpha = small.convert("RGBA")
    with_alpha.putalpha(128)
    animated = [Image.new("P", (8, 8), index) for index in range(2)]
    return [
        encode(small, "PNG"),
        encode(with_alpha, "PNG"),
        encode(small.quantize(8), "PNG", transparency=0),
        encode(small, "JPEG", quality=80, exif=exif_bytes(6, gps=True)),
        encode(small, "JPEG", progressive=True),
        encode(small.convert("CMYK"), "JPEG"),
        encode(animated[0], "GIF", save_all=True, append_images=animated[1:]),
        encode(with_alpha, "WEBP"),
        encode(small, "WEBP", lossless=True),
    ]


SEEDS = _seeds()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["flip", "overwrite", "insert", "delete", "truncate"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if action == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif action == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=8))
            data[pos : pos + len(chunk)] = chunk
        elif action == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif action == "delete":
            del data[pos : pos + draw(st.integers(1, 16))]
        else:
            del data[pos:]
    return bytes(data)


@FUZZ_SETTINGS
@given(mutated())
def test_mutated_images_never_escape(data: bytes) -> None:
    survives(data)


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks = []
    pos = 8
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        chunks.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return chunks


PNG_SEEDS = [seed for seed in SEEDS if seed.startswith(b"\x89PNG")]


@st.composite
def mutated_png(draw: st.DrawFn) -> bytes:
    """PNGs with a damaged chunk whose CRC is fixed up, so the damage reaches the decoder."""
    chunks = png_chunks(draw(st.sampled_from(PNG_SEEDS)))
    index = draw(st.integers(0, len(chunks) - 1))
    kind, payload = chunks[index]
    body = bytearray(payload)
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(body)))
        body[pos : pos + 1] = draw(st.binary(min_size=0, max_size=4))
    chunks[index] = (kind, bytes(body))
    return b"\x89PNG\r\n\x1a\n" + b"".join(png_chunk(k, p) for k, p in chunks)


@FUZZ_SETTINGS
@given(mutated_png())
def test_mutated_png_chunks_never_escape(data: bytes) -> None:
    survives(data)


def test_header_size_fields_cannot_cause_large_allocations() -> None:
    # Targeted version of the fuzz test: every PNG/GIF/WebP size field set to its maximum.
    png = bytearray(SEEDS[0])
    png[16:24] = struct.pack(">II", 0x7FFFFFFF, 0x7FFFFFFF)
    gif = bytearray(SEEDS[6])
    gif[6:10] = b"\xff\xff\xff\xff"
    for data in (bytes(png), bytes(gif)):
        with pytest.raises(RejectedImage):
            inspect(data)
        with pytest.raises(RejectedImage):
            resize(data)


# --- demo logos ----------------------------------------------------------------------------


def test_demo_logo_is_a_valid_transparent_png() -> None:
    data = demo_logo_png("AAPL")
    info = inspect(data)
    assert (info.format, info.width, info.height) == ("PNG", 512, 512)
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.mode == "RGBA"
    corner = image.getpixel((0, 0))
    centre = image.getpixel((256, 256))
    assert isinstance(corner, tuple)
    assert isinstance(centre, tuple)
    assert corner[3] == 0
    assert centre[3] == 255
    assert image.info.keys() <= {"dpi", "gamma"}


def test_demo_logo_is_deterministic_and_depends_on_the_symbol() -> None:
    assert demo_logo_png("MSFT", 128) == demo_logo_png("MSFT", 128)
    assert demo_logo_png("MSFT", 128) == demo_logo_png(" msft ", 128)
    tile = Image.open(io.BytesIO(demo_logo_png("MSFT", 128))).getpixel((20, 64))
    other = Image.open(io.BytesIO(demo_logo_png("NVDA", 128))).getpixel((20, 64))
    assert tile != other


@pytest.mark.parametrize(("symbol", "size"), [("X", 16), ("BRK.B", 64), ("", 100), ("ÄÖÜ", 32)])
def test_demo_logo_sizes_and_odd_symbols(symbol: str, size: int) -> None:
    data = demo_logo_png(symbol, size)
    assert (inspect(data).width, inspect(data).height) == (size, size)
    logo = resize(data)
    assert (logo.width, logo.height) == (min(size, MAX_SIDE),) * 2
    assert open_logo(logo).mode == "RGBA"


@pytest.mark.parametrize("size", [0, 15, 5000])
def test_demo_logo_rejects_unreasonable_sizes(size: int) -> None:
    with pytest.raises(ValueError):
        demo_logo_png("AAPL", size)
