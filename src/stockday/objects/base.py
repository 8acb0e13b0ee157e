"""The object store port: raw uploads and resized logos, addressed by key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class InvalidKey(ValueError):
    """An object key that could escape the store or is otherwise unusable."""


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

    async def check(self) -> None: ...

    async def close(self) -> None: ...
