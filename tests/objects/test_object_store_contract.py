"""The ObjectStore contract, run against every adapter."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import anyio.to_thread
import pytest

from stockday.aws.clients import make_client
from stockday.aws.provision import create_bucket
from stockday.objects.base import InvalidKey, ObjectStore
from stockday.objects.filesystem import FilesystemObjectStore
from stockday.objects.s3 import S3ObjectStore
from tests.support.adapters import adapter_fixture
from tests.support.aws import AwsTarget, aws_target, emulator_gap, s3rver_target, target_emulator

ObjectStoreFactory = Callable[[Path], Awaitable[ObjectStore]]
"""tmp_path -> an empty store (an S3 adapter would use a fresh bucket or key prefix)."""


async def make_filesystem_store(tmp_path: Path) -> ObjectStore:
    return FilesystemObjectStore(tmp_path / "objects")


@dataclass(frozen=True)
class S3StoreFactory:
    """Fresh private buckets on one S3 emulator; ``emulator`` names it for its known gaps."""

    emulator: str
    target: Callable[[], AwsTarget]

    async def __call__(self, tmp_path: Path) -> ObjectStore:
        config = self.target().config
        bucket = f"stockday-contract-{uuid.uuid4().hex[:16]}"
        client = make_client("s3", config)
        try:
            # Emulators lack some bucket settings; the adapter's behaviour does not depend on them.
            await anyio.to_thread.run_sync(
                partial(create_bucket, client, bucket, config.region, tolerate_unsupported=True)
            )
        finally:
            client.close()
        return S3ObjectStore(config, bucket)


# AWS adapters join here; the tests below stay unchanged but for the emulators' marked gaps.
OBJECT_STORE_FACTORIES = [
    pytest.param(make_filesystem_store, id="filesystem"),
    # moto, or the endpoint STOCKDAY_TEST_S3_ENDPOINT names (tests/support/aws.py).
    pytest.param(S3StoreFactory(target_emulator("s3"), partial(aws_target, "s3")), id="s3"),
    pytest.param(S3StoreFactory("s3rver", s3rver_target), id="s3-s3rver"),
]

INVALID_KEYS = [
    "",
    "/etc/passwd",
    "../outside",
    "logos/../../outside",
    "logos/..",
    "..",
    "logos\\AAPL\\x.webp",
    "uploads/a\x00b",
    "uploads/a\nb",
    "uploads/a\tb",
    "uploads/a\x7fb",
    "uploads/",
    "/uploads/a",
]

pytestmark = pytest.mark.anyio


store = adapter_fixture("store", OBJECT_STORE_FACTORIES)


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


async def test_put_then_get_round_trips_bytes_and_content_type(store: ObjectStore) -> None:
    data = payload(4096)
    await store.put("uploads/abc123", data, content_type="image/png")
    stored = await store.get("uploads/abc123")
    assert stored is not None
    assert (stored.key, stored.data, stored.content_type) == ("uploads/abc123", data, "image/png")
    assert await store.exists("uploads/abc123")


async def test_missing_object_is_none(store: ObjectStore) -> None:
    assert await store.get("uploads/missing") is None
    assert not await store.exists("uploads/missing")


async def test_a_prefix_is_not_an_object(store: ObjectStore) -> None:
    await store.put("logos/AAPL/x.webp", b"x", content_type="image/webp")
    assert await store.get("logos/AAPL") is None
    assert not await store.exists("logos/AAPL")


async def test_empty_object(store: ObjectStore) -> None:
    await store.put("uploads/empty", b"", content_type="application/octet-stream")
    stored = await store.get("uploads/empty")
    assert stored is not None
    assert stored.data == b""


async def test_overwrite_replaces_data_and_content_type(store: ObjectStore) -> None:
    await store.put("logos/AAPL/x.webp", b"old", content_type="image/png")
    await store.put("logos/AAPL/x.webp", b"new", content_type="image/webp")
    stored = await store.get("logos/AAPL/x.webp")
    assert stored is not None
    assert (stored.data, stored.content_type) == (b"new", "image/webp")
    assert [o.key for o in await store.list("logos/")] == ["logos/AAPL/x.webp"]


@emulator_gap(
    "s3rver",
    "s3rver 3.7.1 has no atomic overwrite: it streams a PUT into the stored file in place, so a"
    " concurrent reader gets a truncated or mixed body, or stalls to its read timeout (an S3"
    " PUT is atomic: readers see the old object or the new one)",
)
async def test_readers_never_see_a_partial_overwrite(store: ObjectStore) -> None:
    size = 1024 * 1024
    versions = [bytes([65]) * size, bytes([66]) * size]
    await store.put("logos/RACE/x.webp", versions[0], content_type="image/webp")
    writing = True
    reads = 0

    async def writer() -> None:
        nonlocal writing
        for i in range(12):
            await store.put("logos/RACE/x.webp", versions[i % 2], content_type="image/webp")
        writing = False

    async def reader() -> None:
        nonlocal reads
        while writing:
            stored = await store.get("logos/RACE/x.webp")
            assert stored is not None
            assert stored.data in versions  # whole old or whole new, never a mix
            reads += 1
            await asyncio.sleep(0)

    await asyncio.gather(writer(), reader(), reader())
    assert reads > 0


async def test_delete_is_idempotent(store: ObjectStore) -> None:
    await store.put("uploads/gone", b"data", content_type="image/png")
    await store.delete("uploads/gone")
    assert await store.get("uploads/gone") is None
    assert not await store.exists("uploads/gone")
    await store.delete("uploads/gone")
    await store.delete("uploads/never-existed")
    assert await store.list("uploads/") == []


async def test_delete_leaves_other_objects_alone(store: ObjectStore) -> None:
    await store.put("logos/AAPL/a.webp", b"a", content_type="image/webp")
    await store.put("logos/AAPL/b.webp", b"b", content_type="image/webp")
    await store.delete("logos/AAPL/a.webp")
    assert [o.key for o in await store.list("logos/")] == ["logos/AAPL/b.webp"]
    stored = await store.get("logos/AAPL/b.webp")
    assert stored is not None
    assert stored.data == b"b"


async def test_a_prefix_emptied_by_deletes_lists_nothing_and_takes_new_objects(
    store: ObjectStore,
) -> None:
    """What the filesystem adapter's cleanup of emptied directories must keep true: a prefix
    whose last object is deleted is gone, and the next put under it works at once."""
    for round_ in range(3):
        await store.put("logos/ZZ/a.webp", b"a", content_type="image/webp")
        await store.put("logos/ZZ/deep/b.webp", b"b", content_type="image/webp")
        await store.delete("logos/ZZ/deep/b.webp")
        await store.delete("logos/ZZ/a.webp")
        assert await store.list("logos/ZZ/") == [], round_
        assert await store.list("logos/") == [], round_
    await store.put("logos/ZZ/deep/c.webp", b"c", content_type="image/webp")
    assert [o.key for o in await store.list("logos/")] == ["logos/ZZ/deep/c.webp"]


async def test_concurrent_puts_and_deletes_under_one_prefix_never_fail(store: ObjectStore) -> None:
    async def churn(number: int) -> None:
        for round_ in range(5):
            key = f"logos/CHURN/{number}-{round_}.webp"
            await store.put(key, b"x", content_type="image/webp")
            assert await store.exists(key)
            await store.delete(key)

    await asyncio.gather(*(churn(n) for n in range(6)))
    await store.put("logos/CHURN/last.webp", b"x", content_type="image/webp")
    assert [o.key for o in await store.list("logos/CHURN/")] == ["logos/CHURN/last.webp"]


async def test_list_by_prefix_is_sorted_and_recursive(store: ObjectStore) -> None:
    before = datetime.now(UTC) - timedelta(minutes=5)
    objects = {
        "uploads/2": b"22",
        "uploads/1": b"1",
        "logos/MSFT/m.webp": b"mmm",
        "logos/AAPL/b.webp": b"bbbb",
        "logos/AAPL/a.webp": b"a",
        "logos/AAPLX/c.webp": b"cc",
    }
    for key, data in objects.items():
        await store.put(key, data, content_type="image/webp")

    apple = await store.list("logos/AAPL/")
    assert [(o.key, o.size) for o in apple] == [("logos/AAPL/a.webp", 1), ("logos/AAPL/b.webp", 4)]
    assert all(before <= o.modified_at <= datetime.now(UTC) + timedelta(minutes=5) for o in apple)
    assert [o.key for o in await store.list("logos/")] == [
        "logos/AAPL/a.webp",
        "logos/AAPL/b.webp",
        "logos/AAPLX/c.webp",
        "logos/MSFT/m.webp",
    ]
    # A string prefix, as in S3: not only whole path segments.
    assert [o.key for o in await store.list("logos/AAPL")] == [
        "logos/AAPL/a.webp",
        "logos/AAPL/b.webp",
        "logos/AAPLX/c.webp",
    ]
    assert [o.key for o in await store.list("uploads/")] == ["uploads/1", "uploads/2"]
    assert len(await store.list("")) == len(objects)
    assert await store.list("nothing/") == []


@pytest.mark.parametrize("key", INVALID_KEYS)
async def test_invalid_keys_are_rejected(store: ObjectStore, key: str) -> None:
    with pytest.raises(InvalidKey):
        await store.put(key, b"x", content_type="text/plain")
    with pytest.raises(InvalidKey):
        await store.get(key)
    with pytest.raises(InvalidKey):
        await store.exists(key)
    with pytest.raises(InvalidKey):
        await store.delete(key)
    with pytest.raises(InvalidKey):
        store.url_for(key)


async def test_invalid_key_is_a_value_error(store: ObjectStore) -> None:
    with pytest.raises(ValueError):
        await store.get("../x")


async def test_five_megabyte_object(store: ObjectStore) -> None:
    data = payload(5 * 1024 * 1024, seed=5)
    await store.put("uploads/big", data, content_type="image/png")
    stored = await store.get("uploads/big")
    assert stored is not None
    assert stored.data == data
    [info] = await store.list("uploads/")
    assert info.size == len(data)


async def test_logo_keys_have_a_url(store: ObjectStore) -> None:
    url = store.url_for("logos/AAPL/0123abcd.webp")
    assert url
    assert "AAPL/0123abcd.webp" in url


async def test_check_passes_on_a_usable_store(store: ObjectStore) -> None:
    await store.check()
