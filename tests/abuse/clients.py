"""Abusive clients, written on raw sockets: HTTP libraries do not send a request a byte at a
time, nor keep sending a body after the server has answered."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field

# A request that never ends: its headers go on forever, one byte at a time.
SLOW_HEADERS = b"GET / HTTP/1.1\r\nHost: stockday.test\r\n"
SLOW_HEADER_BYTES = b"X-Slow: " + b"a" * 4000
# Or its headers arrive whole and its body a byte at a time.
SLOW_BODY = (
    b"POST /stocks HTTP/1.1\r\nHost: stockday.test\r\n"
    b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\n"
)
SLOW_BODY_BYTES = b"a"
# Connections sent their byte together; the rest of the interval is spread between batches.
TRICKLE_BATCH = 10


@dataclass
class SlowConnection:
    sock: socket.socket
    opened_at: float
    closed_at: float | None = None
    answer: bytes = b""
    sent: int = 0


@dataclass
class SlowClients:
    """``count`` connections to ``host:port`` from the ``sources`` addresses in turn, each
    sending its request one byte every ``interval`` seconds, from a thread of its own.
    Records when the server closed each one and what it answered first."""

    host: str
    port: int
    count: int
    sources: list[str]
    interval: float = 1.0
    start: bytes = SLOW_HEADERS  # sent at once
    trickle: bytes = SLOW_HEADER_BYTES  # then a byte of it at a time, over and over
    connections: list[SlowConnection] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> SlowClients:
        selector = selectors.DefaultSelector()
        for number in range(self.count):
            sock = socket.socket()
            sock.settimeout(5)
            sock.bind((self.sources[number % len(self.sources)], 0))
            connection = SlowConnection(sock, time.monotonic())
            self.connections.append(connection)
            try:
                sock.connect((self.host, self.port))
                sock.sendall(self.start)
            except ConnectionError:  # refused as soon as accepted
                connection.closed_at = time.monotonic()
                continue
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ, connection)
        self._thread = threading.Thread(target=self._trickle, args=(selector,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for connection in self.connections:
            connection.sock.close()

    def open(self) -> list[SlowConnection]:
        return [c for c in self.connections if c.closed_at is None]

    def _trickle(self, selector: selectors.BaseSelector) -> None:
        """A byte to every open connection each interval, spread evenly over it: a steady
        trickle, not a burst a second."""
        slots = max(1, len(self.connections) // TRICKLE_BATCH)
        next_send, slot = time.monotonic(), 0
        while not self._stop.is_set():
            for key, _ in selector.select(timeout=max(0.0, next_send - time.monotonic())):
                self._closed(selector, key.data)
            if time.monotonic() >= next_send:
                for connection in self.connections[slot::slots]:
                    if connection.closed_at is None:
                        self._send_byte(selector, connection)
                slot = (slot + 1) % slots
                next_send += self.interval / slots

    @staticmethod
    def _closed(selector: selectors.BaseSelector, connection: SlowConnection) -> None:
        """The server answered or closed: a slow client only ever learns that it was dropped."""
        with contextlib.suppress(OSError):
            connection.answer = connection.sock.recv(256)
        connection.closed_at = time.monotonic()
        selector.unregister(connection.sock)

    def _send_byte(self, selector: selectors.BaseSelector, connection: SlowConnection) -> None:
        byte = self.trickle[connection.sent % len(self.trickle)]
        try:
            connection.sent += connection.sock.send(bytes([byte]))
        except BlockingIOError:
            pass
        except OSError:
            self._closed(selector, connection)


@dataclass(frozen=True)
class BodyOutcome:
    status: int | None  # the answer's status code, None if none could be read
    answered_while_sending: bool  # the answer was readable before the body was all sent
    error: str | None  # the socket error met while sending or reading, if any
    head: bytes = b""  # the answer's first bytes: status line, headers, some body

    @property
    def content_type(self) -> str:
        for line in self.head.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-type":
                return value.strip().decode("latin-1").split(";")[0]
        return ""


def send_oversize_body(
    host: str,
    port: int,
    path: str,
    size: int,
    *,
    chunked: bool,
    headers: dict[str, str] | None = None,
    chunk_bytes: int = 256 * 1024,
) -> BodyOutcome:
    """POST ``size`` bytes the way a browser does (no ``Expect: 100-continue``): the whole body
    is sent, then the answer read. Whether an answer arrives while the body is still going out
    is noted, without stopping the sending."""
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    head = (
        f"POST {path} HTTP/1.1\r\nHost: stockday.test\r\n"
        f"Content-Type: application/octet-stream\r\n{framing}\r\n{extra}\r\n"
    )
    payload = b"x" * chunk_bytes
    with socket.create_connection((host, port), timeout=30) as sock:
        answered_early = False
        try:
            sock.sendall(head.encode("latin-1"))
            for offset in range(0, size, chunk_bytes):
                piece = payload[: min(chunk_bytes, size - offset)]
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                answered_early = answered_early or _readable(sock)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
            answer = sock.recv(4096)
        except OSError as exc:
            return BodyOutcome(None, answered_early, f"{type(exc).__name__}: {exc}")
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else None
    return BodyOutcome(status, answered_early, None, answer)


def _readable(sock: socket.socket) -> bool:
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ)
        return bool(selector.select(timeout=0))
