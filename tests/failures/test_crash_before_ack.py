"""A consumer killed with SIGKILL after writing its output but before acknowledging: the job
is redone, the final state is correct, and no object is orphaned.

The fault is injected where no outside signal could time it: with the file named by the
``fault_crash_before_ack_file`` setting present, the first consumer to finish a job removes the
file and kills itself between its durable work and its acknowledgement. Both consumers are
tested: logo-resizer (the WebP logo is written and the result announced, then it dies) and
queue-worker (the result is recorded on the stock, then it dies).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from stockday.runtime import composition
from tests.failures.conftest import StartStack
from tests.support import images as sample_images
from tests.support.stack import RunningStack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]


def logo_keys(stack: RunningStack) -> list[str]:
    async def read() -> list[str]:
        store = composition.object_store(stack.settings)
        try:
            return sorted(info.key for info in await store.list("logos/"))
        finally:
            await store.close()

    return asyncio.run(read())


@pytest.mark.parametrize("consumer", ["logo-resizer", "queue-worker"])
def test_a_job_whose_consumer_died_before_acknowledging_is_redone_once(
    start_stack: StartStack, tmp_path: Path, consumer: str
) -> None:
    flag = tmp_path / "crash-once"
    stack = start_stack(
        STOCKDAY_FAULT_CRASH_BEFORE_ACK_FILE=str(flag),
        # Redelivery after the crash comes when the visibility timeout runs out.
        STOCKDAY_QUEUE_VISIBILITY_SECONDS="3",
    )
    with httpx.Client(base_url=stack.symbol, timeout=10) as api:
        # A first stock goes through untouched, so both consumers are warm.
        upload = api.post(
            "/api/uploads", files={"file": ("a.png", sample_images.png(), "image/png")}
        )
        assert (
            api.post(
                "/api/stocks",
                json={"symbol": "WARM", "name": "Warm", "upload_id": upload.json()["upload_id"]},
            ).status_code
            == 201
        )
        deadline = time.monotonic() + 20
        while api.get("/api/stocks/WARM").json()["logo"]["state"] != "ready":
            assert time.monotonic() < deadline
            time.sleep(0.1)

        flag.write_text(consumer)  # armed for that consumer only
        upload_id = api.post(
            "/api/uploads", files={"file": ("c.png", sample_images.png(300, 150), "image/png")}
        ).json()["upload_id"]
        created = api.post(
            "/api/stocks", json={"symbol": "CRSH", "name": "Crash", "upload_id": upload_id}
        )
        assert created.status_code == 201
        deadline = time.monotonic() + 60
        while True:
            stock = api.get("/api/stocks/CRSH").json()
            if stock["logo"]["state"] != "pending":
                break
            assert time.monotonic() < deadline, stock
            time.sleep(0.2)
        assert stock["logo"]["state"] == "ready", stock
        assert not flag.exists()  # the fault really fired
    assert "dying before acknowledging" in "".join(
        path.read_text() for path in (stack.data_dir / "logs").glob("*.log")
    )
    # Exactly one logo object per stock, each the one its stock names: nothing orphaned.
    assert logo_keys(stack) == sorted(
        [f"logos/CRSH/{upload_id}.webp", *[k for k in logo_keys(stack) if "/WARM/" in k]]
    )
    assert len([k for k in logo_keys(stack) if "/WARM/" in k]) == 1
