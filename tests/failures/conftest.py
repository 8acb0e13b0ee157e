"""A stack of its own for each failure test, started as a process on the local backends."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.failures.processes import resume, stopped_below
from tests.support.stack import RunningStack, free_port_base

StartStack = Callable[..., RunningStack]


@pytest.fixture
def start_stack(tmp_path: Path) -> Iterator[StartStack]:
    """Starts a stack with extra environment; stops it afterwards, leaving nothing stopped."""
    started: list[RunningStack] = []

    def start(**env: str) -> RunningStack:
        stack = RunningStack(tmp_path / "data", free_port_base())
        stack.env.update(env)
        stack.start()
        started.append(stack)
        return stack

    yield start
    for stack in started:
        process = stack.process
        if process is None or process.poll() is not None:
            continue
        # Whatever a failed test left stopped is resumed, so the stack can stop gracefully.
        left_stopped = stopped_below(process.pid)
        for pid in left_stopped:
            resume(pid)
        assert stack.stop() == 0, stack.output()
        assert not left_stopped, f"processes left stopped by the test: {left_stopped}"
