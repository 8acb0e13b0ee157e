"""Use cases of stock-symbol, written against the ports only."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from stockday.contracts.messages import LogoRequested, encode
from stockday.domain.stocks import LogoState, Stock, logo_key, normalize_symbol, upload_key
from stockday.logos.images import UploadInfo, inspect_upload
from stockday.objects.base import ObjectStore, PresignedUpload
from stockday.queues.base import MessageQueue
from stockday.runtime.tracing import message_attributes
from stockday.stocks.base import StockExists, StockNotFound, StockRepository, VersionConflict

log = logging.getLogger("stockday.stock_symbol")

MAX_WRITE_ATTEMPTS = 5


class UnknownUpload(ValueError):
    """A create or logo change names an upload that was never stored."""


class JobNotQueued(Exception):
    """The stock is saved but its logo job could not be queued; a retry will queue it."""


class PreconditionFailed(Exception):
    """The caller's If-Match version is not the stored version."""


@dataclass(frozen=True, slots=True)
class StoredUpload:
    upload_id: str
    info: UploadInfo


class StockService:
    def __init__(
        self,
        *,
        repository: StockRepository,
        jobs: MessageQueue,
        objects: ObjectStore,
        max_upload_bytes: int,
        max_upload_pixels: int,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self.repository = repository
        self.jobs = jobs
        self.objects = objects
        self._max_bytes = max_upload_bytes
        self._max_pixels = max_upload_pixels
        self._new_id = new_id

    async def store_upload(self, data: bytes) -> StoredUpload:
        """Validate an uploaded image and store it raw; raise RejectedImage and store nothing."""
        info = inspect_upload(data, max_bytes=self._max_bytes, max_pixels=self._max_pixels)
        upload_id = self._new_id()
        await self.objects.put(upload_key(upload_id), data, content_type=info.content_type)
        return StoredUpload(upload_id=upload_id, info=info)

    def direct_upload(self, *, expires_seconds: int) -> tuple[str, PresignedUpload] | None:
        """A new upload id and a form to post its file straight to the object store.

        None when the store cannot take browser uploads (the local filesystem); the image is
        then checked by the resizer instead of here, and refused there (logo ``failed``) if bad.
        """
        upload_id = self._new_id()
        form = self.objects.presigned_upload(
            upload_key(upload_id), max_bytes=self._max_bytes, expires_seconds=expires_seconds
        )
        return None if form is None else (upload_id, form)

    async def create(
        self, symbol: str, name: str, upload_id: str | None, request_key: str | None
    ) -> Stock:
        """Create a stock; a retry carrying the same request key returns the stored stock."""
        stock = Stock.new(symbol, name, upload_id=upload_id, request_key=request_key)
        if upload_id is not None and not await self._upload_exists(upload_id):
            # queue-worker deletes a raw upload once its logo is ready: a retried create of
            # that stock finds it gone, and is still answered as the first one was.
            retried = await self._retried_create(stock.symbol, request_key, upload_id)
            if retried is None:
                raise UnknownUpload(f"upload {upload_id} does not exist (upload the logo first)")
            return retried
        try:
            await self.repository.add(stock)
        except StockExists as exists:
            if request_key is None or exists.existing.request_key != request_key:
                raise
            stock = exists.existing  # a retried create: answer as the first one was answered
        if stock.logo.state is LogoState.PENDING and stock.logo.upload_id:
            await self._enqueue(stock.symbol, stock.logo.upload_id)
        return stock

    async def get(self, symbol: str) -> Stock | None:
        return await self.repository.get(normalize_symbol(symbol))

    async def request_logo(self, symbol: str, upload_id: str, if_match: int | None) -> Stock:
        if not await self._upload_exists(upload_id):
            current = await self.repository.get(normalize_symbol(symbol))
            # Linking the upload the logo already comes from is a no-op, even once the raw
            # upload is gone (deleted when its logo was ready).
            if current is None or current.logo.upload_id != upload_id:
                raise UnknownUpload(f"upload {upload_id} does not exist (upload the logo first)")
        stock = await self._transition(
            symbol, lambda s: s.request_logo(upload_id), if_match=if_match
        )
        if stock.logo.state is LogoState.PENDING:
            await self._enqueue(stock.symbol, upload_id)
        return stock

    async def logo_ready(self, symbol: str, upload_id: str, key: str) -> Stock:
        return await self._transition(symbol, lambda s: s.logo_ready(upload_id, key))

    async def logo_failed(self, symbol: str, upload_id: str, error: str) -> Stock:
        return await self._transition(symbol, lambda s: s.logo_failed(upload_id, error))

    async def delete(self, symbol: str) -> bool:
        removed = await self.repository.delete(normalize_symbol(symbol))
        if removed is None:
            return False
        if removed.logo.upload_id:
            await self.objects.delete(logo_key(removed.symbol, removed.logo.upload_id))
            await self.objects.delete(upload_key(removed.logo.upload_id))
        return True

    async def _transition(
        self, symbol: str, change: Callable[[Stock], Stock], if_match: int | None = None
    ) -> Stock:
        """Read, apply a state-machine transition, write conditionally; retry on a lost race."""
        symbol = normalize_symbol(symbol)
        for _ in range(MAX_WRITE_ATTEMPTS):
            stock = await self.repository.get(symbol)
            if stock is None:
                raise StockNotFound(symbol)
            if if_match is not None and stock.version != if_match:
                raise PreconditionFailed(
                    f"stock {symbol} is at version {stock.version}, not {if_match}"
                )
            changed = change(stock)  # raises InvalidTransition
            if changed is stock:
                return stock  # already in the target state: idempotent no-op
            try:
                await self.repository.update(changed, expected_version=stock.version)
            except VersionConflict:
                if if_match is not None:
                    raise PreconditionFailed(f"stock {symbol} changed meanwhile") from None
                continue
            return changed
        raise VersionConflict(symbol, -1)

    async def _upload_exists(self, upload_id: str) -> bool:
        return await self.objects.exists(upload_key(upload_id))

    async def _retried_create(
        self, symbol: str, request_key: str | None, upload_id: str
    ) -> Stock | None:
        """The stored stock if this create repeats the one that stored it, else None."""
        if request_key is None:
            return None
        existing = await self.repository.get(symbol)
        if existing is None or existing.request_key != request_key:
            return None
        if existing.logo.upload_id != upload_id:
            return None
        return existing

    async def _enqueue(self, symbol: str, upload_id: str) -> None:
        job = LogoRequested(symbol=symbol, upload_id=upload_id, upload_key=upload_key(upload_id))
        try:
            await self.jobs.send(encode(job), attributes=message_attributes(job.type))
        except Exception as exc:
            log.error("could not queue logo job for %s: %s", symbol, exc)
            raise JobNotQueued(
                f"stock {symbol} is saved, but its logo job could not be queued; "
                "retry the request to queue it"
            ) from exc
