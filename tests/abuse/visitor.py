"""A visitor in a process of its own, so that the slow clients' thread in the test process
cannot delay its requests (they would share one interpreter lock).

``python -m tests.abuse.visitor URL COUNT`` warms up, prints ``ready``, then for every line it
reads asks for URL COUNT times, each on a new connection, and prints one JSON line: the
statuses and the seconds each request took. It ends at the end of its input.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from types import TracebackType

import httpx

WARM_UP_REQUESTS = 10
READY = "ready"


@dataclass(frozen=True)
class Visits:
    statuses: list[int]
    seconds: list[float]


def visit(browser: httpx.Client, url: str, count: int) -> Visits:
    statuses, seconds = [], []
    for _ in range(count):
        started = time.perf_counter()
        try:
            statuses.append(browser.get(url).status_code)
        except httpx.HTTPError:
            statuses.append(0)
        seconds.append(time.perf_counter() - started)
    return Visits(statuses, seconds)


class Visitor:
    """``with Visitor(url, count) as visitor: visitor.visit()``: the process started and warmed
    up on entry, each ``visit()`` one round of requests, the process ended on exit."""

    def __init__(self, url: str, count: int, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.abuse.visitor", url, str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def __enter__(self) -> Visitor:
        assert self._line() == READY
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def visit(self) -> Visits:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        return Visits(**json.loads(self._line()))

    def _line(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, f"the visitor exited with {self.process.wait(timeout=self.timeout)}"
        return line.strip()


def main(url: str, count: int) -> None:
    with httpx.Client(timeout=5, limits=httpx.Limits(max_keepalive_connections=0)) as browser:
        for _ in range(WARM_UP_REQUESTS):
            browser.get(url)
        print(READY, flush=True)
        for _ in sys.stdin:
            done = visit(browser, url, count)
            print(json.dumps({"statuses": done.statuses, "seconds": done.seconds}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
