"""Waiting for something to happen: polled, with a deadline, never a bare sleep."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def wait_until(
    condition: Callable[[], object],
    timeout: float,
    explain: Callable[[], str] = lambda: "condition not met in time",
    *,
    process: subprocess.Popen[bytes] | subprocess.Popen[str] | None = None,
    interval: float = 0.05,
) -> None:
    """Poll ``condition`` until it is true; fail with ``explain()`` at the deadline, or as soon
    as ``process`` (whose work it waits for) has exited."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert process is None or process.poll() is None, f"exited: {explain()}"
        assert time.monotonic() < deadline, explain()
        time.sleep(interval)


def wait_for_line(
    log: Path,
    text: str,
    timeout: float,
    process: subprocess.Popen[bytes] | subprocess.Popen[str] | None = None,
) -> None:
    """Until ``text`` appears in the ``log`` a process writes; the log is the failure message."""
    wait_until(lambda: text in log.read_text(), timeout, log.read_text, process=process)
