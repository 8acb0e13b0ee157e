"""Poison messages are dead-lettered, good ones keep flowing, a redrive after the fix works.

On the local stack started as a process, one logo job can never succeed
while five good stocks are added at the same time. The poison is well formed and fixable: the
object store refuses to write its logo. On the filesystem store an object at ``logos/POISON``
makes ``logos/POISON/<id>.webp`` unwritable (a path cannot be a file and a directory), as a
bucket policy or a missing KMS grant would refuse a write on S3; the resizer's put fails, the
job is retried and, after ``STOCKDAY_QUEUE_MAX_RECEIVES`` receives, dead-lettered. (A missing
raw upload would not do: the resizer records that as a permanent ``failed``.)

Then `stockday dlq list` must show the letter and why it died, the fix (deleting the blocking
object through the ObjectStore port) and `stockday dlq redrive logo-jobs` must bring the logo
to ready, and both dead-letter queues must end empty.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from stockday.domain.stocks import upload_key
from stockday.runtime import composition
from stockday.runtime.settings import Settings
from tests.failures.conftest import StartStack
from tests.support.stack import MAX_RECEIVES, RunningStack, add_stock

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

POISON = "POISON"
GOOD = [f"GOOD{i}" for i in range(5)]
BLOCKER = f"logos/{POISON}"  # an object where the poison's logo directory would go
DEADLINE_SECONDS = 30.0


def wait_for(what: str, check: Callable[[], bool], seconds: float = DEADLINE_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds:.0f} s: {what}")
        time.sleep(0.2)


def on_store(settings: Settings, action: str, key: str) -> bool:
    """Put, delete or look for one object through the ObjectStore port."""

    async def run() -> bool:
        store = composition.object_store(settings)
        try:
            if action == "put":
                await store.put(key, b"in the way", content_type="text/plain")
            elif action == "delete":
                await store.delete(key)
            return await store.exists(key)
        finally:
            await store.close()

    return asyncio.run(run())


def queue_counts(settings: Settings) -> dict[str, tuple[int, int]]:
    """(waiting or in flight, dead) of both queues."""

    async def run() -> dict[str, tuple[int, int]]:
        counts = {}
        for name in (settings.logo_jobs_queue, settings.logo_events_queue):
            queue = composition.message_queue(settings, name)
            try:
                stats = await queue.stats()
            finally:
                await queue.close()
            counts[name] = (stats.visible + stats.in_flight, stats.dead_letters)
        return counts

    return asyncio.run(run())


def stockday(stack: RunningStack, *args: str) -> str:
    """Run the `stockday` command line as a user would, against the stack's data directory."""
    env = {**os.environ, **stack.env, "COLUMNS": "400"}
    done = subprocess.run(
        [sys.executable, "-m", "stockday", *args, "--data-dir", str(stack.data_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_poison_is_dead_lettered_good_logos_flow_and_a_redrive_after_the_fix_works(
    start_stack: StartStack,
) -> None:
    stack = start_stack()
    settings = stack.settings
    jobs, events = settings.logo_jobs_queue, settings.logo_events_queue
    assert on_store(settings, "put", BLOCKER)

    with stack.client(stack.symbol) as api, stack.client(stack.frontend) as site:

        def states() -> dict[str, str]:
            return {
                symbol: api.get(f"/api/stocks/{symbol}").json()["logo"]["state"]
                for symbol in [POISON, *GOOD]
            }

        # The poison and the good stocks arrive together.
        poison_upload = add_stock(api, POISON)
        for symbol in GOOD:
            add_stock(api, symbol)

        def poison_dead_and_good_ready() -> bool:
            counts = queue_counts(settings)
            return counts[jobs] == (0, 1) and all(states()[s] == "ready" for s in GOOD)

        wait_for("five good logos ready, the poison job dead-lettered", poison_dead_and_good_ready)
        assert states()[POISON] == "pending"
        assert queue_counts(settings)[events] == (0, 0)

        # The list shows the letter and why it died, pointing at the consumer logs.
        listed = stockday(stack, "dlq", "list")
        assert f"{jobs}: 0 waiting, 0 in flight, 1 dead" in listed
        reason = f"logo.requested for {POISON}: handler failed {MAX_RECEIVES} times"
        assert reason in listed
        message_id = listed.split("(see the consumer logs for message ", 1)[1].split(")", 1)[0]
        logs = "".join(
            path.read_text() for path in (stack.data_dir / "logs").glob("logo-resizer-*.log")
        )
        assert logs.count(f"message {message_id} failed") == MAX_RECEIVES

        # The fix, then the redrive.
        assert not on_store(settings, "delete", BLOCKER)
        redriven = stockday(stack, "dlq", "redrive", "logo-jobs")
        assert f"re-drove 1 dead letters to {jobs}" in redriven

        def poison_ready_and_queues_empty() -> bool:
            counts = queue_counts(settings)
            return states()[POISON] == "ready" and counts == {jobs: (0, 0), events: (0, 0)}

        wait_for("the redriven job processed and every queue empty", poison_ready_and_queues_empty)
        stock = api.get(f"/api/stocks/{POISON}").json()
        assert stock["logo"]["upload_id"] == poison_upload
        served = site.get(stock["logo"]["url"])
        assert (served.status_code, served.headers["content-type"]) == (200, "image/webp")
        # The logo is ready, so its raw upload is gone, like every good stock's.
        wait_for(
            "the redriven logo's raw upload deleted",
            lambda: not on_store(settings, "exists", upload_key(poison_upload)),
        )
        assert states() == dict.fromkeys([POISON, *GOOD], "ready")

    listed = stockday(stack, "dlq", "list")
    assert f"{jobs}: 0 waiting, 0 in flight, 0 dead" in listed
    assert f"{events}: 0 waiting, 0 in flight, 0 dead" in listed
