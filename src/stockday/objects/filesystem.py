"""Filesystem object store: the embedded adapter, one file per object under a root directory.

Layout under ``root``::

    data/<key>             the object's bytes, exactly as stored (list() walks only this tree)
    meta/<hh>/<sha256>     its content type, in a sidecar named by a hash of the key (so keys
                           never clash there, and data files stay raw bytes)
    tmp/                   temporary files of puts in progress

A put writes a temporary file in ``tmp/`` (same filesystem as ``data/``), fsyncs it and renames
it over the target with ``os.replace``, so a reader sees the old or the new object, never a
partial one. The sidecar is written before the data and removed after it; a reader racing an
overwrite that changes the content type may briefly see the new type with the old bytes, which
is harmless here (a key's content type does not change in this application).

A delete removes the directories it leaves empty under ``data/``, so that deleted stocks leave
no folders behind (the sidecars' ``meta/<hh>`` directories, 256 at most, stay).

Filesystems cannot hold both an object ``a`` and an object ``a/b``; such a put raises InvalidKey.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
import uuid
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from urllib.parse import quote

import anyio.to_thread

from stockday.domain.errors import BackendUnavailable
from stockday.objects.base import (
    MAX_KEY_BYTES,
    MAX_SEGMENT_BYTES,
    InvalidKey,
    ObjectInfo,
    PresignedUpload,
    StoredObject,
    check_key,
)

__all__ = ["MAX_KEY_BYTES", "MAX_SEGMENT_BYTES", "FilesystemObjectStore", "check_key"]

DEFAULT_CONTENT_TYPE = "application/octet-stream"
_STALE_TMP_SECONDS = 3600.0
# Each retry needs a delete to prune the directory again in the instant between a put's mkdir
# and its rename: many in a row do not happen, but a put must never fail for it.
_REPLACE_ATTEMPTS = 50


class FilesystemObjectStore:
    """ObjectStore on a local directory; see the module docstring for the layout."""

    def __init__(self, root: Path, *, url_prefix: str = "/logos/") -> None:
        self._root = root
        self._data = root / "data"
        self._meta = root / "meta"
        self._tmp = root / "tmp"
        self._url_prefix = url_prefix if url_prefix.endswith("/") else url_prefix + "/"
        self._swept = False

    def _data_path(self, key: str) -> Path:
        return self._data / check_key(key)

    def _meta_path(self, key: str) -> Path:
        digest = hashlib.sha256(check_key(key).encode("utf-8")).hexdigest()
        return self._meta / digest[:2] / digest

    # -- the port ---------------------------------------------------------------------------

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        """Store or atomically replace an object (written and fsynced off the event loop)."""
        check_key(key)
        await anyio.to_thread.run_sync(partial(self._put, key, bytes(data), content_type))

    async def get(self, key: str) -> StoredObject | None:
        check_key(key)
        return await anyio.to_thread.run_sync(partial(self._get, key))

    async def exists(self, key: str) -> bool:
        # One stat() call: microseconds, not worth a thread hop.
        return self._data_path(key).is_file()

    async def delete(self, key: str) -> None:
        """Remove the object and its sidecar; a missing object is not an error."""
        check_key(key)
        await anyio.to_thread.run_sync(partial(self._delete, key))

    async def list(self, prefix: str) -> list[ObjectInfo]:
        """Every object whose key starts with ``prefix`` (a string prefix, as in S3), by key."""
        return await anyio.to_thread.run_sync(partial(_list_objects, self._data, prefix))

    def url_for(self, key: str) -> str:
        """Logos are served under ``url_prefix`` (``logos/A/x.webp`` -> ``/logos/A/x.webp``).

        Other keys (raw uploads) are not meant for browsers; they map to ``/objects/<key>``, a
        path no service exposes today, so that the URL is at least stable and unambiguous.
        """
        check_key(key)
        if key.startswith("logos/"):
            return self._url_prefix + quote(key.removeprefix("logos/"), safe="/")
        return "/objects/" + quote(key, safe="/")

    def presigned_upload(
        self, key: str, *, max_bytes: int, expires_seconds: int
    ) -> PresignedUpload | None:
        """None: a directory cannot take uploads from browsers; they go through stock-symbol."""
        check_key(key)
        return None

    async def check(self) -> None:
        """Raise BackendUnavailable unless the root is a directory we can write to."""
        try:
            await anyio.to_thread.run_sync(self._probe)
        except OSError as exc:
            raise BackendUnavailable(
                f"object store {self._root} is not a writable directory ({exc}); "
                "set STOCKDAY_DATA_DIR to a writable directory"
            ) from None

    async def close(self) -> None:
        """Nothing to release: every call opens and closes its own files."""

    # -- blocking helpers, run in worker threads ---------------------------------------------

    def _put(self, key: str, data: bytes, content_type: str) -> None:
        if not self._swept:
            self._sweep_tmp()
        self._write_atomic(self._meta_path(key), content_type.encode("utf-8"))
        try:
            self._write_atomic(self._data_path(key), data)
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            if not self._data_path(key).is_file():
                with contextlib.suppress(FileNotFoundError):
                    self._meta_path(key).unlink()
            raise InvalidKey(
                f"object key {key!r} clashes with another key: a filesystem path cannot be "
                "both an object and a prefix of other objects"
            ) from None

    def _write_atomic(self, target: Path, payload: bytes) -> None:
        self._tmp.mkdir(parents=True, exist_ok=True)
        tmp = self._tmp / f"{uuid.uuid4().hex}.tmp"
        try:
            with open(tmp, "xb") as f:
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
            for attempt in range(_REPLACE_ATTEMPTS):
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(tmp, target)
                    break
                except (FileNotFoundError, FileExistsError):
                    # A concurrent delete pruned a directory on the way while it was empty:
                    # between its creation and the rename (FileNotFoundError), or between
                    # mkdir finding it there and checking that it is a directory
                    # (FileExistsError). Create it again. A file standing where a directory
                    # must be fails every attempt, and the caller reports the clash.
                    if attempt == _REPLACE_ATTEMPTS - 1:
                        raise
            _fsync_dir(target.parent)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def _get(self, key: str) -> StoredObject | None:
        try:
            data = self._data_path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        try:
            content_type = self._meta_path(key).read_text("utf-8")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            content_type = DEFAULT_CONTENT_TYPE
        return StoredObject(key=key, data=data, content_type=content_type)

    def _delete(self, key: str) -> None:
        data = self._data_path(key)
        with contextlib.suppress(FileNotFoundError, NotADirectoryError, IsADirectoryError):
            data.unlink()
        with contextlib.suppress(FileNotFoundError):
            self._meta_path(key).unlink()
        _prune_empty_directories(data.parent, self._data)

    def _probe(self) -> None:
        self._root.mkdir(parents=True, exist_ok=True)  # FileExistsError if it is a file
        for directory in (self._data, self._meta, self._tmp):
            directory.mkdir(exist_ok=True)
        probe = self._tmp / f"probe-{uuid.uuid4().hex}.tmp"
        probe.write_bytes(b"ok")
        probe.unlink()

    def _sweep_tmp(self) -> None:
        """Remove temporary files left by puts of crashed processes (once per instance)."""
        self._swept = True
        cutoff = time.time() - _STALE_TMP_SECONDS
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self._tmp):
                with contextlib.suppress(OSError):
                    if entry.is_file() and entry.stat().st_mtime < cutoff:
                        os.unlink(entry.path)


def _prune_empty_directories(directory: Path, root: Path) -> None:
    """Remove ``directory`` and then each parent below ``root`` while they are empty.

    Safe beside concurrent puts: rmdir removes only an empty directory, atomically, so a file
    a put has renamed in keeps its directory; and a put whose directory is pruned between its
    mkdir and its rename makes the directory again (see ``_write_atomic``).
    """
    while directory != root and directory.is_relative_to(root):
        try:
            os.rmdir(directory)
        except OSError:  # not empty (a put landed there) or gone (another delete pruned it)
            return
        directory = directory.parent


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable: fsync the directory that holds the new entry."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _list_objects(data_root: Path, prefix: str) -> list[ObjectInfo]:
    """Blocking list() of the objects under ``data_root``."""
    # Walk only the directory the prefix names (``logos/A/x`` -> ``logos/A``); keys come from
    # the walk itself, so an odd prefix can only narrow the result, never escape the root.
    directory, _, _ = prefix.rpartition("/")
    start = data_root
    if directory:
        try:
            start = data_root / check_key(directory)
        except InvalidKey:
            return []
    found: list[ObjectInfo] = []
    for dirpath, _dirs, files in os.walk(start):
        base = Path(dirpath).relative_to(data_root).as_posix()
        for file in files:
            key = file if base == "." else f"{base}/{file}"
            if not key.startswith(prefix):
                continue
            try:
                st = os.stat(os.path.join(dirpath, file))
            except FileNotFoundError:
                continue  # deleted while we walked
            found.append(
                ObjectInfo(
                    key=key,
                    size=st.st_size,
                    modified_at=datetime.fromtimestamp(st.st_mtime, UTC),
                )
            )
    found.sort(key=lambda info: info.key)
    return found
