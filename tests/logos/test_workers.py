"""Image work off the event loop within thread and memory bounds, and large images reduced a
strip at a time to the same logo."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import anyio
import pytest
from PIL import Image, ImageCms

from stockday.logos import memory, workers
from stockday.logos.images import CorruptImage, decode_cost, inspect_upload, resize_logo
from stockday.logos.workers import ImageWorkers
from tests.support.images import LARGE_KINDS, large

from .hostile_corpus import MAX_PIXELS, case, encode, noise_rgb

pytestmark = pytest.mark.anyio

MB = 1024 * 1024
WAIT = 10.0  # seconds a blocked fake job waits for the test before it gives up


# --- strips --------------------------------------------------------------------------------


def strip_sources() -> Iterator[tuple[str, bytes]]:
    rgba = noise_rgb(1500, 1000).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize((1500, 1000)))
    yield "rgba", encode(rgba, "PNG")
    palette = noise_rgb(1100, 1300).quantize(64)
    yield "palette_transparent", encode(palette, "PNG", transparency=0)
    gray = Image.linear_gradient("L").resize((1200, 800)).convert("I").point(lambda v: v * 257)
    yield "gray_16bit", encode(gray.convert("I;16"), "PNG")
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    yield "rgb_icc", encode(noise_rgb(900, 700), "PNG", icc_profile=profile)
    yield "gif", encode(noise_rgb(900, 1400).quantize(32), "GIF")
    yield "webp", encode(noise_rgb(1400, 900), "WEBP", lossless=True)
    yield "tall", encode(noise_rgb(300, 9000), "PNG")


STRIP_SOURCES = dict(strip_sources())


@pytest.mark.parametrize("name", STRIP_SOURCES)
def test_strips_give_the_logo_of_the_whole_image(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = STRIP_SOURCES[name]
    monkeypatch.setattr(memory, "_STRIP_PIXELS", 10**12)
    whole = resize_logo(data, max_side=128, max_pixels=MAX_PIXELS)
    # Dozens of strips, the last one short.
    monkeypatch.setattr(memory, "_STRIP_PIXELS", 40_000)
    strips = resize_logo(data, max_side=128, max_pixels=MAX_PIXELS)
    assert strips == whole
    logo = Image.open(io.BytesIO(strips.data))
    assert max(logo.size) == 128


def test_large_png_is_reduced_without_a_second_full_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only strips are converted: no image the size of the upload besides the decoded one."""
    data = STRIP_SOURCES["rgba"]
    monkeypatch.setattr(memory, "_STRIP_PIXELS", 100_000)
    made: list[tuple[int, int]] = []
    original = Image.Image.convert

    def spy(self: Image.Image, *args: Any, **kwargs: Any) -> Image.Image:
        made.append(self.size)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "convert", spy)
    resize_logo(data, max_side=128, max_pixels=MAX_PIXELS)
    assert made, "nothing was converted"
    # Strips of 100,000 pixels, then the reduced image (a ninth) as it is resampled.
    assert max(w * h for w, h in made) <= 1500 * 1000 // 4, made


def test_decode_cost_follows_the_decoded_size() -> None:
    rgba = large("png_rgba", 1)
    palette = large("png_palette", 1)
    jpeg = large("jpeg", 1)
    cost = partial(decode_cost, max_pixels=MAX_PIXELS)
    assert 100 * MB < cost(rgba) < 120 * MB
    assert 25 * MB < cost(palette) < 40 * MB
    # A JPEG is decoded at an eighth of its sides: 1/64 of its pixels.
    assert cost(jpeg) < 12 * MB
    assert cost(jpeg, max_side=256) < 12 * MB
    assert cost(jpeg, max_side=2000) > 20 * MB
    webp = encode(noise_rgb(2000, 1000), "WEBP")
    assert 2_000_000 * 16 < cost(webp) < 2_000_000 * 16 + 10 * MB
    assert cost(b"not an image") == len(b"not an image")


@pytest.mark.parametrize(
    "name", ["png_20k_header", "png_bomb", "gif_huge_header", "webp_huge_header", "truncated_png"]
)
def test_files_refused_from_the_header_cost_only_their_bytes(name: str) -> None:
    """A bomb would otherwise be admitted as a job larger than the budget, waiting for the
    replica's image work to drain so that it can be refused alone."""
    data = case(name).data
    assert decode_cost(data, max_pixels=MAX_PIXELS) < len(data) + 10 * MB


@pytest.mark.parametrize("kind", LARGE_KINDS)
def test_test_images_are_at_the_pixel_limit(kind: str) -> None:
    info = inspect_upload(large(kind, 1), max_bytes=10 * MB, max_pixels=25_000_000)
    assert (info.width, info.height) == (5000, 5000)


# --- workers -------------------------------------------------------------------------------


class FakeWork:
    """Stands in for inspect_upload: each call blocks its thread until the test releases it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.most_at_once = 0
        self.started: list[bytes] = []
        self.threads: set[int] = set()
        self.niceness: set[int] = set()
        self.release = threading.Event()

    def __call__(self, data: bytes, **_: int) -> bytes:
        with self.lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            self.started.append(data)
            self.threads.add(threading.get_ident())
            self.niceness.add(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        try:
            if not self.release.wait(WAIT):
                raise TimeoutError("never released")
            if data == b"bad":
                raise CorruptImage("damaged")
            return data
        finally:
            with self.lock:
                self.running -= 1


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeWork:
    work = FakeWork()
    monkeypatch.setattr(workers, "inspect_upload", work)
    # The cost of a fake upload is its first byte, in MB.
    monkeypatch.setattr(workers, "decode_cost", lambda data, **_: data[0] * MB if data else 0)
    return work


async def wait_for(condition: Callable[[], bool]) -> None:
    with anyio.fail_after(WAIT):
        while not condition():
            await anyio.sleep(0.01)


async def inspect_all(pool: ImageWorkers, uploads: list[bytes], fake: FakeWork) -> list[Any]:
    results: list[Any] = [None] * len(uploads)

    async def one(index: int) -> None:
        results[index] = await pool.inspect(uploads[index], max_bytes=1, max_pixels=1)

    async with anyio.create_task_group() as tasks:
        for index in range(len(uploads)):
            tasks.start_soon(one, index)
            # Queued in this order: each job reaches the queue before the next starts.
            await anyio.sleep(0.01)
        await wait_for(lambda: len(fake.started) >= min(len(uploads), pool.threads))
        fake.release.set()
    return results


async def test_work_runs_off_the_event_loop(fake: FakeWork) -> None:
    pool = ImageWorkers(threads=1, budget_bytes=100 * MB)
    loop_thread = threading.get_ident()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(partial(pool.inspect, b"\x01", max_bytes=1, max_pixels=1))
        # The loop still runs while the job blocks its thread: this wait ends.
        await wait_for(lambda: len(fake.started) == 1)
        fake.release.set()
    assert fake.threads and loop_thread not in fake.threads
    # Below the requests' threads in CPU priority (Linux sets niceness per thread).
    assert fake.niceness == {os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) + 10}


async def test_a_caller_cancelled_while_waiting_gives_its_turn_on(fake: FakeWork) -> None:
    pool = ImageWorkers(threads=2, budget_bytes=100 * MB)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(partial(pool.inspect, b"\x50first", max_bytes=1, max_pixels=1))
        await wait_for(lambda: len(fake.started) == 1)
        with anyio.move_on_after(0.05):
            await pool.inspect(b"\x50gives-up", max_bytes=1, max_pixels=1)
        tasks.start_soon(partial(pool.inspect, b"\x50next", max_bytes=1, max_pixels=1))
        await anyio.sleep(0.05)
        fake.release.set()
    assert fake.started == [b"\x50first", b"\x50next"]
    assert pool.held_bytes == 0


async def test_at_most_threads_jobs_at_once(fake: FakeWork) -> None:
    pool = ImageWorkers(threads=2, budget_bytes=100 * MB)
    uploads = [bytes([1, n]) for n in range(6)]
    assert await inspect_all(pool, uploads, fake) == uploads
    assert fake.most_at_once == 2
    assert pool.held_bytes == 0


async def test_jobs_share_the_memory_budget(fake: FakeWork) -> None:
    pool = ImageWorkers(threads=4, budget_bytes=100 * MB)
    # 60 MB each: never two at once, though four threads are free.
    uploads = [bytes([60, n]) for n in range(3)]
    async with anyio.create_task_group() as tasks:
        for upload in uploads:
            tasks.start_soon(partial(pool.inspect, upload, max_bytes=1, max_pixels=1))
        await wait_for(lambda: len(fake.started) == 1)
        assert pool.held_bytes == 60 * MB
        fake.release.set()
    assert fake.most_at_once == 1
    assert pool.held_bytes == 0


async def test_a_job_over_the_budget_runs_alone_in_turn(fake: FakeWork) -> None:
    pool = ImageWorkers(threads=4, budget_bytes=100 * MB)
    uploads = [b"\x10a", b"\xffbig", b"\x10b", b"\x10c"]
    async with anyio.create_task_group() as tasks:
        for upload in uploads:
            tasks.start_soon(partial(pool.inspect, upload, max_bytes=1, max_pixels=1))
            await anyio.sleep(0.01)
        await wait_for(lambda: len(fake.started) == 1)
        # The big one waits for the first to finish; the small ones queued behind it wait
        # too instead of overtaking it.
        assert fake.started == [b"\x10a"]
        fake.release.set()
    assert fake.started[:2] == [b"\x10a", b"\xffbig"]
    assert pool.held_bytes == 0


async def test_rejections_pass_through_and_free_the_budget(fake: FakeWork) -> None:
    pool = ImageWorkers(threads=1, budget_bytes=100 * MB)
    fake.release.set()
    with pytest.raises(CorruptImage):
        await pool.inspect(b"bad", max_bytes=1, max_pixels=1)
    assert pool.held_bytes == 0


async def test_real_images_through_the_workers() -> None:
    pool = ImageWorkers(threads=2, budget_bytes=64 * MB)
    data = case("png_orientation_6").data
    info = await pool.inspect(data, max_bytes=10 * MB, max_pixels=MAX_PIXELS)
    assert (info.width, info.height) == (50, 100)
    logo = await pool.resize(large("png_rgba", 1), max_side=64, max_pixels=MAX_PIXELS)
    assert (logo.width, logo.height) == (64, 64)
    with pytest.raises(CorruptImage):
        await pool.resize(case("truncated_png").data, max_side=64, max_pixels=MAX_PIXELS)
    assert pool.held_bytes == 0


def test_workers_need_positive_bounds() -> None:
    with pytest.raises(ValueError):
        ImageWorkers(threads=0, budget_bytes=1)
    with pytest.raises(ValueError):
        ImageWorkers(threads=1, budget_bytes=0)
