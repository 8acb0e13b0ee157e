"""Programs a test runs (memcached, HAProxy, wrk, chromium): found, or the test cannot run.

Locally a missing program skips the test; under CI (``CI=true``), which installs them all, it
fails it, so that nothing is silently left out there.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def find_program(name: str) -> str | None:
    """``name`` on PATH, or in the system directories a non-root PATH may leave out."""
    return shutil.which(name) or next(
        (str(p) for d in ("/usr/bin", "/usr/sbin") if (p := Path(d) / name).exists()), None
    )


def require_program(name: str, package: str | None = None) -> str:
    """The program's path; skips the test without it locally, fails it under CI."""
    found = find_program(name)
    if found is not None:
        return found
    message = f"{name} is not installed (Debian package {package or name}; .ci/run installs it)"
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


def require_root(why: str) -> None:
    """Root, for a test that changes the firewall: skips without it locally, fails under CI."""
    if os.geteuid() == 0:
        return
    message = f"{why}, which needs root"
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)
