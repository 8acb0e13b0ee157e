"""Use cases of stock-symbol, written against the ports only."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass
from typing import Any

from stockday.contracts.messages import LogoRequested, encode
from stockday.contracts.stocks import DirectUploadOut, LogoUpdate, StockList, StockOut, UploadOut
from stockday.domain.prices import Interval
from stockday.domain.stocks import (
    InvalidStock,
    LogoState,
    Stock,
    logo_key,
    normalize_symbol,
    upload_key,
    upload_link_key,
)
from stockday.logos.images import ImageTooLarge, UploadInfo
from stockday.logos.workers import ImageWorkers
from stockday.objects.base import ObjectStore, StoredObject
from stockday.queues.base import MessageQueue
from stockday.runtime.tracing import message_attributes
from stockday.stock_symbol.presenter import StockPresenter
from stockday.stock_symbol.pricing import PriceLookup
from stockday.stocks.base import StockExists, StockNotFound, StockRepository, VersionConflict

log = logging.getLogger("stockday.stock_symbol")

MAX_WRITE_ATTEMPTS = 5
# Long enough to pick a file on a slow connection, short enough not to be worth stealing.
DIRECT_UPLOAD_SECONDS = 900


class UnknownUpload(ValueError):
    """A create or logo change names an upload that was never stored."""


class JobNotQueued(Exception):
    """The stock is saved but its logo job could not be queued; a retry will queue it."""


class PreconditionFailed(Exception):
    """The caller's If-Match version is not the stored version."""


class UploadLinked(Exception):
    """The upload is a stock's logo (or about to be): it is not discarded."""


@dataclass(frozen=True, slots=True)
class StoredUpload:
    upload_id: str
    info: UploadInfo


@dataclass(frozen=True, slots=True)
class UploadLimits:
    max_bytes: int
    max_pixels: int
    # What a whole multipart request may declare: the file plus the form's framing.
    max_request_bytes: int


class StockService:
    """Every use case of stock-symbol; the routes call nothing else."""

    def __init__(
        self,
        *,
        repository: StockRepository,
        jobs: MessageQueue,
        objects: ObjectStore,
        prices: PriceLookup,
        limits: UploadLimits,
        images: ImageWorkers,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self.repository = repository
        self.jobs = jobs
        self.objects = objects
        self._presenter = StockPresenter(prices=prices, objects=objects)
        self._limits = limits
        self._images = images
        self._new_id = new_id

    async def present(self, stock: Stock, *, with_price: bool = True) -> StockOut:
        return await self._presenter.present(stock, with_price=with_price)

    async def list_stocks(self, *, limit: int, cursor: str | None) -> StockList:
        """One page of stocks ordered by symbol, each with its price."""
        page = await self.repository.list(limit=limit, cursor=cursor)
        items = await self._presenter.present_many(page.items)
        return StockList(
            items=items, next_cursor=page.next_cursor, total=await self.repository.count()
        )

    async def stock(self, symbol: str, series: Interval | None) -> dict[str, Any]:
        """One stock with its price (and a series when asked for), as a JSON-ready body."""
        stock = await self.get(symbol)
        if stock is None:
            raise StockNotFound(normalize_symbol(symbol))
        return await self._presenter.with_series(stock, series)

    async def random(self, series: Interval | None) -> dict[str, Any] | None:
        """A uniformly random stock like ``stock``; None when there are no stocks."""
        stock = await self.repository.random()
        return None if stock is None else await self._presenter.with_series(stock, series)

    async def random_picks(self, count: int) -> dict[str, Any]:
        """``count`` independent uniform draws with their prices, as a JSON-ready body."""
        draws = await asyncio.gather(*(self.repository.random() for _ in range(count)))
        return await self._presenter.picks([s for s in draws if s is not None])

    async def read_logo(self, path: str) -> StoredObject | None:
        """A resized logo by its path under ``logos/``; None when there is none."""
        try:
            return await self.objects.get(f"logos/{path}")
        except ValueError:  # not a valid key: no such logo either
            return None

    async def receive_upload(
        self, chunks: AsyncIterable[bytes], declared_length: int | None
    ) -> UploadOut:
        """Read an upload, refusing it as soon as it passes the byte limit, then store it."""
        limit = self._limits.max_bytes
        too_large = ImageTooLarge(f"upload is larger than the limit of {limit} bytes")
        if declared_length is not None and declared_length > self._limits.max_request_bytes:
            raise too_large
        data = bytearray()
        async for chunk in chunks:
            data.extend(chunk)
            if len(data) > limit:
                raise too_large
        stored = await self.store_upload(bytes(data))
        info = stored.info
        return UploadOut(
            upload_id=stored.upload_id,
            content_type=info.content_type,
            width=info.width,
            height=info.height,
            size=info.size,
        )

    def offer_direct_upload(self) -> DirectUploadOut | None:
        """A new upload id and a form to post its file straight to the object store.

        None when the store cannot take browser uploads (the local filesystem); the image is
        then checked by the resizer instead of here, and refused there (logo ``failed``) if bad.
        """
        upload_id = self._new_id()
        form = self.objects.presigned_upload(
            upload_key(upload_id),
            max_bytes=self._limits.max_bytes,
            expires_seconds=DIRECT_UPLOAD_SECONDS,
        )
        if form is None:
            return None
        return DirectUploadOut(
            upload_id=upload_id, url=form.url, fields=dict(form.fields), expires_at=form.expires_at
        )

    async def create_stock(
        self, symbol: str, name: str, upload_id: str | None, request_key: str | None
    ) -> StockOut:
        """``create``, answered as the stock without its price (a new stock has none yet)."""
        stock = await self.create(symbol, name, upload_id, request_key)
        return await self.present(stock, with_price=False)

    async def change_logo(self, symbol: str, update: LogoUpdate, if_match: int | None) -> StockOut:
        """Link a new logo upload (``pending``), or record the resize result."""
        if update.state == "pending":
            stock = await self.request_logo(symbol, update.upload_id, if_match)
        elif update.state == "ready":
            stock = await self.logo_ready(symbol, update.upload_id, update.key or "")
        else:
            error = update.error or "logo could not be processed"
            stock = await self.logo_failed(symbol, update.upload_id, error)
        return await self.present(stock, with_price=False)

    async def store_upload(self, data: bytes) -> StoredUpload:
        """Validate an uploaded image and store it raw; raise RejectedImage and store nothing."""
        limits = self._limits
        info = await self._images.inspect(
            data, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels
        )
        upload_id = self._new_id()
        await self.objects.put(upload_key(upload_id), data, content_type=info.content_type)
        return StoredUpload(upload_id=upload_id, info=info)

    async def create(
        self, symbol: str, name: str, upload_id: str | None, request_key: str | None
    ) -> Stock:
        """Create a stock; a retry carrying the same request key returns the stored stock.

        A create refused (invalid, or the symbol taken) deletes the upload it names at once,
        unless a stock links that upload: a refused form must not leave an orphan behind.
        """
        try:
            return await self._create(symbol, name, upload_id, request_key)
        except (InvalidStock, StockExists):
            if upload_id is not None:
                await self._discard_quietly(upload_id)
            raise

    async def discard_upload(self, upload_id: str) -> None:
        """Delete a raw upload no stock links (a refused form's); raise UploadLinked if linked."""
        if await self.objects.exists(upload_link_key(upload_id)):
            raise UploadLinked(f"upload {upload_id} is a stock's logo; it is kept")
        await self.objects.delete(upload_key(upload_id))

    async def _create(
        self, symbol: str, name: str, upload_id: str | None, request_key: str | None
    ) -> Stock:
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
            await self._link_and_enqueue(stock.symbol, stock.logo.upload_id)
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
            await self._link_and_enqueue(stock.symbol, upload_id)
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
            await self.objects.delete(upload_link_key(removed.logo.upload_id))
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

    async def _discard_quietly(self, upload_id: str) -> None:
        """``discard_upload`` for a refused create: a linked upload stays, a failure is logged."""
        try:
            await self.discard_upload(upload_id)
        except UploadLinked:
            pass
        except Exception as exc:  # the refusal is the answer; the janitor sweeps it later
            log.warning("could not delete upload %s of a refused create: %s", upload_id, exc)

    async def _link_and_enqueue(self, symbol: str, upload_id: str) -> None:
        """Mark the upload as a stock's (kept for the linked retention), then queue its job."""
        await self.objects.put(upload_link_key(upload_id), b"", content_type="text/plain")
        await self._enqueue(symbol, upload_id)

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
