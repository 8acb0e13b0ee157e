"""Run an operation on a directory that really cannot be written, as root too.

Root ignores permission bits, not a read-only mount: as root the operation runs in a child
process inside a private mount namespace where the directory is a read-only bind mount (the
mount is gone with the child). Any other user gets the directory and its files without write
permission, given back afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.support.programs import require_program

ROOT = Path(__file__).resolve().parents[2]

# $0 is the directory, "$@" the command to run once it is mounted read-only.
_MOUNT_READ_ONLY = 'mount --bind "$0" "$0"; mount -o remount,bind,ro "$0" "$0"; exec "$@"'
_CALL = (
    "import importlib, pathlib, sys; "
    "getattr(importlib.import_module(sys.argv[1]), sys.argv[2])(pathlib.Path(sys.argv[3]))"
)


def run_read_only(directory: Path, operation: Callable[[Path], None]) -> None:
    """``operation(directory)`` while nothing in ``directory`` can be written.

    ``operation`` is a module-level function (as root it is imported again in the child) that
    raises, an assertion for instance, when it does not see what it should.
    """
    if os.geteuid() == 0:
        _run_in_read_only_mount(directory, operation)
        return
    modes = {path: path.stat().st_mode for path in [directory, *directory.iterdir()]}
    for path, mode in modes.items():
        path.chmod(mode & ~0o222)
    try:
        operation(directory)
    finally:
        for path, mode in modes.items():
            path.chmod(mode)


def _run_in_read_only_mount(directory: Path, operation: Callable[[Path], None]) -> None:
    unshare = require_program("unshare", "util-linux")
    command = [
        *(unshare, "--mount", "--propagation", "private", "--", "sh", "-ec"),
        *(_MOUNT_READ_ONLY, str(directory)),
        *(sys.executable, "-c", _CALL, operation.__module__, operation.__qualname__),
        str(directory),
    ]
    child = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert child.returncode == 0, child.stdout + child.stderr
