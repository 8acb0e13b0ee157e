"""A visitor in a process of its own, so that the slow clients' thread in the test process
cannot delay its requests: ``python -m tests.abuse.visitor URL COUNT`` asks for URL COUNT times,
each on a new connection, and prints one JSON object: the statuses and the seconds each took."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass

import httpx

WARM_UP_REQUESTS = 10


@dataclass(frozen=True)
class Visits:
    statuses: list[int]
    seconds: list[float]


def visit(url: str, count: int) -> Visits:
    statuses, seconds = [], []
    with httpx.Client(timeout=5, limits=httpx.Limits(max_keepalive_connections=0)) as browser:
        for _ in range(WARM_UP_REQUESTS):
            browser.get(url)
        for _ in range(count):
            started = time.perf_counter()
            try:
                statuses.append(browser.get(url).status_code)
            except httpx.HTTPError:
                statuses.append(0)
            seconds.append(time.perf_counter() - started)
    return Visits(statuses, seconds)


def visit_in_a_process(url: str, count: int, timeout: float = 60.0) -> Visits:
    ran = subprocess.run(
        [sys.executable, "-m", "tests.abuse.visitor", url, str(count)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    return Visits(**json.loads(ran.stdout))


if __name__ == "__main__":
    done = visit(sys.argv[1], int(sys.argv[2]))
    print(json.dumps({"statuses": done.statuses, "seconds": done.seconds}))
