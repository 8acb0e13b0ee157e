"""memcached cache: the AWS adapter of the Cache port (ElastiCache for memcached), on aiomcache.

The cache is an optimisation, never a dependency. Every call is bounded by ``timeout_seconds``;
any failure is a miss (get) or is swallowed (set, delete), and is counted. A server that failed
is skipped for ``backoff_seconds`` (no network at all, so a dead memcached costs microseconds,
not a timeout per request); then one call probes it again while the others keep skipping, and
its success puts the server back in use. This is a small hand-written back-off because no
circuit-breaker library is among our dependencies, and the cache needs only this much.

Several servers: an aiomcache client talks to one server, so there is one client per server and
each key belongs to one of them by rendezvous hashing (highest hash of server and key wins). The
choice is stable across processes and independent of the order servers are listed in, and adding
or removing a server moves only that server's share of the keys. A key whose server is down just
misses; it is not moved to another server, which would serve stale copies once the first server
is back. List the node endpoints (not the cluster's configuration endpoint, which needs the
auto-discovery protocol).

Keys: memcached takes at most 250 bytes of printable ASCII without spaces. Keys that do not fit
(after ``key_prefix``) are replaced by ``<prefix>#<sha256 hex>``; literal keys never start with
``#``, so a hashed key cannot collide with a literal one.

TTLs: memcached reads an expiry above 30 days as a Unix timestamp, so longer TTLs are sent as
``now + ttl`` (which relies on the server's clock being in sync, as it is on ElastiCache).

Values above ``max_value_bytes`` (default just under memcached's 1 MB item limit) are not sent:
the set is counted as an error and the server stays in use.

Metrics: ``stockday_cache_{hits,misses,errors}_total{backend="memcached"}``. Every get is one
hit or one miss (a failed get is a miss too); errors counts the operations that failed or were
skipped while their server backed off. The same ``hits``, ``misses`` and ``errors`` are kept on
the instance, as MemoryCache keeps its own.

aiomcache 0.8.2 quirks handled here:

- a call cut short (timeout, cancellation) puts its connection back into the pool with the reply
  still unread, and the next call on it reads that stale reply; so an interrupted call closes the
  pool's idle connections;
- set and delete spin forever, without yielding to the event loop (so no timeout can stop them),
  when the server closes the connection before answering (aio-libs/aiomcache#502): _Client
  replaces the method at fault until a fixed release is out;
- the pool never grows past ``pool_minsize``, so the pool is fixed at ``pool_size`` connections
  per server, opened on first use.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

import aiomcache
from aiomcache.pool import Connection

from stockday.cache.base import CACHE_ERRORS, CACHE_HITS, CACHE_MISSES

__all__ = ["MemcachedCache"]

log = logging.getLogger("stockday.cache.memcached")

T = TypeVar("T")

BACKEND: Final = "memcached"
# Bound once: labels() is a locked lookup, not worth paying on every call.
_HITS = CACHE_HITS.labels(BACKEND)
_MISSES = CACHE_MISSES.labels(BACKEND)
_ERRORS = CACHE_ERRORS.labels(BACKEND)
DEFAULT_PORT = 11211
# memcached's default item limit is 1 MiB including the key and an item header.
DEFAULT_MAX_VALUE_BYTES = 1_000_000
MAX_KEY_BYTES = 250
MAX_RELATIVE_EXPTIME = 30 * 24 * 3600  # above this, memcached reads exptime as a Unix time
_HASHED_MARK = "#"
_HASHED_KEY_CHARS = len(_HASHED_MARK) + 64
# Printable ASCII without the space: what memcached's text protocol takes in a key.
_LITERAL_KEY = re.compile(r"[!-~]*")


def parse_servers(servers: str) -> list[tuple[str, int]]:
    """``"host:port[,host:port...]"`` -> [(host, port)]; the port defaults to 11211.

    IPv6 addresses go in brackets (``[::1]:11211``). Raises ValueError on a malformed list.
    """
    parsed: list[tuple[str, int]] = []
    for item in (part.strip() for part in servers.split(",")):
        if not item:
            continue
        host, port_text = item, str(DEFAULT_PORT)
        if item.startswith("["):
            host, bracket, rest = item[1:].partition("]")
            if not bracket or (rest and not rest.startswith(":")):
                raise ValueError(f"malformed memcached server {item!r} (expected [ipv6]:port)")
            port_text = rest[1:] or port_text
        elif ":" in item:
            host, _, port_text = item.rpartition(":")
        if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"malformed memcached server {item!r} (expected host:port)")
        if (host, int(port_text)) not in parsed:
            parsed.append((host, int(port_text)))
    if not parsed:
        raise ValueError("no memcached server given (expected host:port[,host:port...])")
    return parsed


class _Client(aiomcache.Client):
    """aiomcache's client, failing instead of spinning when the server hangs up mid-reply."""

    async def _execute_simple_command(self, conn: Connection, raw_command: bytes) -> bytes:
        # The original loops on readline() until a line ends in CRLF; at end of stream
        # readline() returns b"" at once, forever (aio-libs/aiomcache#502).
        conn.writer.write(raw_command)
        await conn.writer.drain()
        response = bytearray()
        while not response.endswith(b"\r\n"):
            line = await conn.reader.readline()
            if not line:
                raise ConnectionResetError("memcached closed the connection before answering")
            response.extend(line)
        return bytes(response[:-2])


class _Server:
    """One memcached server: its client and its back-off state."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        pool_size: int,
        backoff_seconds: float,
        clock: Callable[[], float],
    ) -> None:
        self.address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.seed = self.address.encode("utf-8")
        # Connects lazily: constructing it never touches the network.
        self.client = _Client(host, port, pool_size=pool_size, pool_minsize=pool_size)
        self._backoff_seconds = backoff_seconds
        self._clock = clock
        self._failing = False
        self._retry_at = 0.0

    def available(self) -> bool:
        """False while backing off; the first call after the back-off becomes the probe."""
        if not self._failing:
            return True
        now = self._clock()
        if now < self._retry_at:
            return False
        self._retry_at = now + self._backoff_seconds  # the others keep skipping meanwhile
        return True

    def succeeded(self) -> None:
        if self._failing:
            self._failing = False
            log.info("memcached %s is back", self.address)

    def failed(self, exc: BaseException) -> None:
        if not self._failing:
            log.warning(
                "memcached %s failed (%s); skipping it for %.1f s",
                self.address,
                f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
                self._backoff_seconds,
            )
        self._failing = True
        self._retry_at = self._clock() + self._backoff_seconds

    async def drop_idle_connections(self) -> None:
        # Closes only idle connections; aiomcache opens new ones on the next call.
        await self.client.close()


class MemcachedCache:
    """Cache port on one or more memcached servers; see the module docstring."""

    def __init__(
        self,
        servers: str,
        *,
        timeout_seconds: float = 0.2,
        key_prefix: str = "stockday:",
        backoff_seconds: float = 2.0,
        pool_size: int = 4,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")
        if backoff_seconds < 0:
            raise ValueError("backoff_seconds must not be negative")
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        if not _LITERAL_KEY.fullmatch(key_prefix):
            raise ValueError("key_prefix must be printable ASCII without spaces")
        if len(key_prefix) + _HASHED_KEY_CHARS > MAX_KEY_BYTES:
            raise ValueError(
                f"key_prefix must be at most {MAX_KEY_BYTES - _HASHED_KEY_CHARS} bytes"
            )
        self._servers = [
            _Server(host, port, pool_size=pool_size, backoff_seconds=backoff_seconds, clock=clock)
            for host, port in parse_servers(servers)
        ]
        self._timeout = timeout_seconds
        self._prefix = key_prefix
        self._max_value_bytes = max_value_bytes
        self.hits = 0
        self.misses = 0
        self.errors = 0

    # -- the port ---------------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        """The cached value; None on a miss, a failure or while the key's server backs off."""
        wire_key = self.wire_key(key)
        value = await self._call(wire_key, lambda client: client.get(wire_key))
        if value is None:
            self.misses += 1
            _MISSES.inc()
            return None
        self.hits += 1
        _HITS.inc()
        return value

    async def set(self, key: str, value: bytes, *, ttl_seconds: int) -> None:
        """Store for ``ttl_seconds``; a TTL of 0 or less drops the key. Never raises."""
        if ttl_seconds <= 0:
            await self.delete(key)
            return
        wire_key = self.wire_key(key)
        data = bytes(value)
        if len(data) > self._max_value_bytes:
            # memcached would refuse it; that says nothing about the server's health.
            log.debug("not caching %s: %d bytes is over the item limit", key, len(data))
            self._count_error()
            return
        exptime = memcached_exptime(ttl_seconds)
        await self._call(wire_key, lambda client: client.set(wire_key, data, exptime=exptime))

    async def delete(self, key: str) -> None:
        """Drop the key; a missing key is fine. Never raises."""
        wire_key = self.wire_key(key)
        await self._call(wire_key, lambda client: client.delete(wire_key))

    async def close(self) -> None:
        for server in self._servers:
            await server.drop_idle_connections()

    # -- helpers ----------------------------------------------------------------------------

    def wire_key(self, key: str) -> bytes:
        """The key as sent to memcached: prefixed, and hashed when memcached cannot take it."""
        full = self._prefix + key
        if (
            len(full) <= MAX_KEY_BYTES
            and not key.startswith(_HASHED_MARK)
            and _LITERAL_KEY.fullmatch(full)
        ):
            return full.encode("ascii")
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        return f"{self._prefix}{_HASHED_MARK}{digest}".encode("ascii")

    def server_for(self, wire_key: bytes) -> str:
        """The address of the server that holds ``wire_key``."""
        return self._route(wire_key).address

    def _route(self, wire_key: bytes) -> _Server:
        if len(self._servers) == 1:
            return self._servers[0]
        return max(
            self._servers,
            key=lambda server: hashlib.blake2b(
                server.seed + b"\0" + wire_key, digest_size=8
            ).digest(),
        )

    async def _call(
        self, wire_key: bytes, operation: Callable[[aiomcache.Client], Awaitable[T]]
    ) -> T | None:
        """Run ``operation`` on the key's server within the timeout; None when it failed."""
        server = self._route(wire_key)
        if not server.available():
            self._count_error()
            return None
        try:
            async with asyncio.timeout(self._timeout):
                result = await operation(server.client)
        except asyncio.CancelledError:
            await server.drop_idle_connections()  # the interrupted reply is still in the socket
            raise
        except Exception as exc:  # any failure is a miss: the cache never fails its caller
            if isinstance(exc, TimeoutError):
                await server.drop_idle_connections()
            server.failed(exc)
            self._count_error()
            return None
        server.succeeded()
        return result

    def _count_error(self) -> None:
        self.errors += 1
        _ERRORS.inc()


def memcached_exptime(ttl_seconds: int) -> int:
    """memcached's exptime for a TTL: relative up to 30 days, an absolute Unix time beyond."""
    if ttl_seconds <= MAX_RELATIVE_EXPTIME:
        return ttl_seconds
    return int(time.time()) + ttl_seconds
