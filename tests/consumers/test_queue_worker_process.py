"""queue-worker as its own process runs the upload janitor beside its consumer loop."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from stockday.domain.stocks import upload_key
from stockday.objects.filesystem import FilesystemObjectStore
from stockday.runtime.settings import Settings
from tests.support.waiting import wait_for_line


def test_queue_worker_sweeps_expired_uploads_and_stops_cleanly(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    store = FilesystemObjectStore(settings.objects_dir)
    old, young = upload_key("old"), upload_key("young")
    for key in (old, young):
        asyncio.run(store.put(key, b"raw", content_type="image/png"))
    then = time.time() - 3600
    os.utime(settings.objects_dir / "data" / old, (then, then))

    env = {
        **os.environ,
        "STOCKDAY_DATA_DIR": str(tmp_path),
        "STOCKDAY_UPLOAD_RETENTION_SECONDS": "600",
        "STOCKDAY_JANITOR_INTERVAL_SECONDS": "0.5",  # the first sweep comes after at most this
        "STOCKDAY_QUEUE_WAIT_SECONDS": "0.2",
        "STOCKDAY_SYMBOL_URL": "http://127.0.0.1:9",  # never called: no events are queued
        "STOCKDAY_LOG_FORMAT": "text",
    }
    log_path = tmp_path / "queue-worker.log"
    with open(log_path, "w") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "stockday.queue_worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        wait_for_line(log_path, "janitor deleted", 20, worker)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0, log_path.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert not asyncio.run(store.exists(old))
    assert asyncio.run(store.exists(young))
    assert "janitor deleted 1 of 2 raw uploads" in log_path.read_text()
