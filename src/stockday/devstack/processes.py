"""Processes of a running stack, seen through psutil: parents, children, commands, states. One
view for the failure tests and the benchmarks alike.

Every function answers for a process that is gone (None, False, empty) instead of raising.
"""

from __future__ import annotations

import psutil

GONE = (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


def state(pid: int) -> str | None:
    """psutil's status ("running", "sleeping", "stopped", "zombie"...), None if it is gone."""
    process = _process(pid)
    try:
        return process.status() if process else None
    except psutil.Error:
        return None


def alive(pid: int) -> bool:
    """Running or stopped: neither gone nor a zombie waiting to be reaped."""
    return state(pid) not in (None, *GONE)


def stopped(pid: int) -> bool:
    """Stopped by a signal (SIGSTOP, SIGTSTP): alive, but running nothing."""
    return state(pid) == psutil.STATUS_STOPPED


def parent(pid: int) -> int | None:
    process = _process(pid)
    try:
        return process.ppid() if process else None
    except psutil.Error:
        return None


def children(pid: int) -> list[int]:
    """Direct children of ``pid``, zombies included."""
    process = _process(pid)
    try:
        return sorted(child.pid for child in process.children()) if process else []
    except psutil.Error:
        return []


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid``."""
    process = _process(pid)
    try:
        below = process.children(recursive=True) if process else []
    except psutil.Error:
        return set()
    return {child.pid for child in below if alive(child.pid)}


def command_line(pid: int) -> bytes:
    """The raw command line (arguments separated by NUL), empty if the process is gone."""
    process = _process(pid)
    try:
        return "\0".join(process.cmdline()).encode() if process else b""
    except psutil.Error:
        return b""


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process (all its threads) so far; ProcessLookupError if
    it is gone."""
    process = _process(pid)
    try:
        if process is None:
            raise ProcessLookupError(pid)
        times = process.cpu_times()
    except psutil.Error:
        raise ProcessLookupError(pid) from None
    return times.user + times.system
