"""The supervisor's liveness probe: one ``GET /api/ping`` on a non-blocking socket.

By hand rather than with httpx: the supervisor must never wait on a hung child, and it must
not start threads (children are spawned with a ``preexec_fn``, unsafe once threads exist). The
probe is advanced a step on each supervisor pass.
"""

from __future__ import annotations

import errno
import socket

PROBE_TIMEOUT_SECONDS = 1.0


class PingProbe:
    def __init__(self, host: str, port: int, now: float, source: str | None = None) -> None:
        self.started = now
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setblocking(False)
        request = f"GET /api/ping HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
        self._unsent = request.encode()
        self._received = b""
        self._refused = False
        try:
            if source is not None:  # from inside the replica's zone
                self._socket.bind((source, 0))
            self._refused = self._socket.connect_ex((host, port)) not in (0, errno.EINPROGRESS)
        except OSError:
            self._refused = True

    def poll(self, now: float) -> bool | None:
        """True once answered 200; False if refused, broken or late; None while waiting."""
        if self._refused:
            return False
        try:
            while self._unsent:  # EAGAIN until the connection is established
                self._unsent = self._unsent[self._socket.send(self._unsent) :]
            while b"\r\n" not in self._received and len(self._received) < 1024:
                chunk = self._socket.recv(1024)
                if not chunk:
                    break
                self._received += chunk
        except BlockingIOError:
            return None if now - self.started < PROBE_TIMEOUT_SECONDS else False
        except OSError:
            return False
        status = self._received.split(b"\r\n", 1)[0].split()
        return len(status) >= 2 and status[0].startswith(b"HTTP/") and status[1] == b"200"

    def close(self) -> None:
        self._socket.close()
