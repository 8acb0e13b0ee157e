"""FilesystemObjectStore specifics: layout, sidecars, URLs, key safety, failure modes."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stockday.domain.errors import BackendUnavailable
from stockday.objects.base import InvalidKey
from stockday.objects.filesystem import (
    DEFAULT_CONTENT_TYPE,
    FilesystemObjectStore,
    check_key,
)
from tests.support.readonly import run_read_only


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "objects"


@pytest.fixture
def store(root: Path) -> FilesystemObjectStore:
    return FilesystemObjectStore(root)


def files_under(directory: Path) -> list[str]:
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())


@pytest.mark.anyio
async def test_data_files_hold_raw_bytes_and_sidecars_live_elsewhere(
    store: FilesystemObjectStore, root: Path
) -> None:
    await store.put("logos/AAPL/x.webp", b"RIFF....WEBP", content_type="image/webp")
    assert files_under(root / "data") == ["logos/AAPL/x.webp"]
    assert (root / "data" / "logos" / "AAPL" / "x.webp").read_bytes() == b"RIFF....WEBP"
    [sidecar] = [p for p in (root / "meta").rglob("*") if p.is_file()]
    assert sidecar.read_text() == "image/webp"
    assert [o.key for o in await store.list("")] == ["logos/AAPL/x.webp"]
    assert files_under(root / "tmp") == []  # no temporary file left behind


@pytest.mark.anyio
async def test_missing_sidecar_falls_back_to_octet_stream(
    store: FilesystemObjectStore, root: Path
) -> None:
    (root / "data" / "uploads").mkdir(parents=True)
    (root / "data" / "uploads" / "manual").write_bytes(b"dropped in by hand")
    stored = await store.get("uploads/manual")
    assert stored is not None
    assert stored.content_type == DEFAULT_CONTENT_TYPE


@pytest.mark.anyio
async def test_delete_removes_data_and_sidecar(store: FilesystemObjectStore, root: Path) -> None:
    await store.put("logos/AAPL/x.webp", b"x", content_type="image/webp")
    await store.put("logos/MSFT/y.webp", b"y", content_type="image/webp")
    await store.delete("logos/AAPL/x.webp")
    assert not (root / "data" / "logos" / "AAPL" / "x.webp").exists()
    assert (root / "data" / "logos" / "MSFT" / "y.webp").is_file()
    await store.delete("logos/MSFT/y.webp")
    assert [p for p in (root / "data").rglob("*") if p.is_file()] == []
    assert [p for p in (root / "meta").rglob("*") if p.is_file()] == []


@pytest.mark.anyio
async def test_puts_racing_deletes_in_one_directory_all_land(store: FilesystemObjectStore) -> None:
    # Puts and deletes interleave in one directory; every put must land.
    async def churn(i: int) -> None:
        for round_ in range(10):
            key = f"logos/RACE/{i}-{round_}.webp"
            await store.put(key, b"x", content_type="image/webp")
            await store.delete(key)

    await asyncio.gather(*(churn(i) for i in range(6)))
    await store.put("logos/RACE/final.webp", b"x", content_type="image/webp")
    assert [o.key for o in await store.list("logos/RACE/")] == ["logos/RACE/final.webp"]


def directories_under(directory: Path) -> list[str]:
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_dir())


@pytest.mark.anyio
async def test_a_delete_removes_the_directories_it_leaves_empty(
    store: FilesystemObjectStore, root: Path
) -> None:
    await store.put("logos/AAPL/x.webp", b"x", content_type="image/webp")
    await store.put("logos/AAPL/y.webp", b"y", content_type="image/webp")
    await store.put("logos/MSFT/z.webp", b"z", content_type="image/webp")
    await store.delete("logos/AAPL/x.webp")
    assert directories_under(root / "data") == ["logos", "logos/AAPL", "logos/MSFT"]
    await store.delete("logos/AAPL/y.webp")
    assert directories_under(root / "data") == ["logos", "logos/MSFT"]
    await store.delete("logos/MSFT/z.webp")
    assert directories_under(root / "data") == []
    assert (root / "data").is_dir()  # the root itself stays
    await store.delete("logos/NEVER/there.webp")  # nothing to prune, no error
    await store.put("logos/AAPL/x.webp", b"again", content_type="image/webp")
    assert files_under(root / "data") == ["logos/AAPL/x.webp"]


@pytest.mark.anyio
async def test_a_put_whose_directory_is_pruned_before_its_rename_still_lands(
    store: FilesystemObjectStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race made certain: a delete's cleanup removes the directory a put has just made,
    in the instant before the put renames its file into it."""
    real_replace = os.replace
    pruned: list[str] = []

    def replace_after_a_prune(source: str | Path, target: str | Path) -> None:
        parent = Path(target).parent
        if not pruned and parent.name == "RACE":
            pruned.append(str(parent))
            os.rmdir(parent)  # empty: the put's file is not in it yet
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace_after_a_prune)
    await store.put("logos/RACE/x.webp", b"landed", content_type="image/webp")
    assert pruned  # the race happened
    stored = await store.get("logos/RACE/x.webp")
    assert stored is not None and stored.data == b"landed"


@pytest.mark.anyio
async def test_puts_racing_cleanups_in_one_directory_never_fail_and_leave_no_empty_directory(
    store: FilesystemObjectStore, root: Path
) -> None:
    """Writers in worker threads put objects into a directory that deleters keep emptying (and
    so pruning): every put succeeds and stays readable until it is deleted."""
    kept: list[str] = []

    async def writer(number: int) -> None:
        for round_ in range(40):
            key = f"logos/HOT/{number}-{round_}.webp"
            await store.put(key, b"x", content_type="image/webp")
            assert await store.exists(key), key
            if round_ % 10 == 9:
                kept.append(key)
            else:
                await store.delete(key)

    await asyncio.gather(*(writer(n) for n in range(8)))
    assert sorted(o.key for o in await store.list("logos/HOT/")) == sorted(kept)
    for key in kept:
        await store.delete(key)
    assert directories_under(root / "data") == []


@pytest.mark.anyio
async def test_a_key_cannot_be_both_an_object_and_a_prefix(
    store: FilesystemObjectStore, root: Path
) -> None:
    await store.put("uploads/a", b"object", content_type="text/plain")
    with pytest.raises(InvalidKey):
        await store.put("uploads/a/b", b"nested", content_type="text/plain")
    await store.put("logos/B/x.webp", b"nested", content_type="image/webp")
    with pytest.raises(InvalidKey):
        await store.put("logos/B", b"object", content_type="image/webp")
    stored = await store.get("uploads/a")
    assert stored is not None
    assert stored.data == b"object"
    assert files_under(root / "tmp") == []
    assert len([p for p in (root / "meta").rglob("*") if p.is_file()]) == 2


@pytest.mark.anyio
async def test_stale_temporary_files_are_swept(store: FilesystemObjectStore, root: Path) -> None:
    (root / "tmp").mkdir(parents=True)
    stale, fresh = root / "tmp" / "stale.tmp", root / "tmp" / "fresh.tmp"
    stale.write_bytes(b"left by a crash")
    fresh.write_bytes(b"a put in progress elsewhere")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    await store.put("uploads/x", b"x", content_type="image/png")
    assert not stale.exists()
    assert fresh.exists()


def test_url_for_maps_logos_under_the_prefix_and_other_keys_under_objects(root: Path) -> None:
    store = FilesystemObjectStore(root)
    assert store.url_for("logos/AAPL/ab12.webp") == "/logos/AAPL/ab12.webp"
    assert store.url_for("uploads/ab12") == "/objects/uploads/ab12"
    assert store.url_for("logos/A B/x#1.webp") == "/logos/A%20B/x%231.webp"
    cdn = FilesystemObjectStore(root, url_prefix="https://cdn.example/logos")
    assert cdn.url_for("logos/AAPL/ab12.webp") == "https://cdn.example/logos/AAPL/ab12.webp"


@pytest.mark.parametrize(
    "key", ["a//b", "./a", "a/./b", "a/.", "x" * 256, "a/" * 600 + "b", "bad\ud800surrogate"]
)
def test_more_unsafe_keys_are_rejected(key: str) -> None:
    with pytest.raises(InvalidKey):
        check_key(key)


@pytest.mark.parametrize("key", ["uploads/0f3a", "logos/BRK.B/x.webp", "a/.hidden", "a/b..c", "é"])
def test_ordinary_keys_are_accepted(key: str) -> None:
    assert check_key(key) == key


KEY_CHARACTERS = st.sampled_from(["a", "/", ".", "\\", "\x00", "\n", "~", "é"])


@given(st.text(alphabet=KEY_CHARACTERS, max_size=12))
def test_an_accepted_key_always_stays_inside_the_data_tree(key: str) -> None:
    root = Path("/srv/objects/data")
    try:
        check_key(key)
    except InvalidKey:
        return
    resolved = Path(os.path.normpath(root / key))
    assert resolved.is_relative_to(root)
    assert resolved != root
    assert resolved.relative_to(root).as_posix() == key  # one key, one file


@pytest.mark.anyio
async def test_check_creates_a_missing_root(store: FilesystemObjectStore, root: Path) -> None:
    await store.check()
    assert (root / "data").is_dir()


@pytest.mark.anyio
async def test_check_fails_when_the_root_is_a_file(tmp_path: Path) -> None:
    root = tmp_path / "objects"
    root.write_text("not a directory")
    with pytest.raises(BackendUnavailable) as info:
        await FilesystemObjectStore(root).check()
    message = str(info.value)
    assert str(root) in message
    assert "\n" not in message


def check_fails(root: Path) -> None:
    with pytest.raises(BackendUnavailable):
        asyncio.run(FilesystemObjectStore(root).check())


def test_check_fails_on_a_read_only_directory(root: Path) -> None:
    root.mkdir()
    run_read_only(root, check_fails)
