"""MemcachedCache beyond the contract: a dead memcached is slower by one timeout, not broken."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from stockday.cache.memcached import (
    MAX_RELATIVE_EXPTIME,
    MemcachedCache,
    memcached_exptime,
    parse_servers,
)
from tests.support.clock import FakeClock
from tests.support.ports import free_port
from tests.support.servers import ServerProcess, memcached_server, stop

pytestmark = pytest.mark.anyio

TIMEOUT = 0.2
# For live servers in tests of where keys go, not of timeouts: a busy machine can take longer
# than TIMEOUT to answer a fresh connection, and a miss would then look like a misplaced key.
LIVE_TIMEOUT = 5.0
BACKOFF = 2.0


def unique_prefix() -> str:
    return f"test-{uuid.uuid4().hex}:"


def new_cache(address: str, clock: FakeClock, **options: int) -> MemcachedCache:
    return MemcachedCache(
        address,
        timeout_seconds=TIMEOUT,
        backoff_seconds=BACKOFF,
        key_prefix=unique_prefix(),
        clock=clock,
        **options,
    )


def all_threads_stopped(process: subprocess.Popen[bytes]) -> bool:
    tasks = Path(f"/proc/{process.pid}/task").iterdir()
    # /proc/<pid>/task/<tid>/stat: "tid (name) state ..."; "T" is stopped.
    states = [(task / "stat").read_text().rpartition(")")[2].split()[0] for task in tasks]
    return all(state == "T" for state in states)


@contextmanager
def paused(process: subprocess.Popen[bytes]) -> Iterator[None]:
    """SIGSTOP a server and wait until every one of its threads is stopped; SIGCONT it after."""
    process.send_signal(signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 5
        while not all_threads_stopped(process):
            assert time.monotonic() < deadline, "server did not stop"
            time.sleep(0.001)
        yield
    finally:
        process.send_signal(signal.SIGCONT)


async def request_waiting_at(port: int) -> None:
    """Poll until bytes sent to the (stopped) server on ``port`` wait unread in its socket:
    the kernel's receive queue of the accepted connection, from /proc/net/tcp."""
    deadline = time.monotonic() + 5
    while True:
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rpartition(":")[2], 16)
            unread = int(fields[4].partition(":")[2], 16)
            if local_port == port and unread > 0:
                return
        assert time.monotonic() < deadline, "the request never reached the server's socket"
        await asyncio.sleep(0.001)


async def one_connection_cache(
    server: ServerProcess, clock: FakeClock, stored: dict[str, bytes]
) -> MemcachedCache:
    """A cache of ``server`` with a single pooled connection, ``stored`` already set in it."""
    cache = new_cache(server.address, clock, pool_size=1)
    for key, value in stored.items():
        await cache.set(key, value, ttl_seconds=60)
    return cache


async def commands_served(server: ServerProcess, **at_least: int) -> dict[str, int]:
    """memcached's own count of the get and set commands it has served, once it has served
    ``at_least`` of them (it answers ``stats`` after what came before on other connections)."""
    deadline = time.monotonic() + 10
    while True:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"stats\r\n")
        text = (await reader.readuntil(b"END\r\n")).decode()
        writer.close()
        await writer.wait_closed()
        stats = dict(line.split()[1:3] for line in text.splitlines() if line.startswith("STAT"))
        served = {"get": int(stats["cmd_get"]), "set": int(stats["cmd_set"])}
        if all(served[k] >= n for k, n in at_least.items()) or time.monotonic() > deadline:
            return served
        await asyncio.sleep(0.05)


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name, {"backend": "memcached"}) or 0.0


# -- a memcached that dies, hangs or hangs up --------------------------------------------------


async def test_a_stopped_memcached_misses_then_a_restarted_one_is_used_after_the_back_off() -> None:
    clock = FakeClock()
    with memcached_server() as server:
        port = server.port
        cache = new_cache(server.address, clock)
        await cache.set("price:AAPL", b"189.5", ttl_seconds=60)
        assert await cache.get("price:AAPL") == b"189.5"

        server.process.kill()  # kill -9: a crash, not a clean shutdown
        server.process.wait()
        for call in (
            cache.get("price:AAPL"),
            cache.set("price:AAPL", b"190", ttl_seconds=60),
            cache.delete("price:AAPL"),
        ):
            assert await call is None  # a miss, and nothing raised
        assert cache.errors == 3

    with memcached_server(port):
        # Up again, but the cache does not look until the back-off is over: this set is skipped.
        await cache.set("price:AAPL", b"skipped", ttl_seconds=60)
        assert cache.errors == 4
        clock.advance(BACKOFF + 0.1)
        assert await cache.get("price:AAPL") is None  # the probe: a plain miss
        await cache.set("price:AAPL", b"191", ttl_seconds=60)
        assert await cache.get("price:AAPL") == b"191"
        assert cache.errors == 4
        await cache.close()


async def test_a_hung_memcached_costs_one_timeout_then_nothing_during_the_back_off() -> None:
    clock = FakeClock()
    with memcached_server() as server:
        stored = {"price:AAPL": b"189.5", "price:MSFT": b"420.1"}
        cache = await one_connection_cache(server, clock, stored)
        with paused(server.process):  # connections open, no answers
            assert await cache.get("price:AAPL") is None  # sent, then timed out
            assert cache.errors == 1
            for _ in range(50):
                assert await cache.get("price:AAPL") is None
                await cache.set("price:AAPL", b"x", ttl_seconds=60)
            assert cache.errors == 101
        # What reached the server: the two sets and the get that timed out, none of the hundred
        # calls of the back-off (queued in the paused server, they would be counted once it runs).
        assert await commands_served(server, get=1) == {"get": 1, "set": 2}

        # The timed-out get left its reply in the only connection; reading it now as the
        # answer to another key would be a miss (or garbage), so that connection is gone.
        clock.advance(BACKOFF + 0.1)
        assert await cache.get("price:MSFT") == b"420.1"
        assert await cache.get("price:AAPL") == b"189.5"
        await cache.close()


async def test_a_cancelled_call_does_not_leave_its_reply_to_the_next_one() -> None:
    clock = FakeClock()
    with memcached_server() as server:
        cache = await one_connection_cache(server, clock, {"a": b"A", "b": b"B"})
        with paused(server.process):
            pending = asyncio.create_task(cache.get("a"))
            await request_waiting_at(server.port)
            pending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await pending
        assert await cache.get("b") == b"B"  # no back-off: a cancel is not a server failure
        assert cache.errors == 0
        await cache.close()


@pytest.mark.timeout(10)
async def test_a_server_hanging_up_mid_request_is_an_error_not_a_frozen_event_loop() -> None:
    """aiomcache 0.8.2 alone spins forever here (aio-libs/aiomcache#502)."""

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.close()  # no answer

    listener = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    clock = FakeClock()
    cache = new_cache(f"127.0.0.1:{port}", clock)
    try:
        for call in (
            lambda: cache.set("k", b"v", ttl_seconds=60),
            lambda: cache.delete("k"),
            lambda: cache.get("k"),
        ):
            clock.advance(BACKOFF + 0.1)  # past any back-off: each call reaches the server
            assert await call() is None
        assert cache.errors == 3
    finally:
        await cache.close()
        listener.close()
        await listener.wait_closed()


async def test_an_unreachable_server_at_construction_does_not_raise() -> None:
    cache = MemcachedCache(f"127.0.0.1:{free_port()}", timeout_seconds=TIMEOUT)
    assert await cache.get("k") is None
    await cache.set("k", b"v", ttl_seconds=60)
    await cache.delete("k")
    assert cache.errors == 3
    await cache.close()


def test_construction_needs_no_event_loop_and_no_server() -> None:
    MemcachedCache(f"127.0.0.1:{free_port()},127.0.0.1:{free_port()}")


# -- keys, values, TTLs ---------------------------------------------------------------------


async def test_long_and_odd_keys_work_and_stay_distinct(memcached: ServerProcess) -> None:
    cache = new_cache(memcached.address, FakeClock())
    long_key = "k" * 300
    keys = [
        long_key,
        long_key + "x",  # same first 300 characters
        "price with spaces",
        "line\nbreak",
        "line\r\nEND\r\n",
        "tab\tkey",
        "ctrl\x00\x01\x7f",
        "ünïcödé €",
        "surrogate \udcff",
        "",
        "#starts-with-the-hash-mark",
        "#" + "0" * 64,
        "k" * (250 - len(unique_prefix())),  # exactly at the limit with the prefix
    ]
    for i, key in enumerate(keys):
        await cache.set(key, f"value {i}".encode(), ttl_seconds=60)
    for i, key in enumerate(keys):
        assert await cache.get(key) == f"value {i}".encode(), key
    for key in keys:
        wire = cache.wire_key(key)
        assert len(wire) <= 250
        assert all(0x21 <= byte <= 0x7E for byte in wire)
    assert len({cache.wire_key(key) for key in keys}) == len(keys)
    await cache.delete(long_key)
    assert await cache.get(long_key) is None
    assert await cache.get(long_key + "x") == f"value {keys.index(long_key + 'x')}".encode()
    assert cache.errors == 0
    await cache.close()


async def test_ttls_over_30_days_are_sent_as_unix_times(memcached: ServerProcess) -> None:
    cache = new_cache(memcached.address, FakeClock())
    # Sent as a relative 31 days, memcached would read a date in 1970 and drop the value.
    await cache.set("long-lived", b"kept", ttl_seconds=MAX_RELATIVE_EXPTIME + 86400)
    assert await cache.get("long-lived") == b"kept"
    await cache.set("long-lived", b"gone", ttl_seconds=0)
    assert await cache.get("long-lived") is None
    await cache.close()

    assert memcached_exptime(60) == 60
    assert memcached_exptime(MAX_RELATIVE_EXPTIME) == MAX_RELATIVE_EXPTIME
    now = int(time.time())
    assert now + 31 * 86400 <= memcached_exptime(31 * 86400) <= now + 31 * 86400 + 2


async def test_values_over_the_item_limit_are_skipped_without_a_back_off(
    memcached: ServerProcess,
) -> None:
    cache = new_cache(memcached.address, FakeClock())
    largest = b"x" * 1_000_000
    await cache.set("largest", largest, ttl_seconds=60)
    assert await cache.get("largest") == largest
    await cache.set("too-large", largest + b"x", ttl_seconds=60)
    assert cache.errors == 1
    assert await cache.get("too-large") is None
    assert await cache.get("largest") == largest  # the server is still in use
    await cache.close()


async def test_hits_misses_and_errors_are_counted(memcached: ServerProcess) -> None:
    before = {n: sample(f"stockday_cache_{n}_total") for n in ("hits", "misses", "errors")}
    cache = new_cache(memcached.address, FakeClock())
    await cache.set("k", b"v", ttl_seconds=60)
    await cache.get("k")
    await cache.get("k")
    await cache.get("absent")
    await cache.close()
    unreachable = MemcachedCache(f"127.0.0.1:{free_port()}", timeout_seconds=TIMEOUT)
    await unreachable.get("k")
    await unreachable.close()
    after = {n: sample(f"stockday_cache_{n}_total") for n in ("hits", "misses", "errors")}
    assert after["hits"] - before["hits"] == 2
    assert after["misses"] - before["misses"] == 2
    assert after["errors"] - before["errors"] == 1
    assert (cache.hits, cache.misses, cache.errors) == (2, 1, 0)


# -- several servers --------------------------------------------------------------------------


async def test_keys_are_spread_over_servers_and_a_dead_one_costs_only_its_keys() -> None:
    with memcached_server() as first, memcached_server() as second:
        prefix = unique_prefix()
        both = MemcachedCache(
            f"{first.address},{second.address}", key_prefix=prefix, timeout_seconds=LIVE_TIMEOUT
        )
        reversed_order = MemcachedCache(
            f"{second.address}, {first.address}", key_prefix=prefix, timeout_seconds=LIVE_TIMEOUT
        )
        keys = [f"price:S{i}" for i in range(40)]
        for key in keys:
            await both.set(key, key.encode(), ttl_seconds=60)

        homes = {key: both.server_for(both.wire_key(key)) for key in keys}
        assert set(homes.values()) == {first.address, second.address}
        for key in keys:  # the order servers are listed in does not move keys
            assert reversed_order.server_for(reversed_order.wire_key(key)) == homes[key]
            assert await reversed_order.get(key) == key.encode()
        for server in (first, second):  # each key is on its own server only
            alone = MemcachedCache(server.address, key_prefix=prefix, timeout_seconds=LIVE_TIMEOUT)
            for key in keys:
                expected = key.encode() if homes[key] == server.address else None
                assert await alone.get(key) == expected
            await alone.close()

        stop(second.process)
        for key in keys:
            expected = key.encode() if homes[key] == first.address else None
            assert await both.get(key) == expected
        await both.close()
        await reversed_order.close()


@pytest.mark.parametrize(
    ("servers", "parsed"),
    [
        ("127.0.0.1:11211", [("127.0.0.1", 11211)]),
        (" cache-a:1 , cache-b:2 ,", [("cache-a", 1), ("cache-b", 2)]),
        ("cache", [("cache", 11211)]),
        ("[::1]:11311", [("::1", 11311)]),
        ("a:1,a:1", [("a", 1)]),
    ],
)
def test_server_lists_are_parsed(servers: str, parsed: list[tuple[str, int]]) -> None:
    assert parse_servers(servers) == parsed


@pytest.mark.parametrize("servers", ["", " , ", "host:", ":11211", "host:abc", "h:70000", "[::1"])
def test_malformed_server_lists_are_refused(servers: str) -> None:
    with pytest.raises(ValueError):
        MemcachedCache(servers)


def test_invalid_key_prefixes_are_refused() -> None:
    with pytest.raises(ValueError):
        MemcachedCache("127.0.0.1:11211", key_prefix="has space:")
    with pytest.raises(ValueError):
        MemcachedCache("127.0.0.1:11211", key_prefix="p" * 200)
