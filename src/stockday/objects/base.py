"""The object store port: raw uploads and resized logos, addressed by key."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

MAX_KEY_BYTES = 1024  # S3's limit
MAX_SEGMENT_BYTES = 255  # the usual file name limit


class InvalidKey(ValueError):
    """An object key that could escape the store or is otherwise unusable."""


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe relative object key, else raise InvalidKey.

    Rejected: empty keys, a leading or trailing slash, empty, ``.`` or ``..`` segments,
    backslashes, control characters (NUL included) and over-long keys or segments.
    """
    if not isinstance(key, str) or not key:
        raise InvalidKey("object key must be a non-empty string")
    if key.startswith("/") or key.endswith("/"):
        raise InvalidKey(f"object key must not start or end with '/': {key!r}")
    if "\\" in key:
        raise InvalidKey(f"object key must not contain a backslash: {key!r}")
    if any(unicodedata.category(ch) == "Cc" for ch in key):
        raise InvalidKey(f"object key must not contain control characters: {key!r}")
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidKey(f"object key is not valid Unicode text: {key!r}") from None
    if len(encoded) > MAX_KEY_BYTES:
        raise InvalidKey(f"object key is longer than {MAX_KEY_BYTES} bytes")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidKey(f"object key has an empty, '.' or '..' segment: {key!r}")
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise InvalidKey(f"object key segment is longer than {MAX_SEGMENT_BYTES} bytes")
    return key


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    data: bytes
    content_type: str


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    modified_at: datetime


@dataclass(frozen=True, slots=True)
class PresignedUpload:
    """A form a browser posts a file to, straight into the store (an S3 presigned POST).

    The browser sends ``fields`` as form fields, then its own ``Content-Type`` field, then the
    file as the last field, as multipart/form-data to ``url`` before ``expires_at``.
    """

    url: str
    fields: Mapping[str, str]
    expires_at: datetime


class ObjectStore(Protocol):
    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        """Store (or atomically replace) an object; readers never see a partial object."""

    async def get(self, key: str) -> StoredObject | None: ...

    async def exists(self, key: str) -> bool: ...

    async def delete(self, key: str) -> None:
        """Remove an object; removing a missing object is not an error."""

    async def list(self, prefix: str) -> list[ObjectInfo]: ...

    def url_for(self, key: str) -> str:
        """The URL under which a browser can fetch the object (a path, a CDN or a signed URL)."""

    def presigned_upload(
        self, key: str, *, max_bytes: int, expires_seconds: int
    ) -> PresignedUpload | None:
        """A form for uploading one image of at most ``max_bytes`` to ``key`` from the browser.

        None when this store cannot take uploads straight from the browser (the upload then
        goes through the application).
        """

    async def check(self) -> None: ...

    async def close(self) -> None: ...
