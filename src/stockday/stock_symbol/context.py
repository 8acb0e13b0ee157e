"""What stock-symbol's routes need, built from settings: the service and the adapters under it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import httpx

from stockday.clients.stock_price import StockPriceClient
from stockday.logos.workers import ImageWorkers
from stockday.runtime import composition
from stockday.runtime.settings import Settings
from stockday.stock_symbol.moderation import Moderation
from stockday.stock_symbol.presenter import StockPresenter
from stockday.stock_symbol.pricing import PriceLookup
from stockday.stock_symbol.service import StockService, UploadLimits
from stockday.stocks.base import StockRepository


@dataclass
class SymbolContext:
    """The service, the readiness checks of its adapters, and what to close on shutdown."""

    service: StockService
    moderation: Moderation
    readiness_checks: Sequence[Callable[[], Awaitable[None]]]
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def aclose(self) -> None:
        for close in self.closers:
            await close()


def build_context(
    settings: Settings,
    price_client: httpx.AsyncClient | None,
    repository: StockRepository | None = None,
) -> SymbolContext:
    """Wire the adapters from settings (eagerly); a given price client stays the caller's, a
    given repository (a test's, drawing from a seeded generator) is used instead of one."""
    repository = repository or composition.stock_repository(settings)
    jobs = composition.message_queue(settings, settings.logo_jobs_queue)
    # Only for its dead letters: operators look at and re-drive them through stock-symbol.
    events = composition.message_queue(settings, settings.logo_events_queue)
    objects = composition.object_store(settings)
    cache = composition.cache(settings)
    http = price_client or httpx.AsyncClient(
        base_url=settings.price_url,
        timeout=settings.http_timeout_seconds,
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
    )
    prices = PriceLookup(
        cache=cache,
        prices=StockPriceClient(http),
        repository=repository,
        ttl_seconds=settings.price_cache_ttl_seconds,
        persist_interval_seconds=settings.price_persist_interval_seconds,
    )
    service = StockService(
        repository=repository,
        jobs=jobs,
        objects=objects,
        prices=prices,
        limits=UploadLimits(
            max_bytes=settings.max_upload_bytes,
            max_pixels=settings.max_upload_pixels,
            max_request_bytes=settings.max_upload_request_bytes,
        ),
        images=ImageWorkers(
            threads=settings.image_threads, budget_bytes=settings.image_memory_budget_bytes
        ),
    )
    moderation = Moderation(
        repository=repository,
        presenter=StockPresenter(prices=prices, objects=objects),
        queues={jobs.name: jobs, events.name: events},
    )
    owned_client = [http.aclose] if price_client is None else []
    return SymbolContext(
        service=service,
        moderation=moderation,
        readiness_checks=[repository.check, jobs.check, objects.check],
        closers=[
            *owned_client,
            repository.close,
            jobs.close,
            events.close,
            objects.close,
            cache.close,
        ],
    )
