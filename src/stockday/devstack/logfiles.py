"""The stack's log files: every child's output through a pipe into a file that rotates by size.

The supervisor is the one writer of each file (``<name>.log`` in the log directory), so the
standard library's RotatingFileHandler can rename it safely: a child writing to the file
itself would keep writing into the renamed one. Each child's stdout and stderr are one pipe,
read by the supervisor's loop whenever it waits (``Stack.pause``) and copied a line at a time,
so that a rotation never splits a line. Whatever a child still wrote before it exited is read
to the end before its pipe is closed, and a restarted child appends to the same file.

A pipe holds a megabyte when the kernel allows it (64 kB otherwise): while the supervisor is
stopped (Ctrl-Z), a child may log that much before its writes wait.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import select
import time
from dataclasses import dataclass
from logging.handlers import RotatingFileHandler
from pathlib import Path

# Longest partial line kept waiting for its end; beyond it, the part is written as it is.
MAX_LINE_BYTES = 64 * 1024
READ_BYTES = 256 * 1024
PIPE_BYTES = 1024 * 1024
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


class LogFile:
    """One child's log file, rotated by size."""

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self.path = path
        self.handler = RotatingFileHandler(
            path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
        )
        self.handler.setFormatter(logging.Formatter("%(message)s"))
        self.handler.terminator = ""  # the lines keep their own line ends

    def write(self, lines: bytes) -> None:
        # Line by line, so that the file is rotated between two lines and never grows much
        # past its size; the handler flushes after each.
        for line in lines.decode("utf-8", "backslashreplace").splitlines(keepends=True):
            self.handler.emit(logging.makeLogRecord({"msg": line}))

    def close(self) -> None:
        self.handler.close()


@dataclass
class Feed:
    """One run of a child: the read end of its pipe, and a line it has not finished yet."""

    log: LogFile
    partial: bytes = b""

    def take(self, data: bytes) -> None:
        """Write the complete lines of ``data``; keep a trailing partial line for later."""
        data = self.partial + data
        end = data.rfind(b"\n") + 1
        if end == 0 and len(data) > MAX_LINE_BYTES:
            end = len(data)
        self.partial = data[end:]
        if end:
            self.log.write(data[:end])

    def finish(self) -> None:
        """The writer is gone: its last words, even without a line end."""
        if self.partial:
            self.log.write(self.partial + b"\n")
            self.partial = b""


class LogFiles:
    """Every child's log file and the pipes that feed them, by the child's name."""

    def __init__(self, directory: Path, max_bytes: int, backups: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.backups = backups
        self.files: dict[str, LogFile] = {}
        self.pipes: dict[int, Feed] = {}  # read end -> the run it carries

    def pipe_for(self, name: str) -> int:
        """A new pipe into ``name``'s log file; its write end, for the child's stdout and
        stderr, which the caller closes once the child has it."""
        if name not in self.files:
            path = self.directory / f"{name}.log"
            self.files[name] = LogFile(path, self.max_bytes, self.backups)
        read, write = os.pipe()
        with contextlib.suppress(OSError):  # a smaller pipe only means an earlier wait
            fcntl.fcntl(write, F_SETPIPE_SZ, PIPE_BYTES)
        os.set_blocking(read, False)
        self.pipes[read] = Feed(self.files[name])
        return write

    def readable(self) -> list[int]:
        return list(self.pipes)

    def read(self, ready: list[int]) -> None:
        """Copy what is waiting in the ``ready`` pipes; close those whose writers are gone."""
        for fd in ready:
            if fd in self.pipes:
                self._read_one(fd)

    def _read_one(self, fd: int) -> None:
        feed = self.pipes[fd]
        try:
            data = os.read(fd, READ_BYTES)
        except BlockingIOError:
            return
        if data:
            feed.take(data)
            return
        feed.finish()
        del self.pipes[fd]
        os.close(fd)

    def close(self, timeout: float = 2.0) -> None:
        """Read every pipe to its end (the children have exited; a pipe still open after
        ``timeout`` is left unread), then close the files."""
        deadline = time.monotonic() + timeout
        while self.pipes and (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select(list(self.pipes), [], [], left)
            self.read(ready)
        for fd, feed in self.pipes.items():
            feed.finish()
            os.close(fd)
        self.pipes.clear()
        for log in self.files.values():
            log.close()
