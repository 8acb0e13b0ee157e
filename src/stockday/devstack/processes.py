"""Processes seen through Linux's /proc: parents, children, commands, uvicorn's workers.

One reading of /proc for `stockday status`, the failure tests and the benchmarks alike.
"""

from __future__ import annotations

from pathlib import Path


def stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first), None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may itself hold ")" or spaces.
    return text[text.rindex(")") + 2 :].split()


def state(pid: int) -> str | None:
    """The state letter (R, S, T for stopped, Z for zombie...), None if the process is gone."""
    fields = stat_fields(pid)
    return fields[0] if fields else None


def alive(pid: int) -> bool:
    """Running or stopped: neither gone nor a zombie waiting to be reaped."""
    return state(pid) not in (None, "Z", "X")


def parent(pid: int) -> int | None:
    fields = stat_fields(pid)
    return int(fields[1]) if fields else None


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (forked by any of its threads), zombies included."""
    found: set[int] = set()
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return []
    for task in tasks:
        try:
            found.update(int(p) for p in (task / "children").read_text().split())
        except OSError:
            continue
    return sorted(found)


def command_line(pid: int) -> bytes:
    """The raw command line (arguments separated by NUL), empty if the process is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def is_uvicorn_worker(pid: int) -> bool:
    """A uvicorn worker is a multiprocessing "spawn" child of its master; the master's other
    child, multiprocessing's resource tracker, is not."""
    return b"spawn_main" in command_line(pid)


def uvicorn_workers(master: int) -> set[int]:
    """The live workers of a uvicorn master."""
    return {p for p in children(master) if alive(p) and is_uvicorn_worker(p)}
