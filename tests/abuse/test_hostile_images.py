"""Hostile but valid images against the real stack: 25-megapixel uploads, each within every
limit, must neither stall stock-symbol's other requests nor swell logo-resizer's memory.

Two figures are asserted here because the task demands them in CI, not in bench/ alone:
stock-symbol's GET p99 under 50 ms while four clients upload such images, and logo-resizer's
peak RSS under 200 MB through twenty of them. Both are designed for a busy 2-core machine:

- latency: the reads are measured only while the uploads genuinely run (each of the four
  uploaders has been answered before the first read, none runs out before the last, and
  uploads are answered during the reads at least four times); at least 300 reads and at most
  1,500, and the p99 lets the slowest 1 % be hit by whatever else the machine runs. With the
  inspection on the event loop the p99 was 561 ms, with it in worker threads about 10 ms
  (docs/performance.md): the limit sits between, far from both.
- memory: the peak (VmHWM) of the consumer processes `stockday up` started, which cannot be
  missed by sampling; a replica that restarted would reset it, so the pids must not change.
  Before the memory budget and the strip-wise reduction the peak was 466 MB.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.image_load import (
    Uploaders,
    add_stocks_with_logos,
    peak_rss_mb,
    quantile,
    timed_gets,
    wait_for_logos,
)
from tests.support.images import LARGE_KINDS, large
from tests.support.stack import RunningStack, add_stock, free_port_base

pytestmark = pytest.mark.e2e

UPLOADERS = 4
READS = 300
MAX_READS = 1500
P99_LIMIT_SECONDS = 0.050
LOGOS = 20
PEAK_RSS_LIMIT_MB = 200.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = RunningStack(tmp_path_factory.mktemp("hostile") / "data", free_port_base())
    running.start()
    yield running
    assert running.stop() == 0, running.output()


def test_reads_keep_their_latency_while_25_megapixel_images_are_uploaded(
    stack: RunningStack,
) -> None:
    # Made before the load starts: drawing them costs this process CPU too.
    images = [large("png_rgba", seed) for seed in range(UPLOADERS)]
    with stack.client(stack.symbol) as api:
        add_stock(api, "CALM")
        idle = timed_gets(api, "/api/stocks/CALM", 50)
        with Uploaders(stack.symbol, images) as uploads:
            uploads.wait_for_answers(UPLOADERS, timeout=120)
            before = uploads.answered()
            busy: list[float] = []
            # At least READS reads, and on until the uploaders have been answered UPLOADERS
            # times more: on a busy machine the (low-priority) decodes are slow to finish.
            while len(busy) < MAX_READS and (
                len(busy) < READS or uploads.answered() - before < UPLOADERS
            ):
                busy += timed_gets(api, "/api/stocks/CALM", 50)
            during = uploads.answered() - before
            ran_out = list(uploads.ran_out)
    statuses = {status for _, status in uploads.answers}
    assert statuses == {201}, statuses
    assert not uploads.errors, uploads.errors[:5]
    assert not ran_out, "an uploader stopped before the reads ended"
    # Each uploader was answered before the reads and was still uploading after them: four
    # uploads were in flight throughout, and they were being answered.
    assert during >= UPLOADERS, f"only {during} uploads answered during {len(busy)} reads"
    p99 = quantile(busy, 0.99)
    report = (
        f"GET p99 {p99 * 1000:.1f} ms over {len(busy)} reads beside {during} uploads of 25 MP PNGs "
        f"(idle p99 {quantile(idle, 0.99) * 1000:.1f} ms)"
    )
    print(report)
    assert p99 < P99_LIMIT_SECONDS, report


def test_logo_resizer_peak_memory_stays_bounded_through_25_megapixel_images(
    stack: RunningStack,
) -> None:
    images = [large(LARGE_KINDS[n % len(LARGE_KINDS)], n // len(LARGE_KINDS)) for n in range(LOGOS)]
    resizers = stack.consumer_pids("logo-resizer")
    with stack.client(stack.symbol) as api:
        api.timeout = 60.0
        symbols = add_stocks_with_logos(api, images, "HUGE")
        states = wait_for_logos(api, symbols, timeout=240)
    assert set(states.values()) == {"ready"}, states
    assert stack.consumer_pids("logo-resizer") == resizers, "a logo-resizer restarted"
    peaks = {pid: peak_rss_mb(pid) for pid in resizers}
    report = f"logo-resizer peak RSS per replica through {LOGOS} 25 MP images: {peaks} MB"
    print(report)
    assert max(peaks.values()) < PEAK_RSS_LIMIT_MB, report
