"""One stack for the abuse tests, started as processes. Its header timeout is set (15 s) to
hold a thousand slow connections through a visitor's two hundred requests on a busy machine,
then to close them all within the test's time; its per-address limit is small enough to reach."""

from __future__ import annotations

import resource
from collections.abc import Iterator

import pytest

from tests.support.stack import RunningStack

HEADER_TIMEOUT_SECONDS = 15.0
PER_SOURCE_LIMIT = 60
# Sockets this process opens at once: the slow clients, their spares and the test's own.
OPEN_FILES_NEEDED = 4096


@pytest.fixture(scope="package")
def abuse_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    raise_open_files_limit(OPEN_FILES_NEEDED)
    stack = RunningStack(
        tmp_path_factory.mktemp("abuse") / "data",
        env={
            "STOCKDAY_EDGE_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT_SECONDS),
            "STOCKDAY_EDGE_MAX_CONNECTIONS_PER_SOURCE": str(PER_SOURCE_LIMIT),
        },
    )
    stack.start()
    try:
        yield stack
    finally:
        assert stack.stop() == 0, stack.output()


def raise_open_files_limit(needed: int) -> None:
    """Raise this process's soft RLIMIT_NOFILE to ``needed``; fail clearly if the hard limit is
    lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard == resource.RLIM_INFINITY or hard >= needed, (
        f"the abuse tests open {needed} sockets; the hard limit of open files is {hard}"
    )
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
