"""Adapter selection: the one place that maps settings to concrete adapters for every service."""

from __future__ import annotations

from stockday.cache.base import Cache
from stockday.objects.base import ObjectStore
from stockday.queues.base import MessageQueue
from stockday.settings import Settings
from stockday.stocks.base import StockRepository


def stock_repository(settings: Settings) -> StockRepository:
    from stockday.stocks.sqlite import SqliteStockRepository

    return SqliteStockRepository(settings.database_path)


def message_queue(settings: Settings, name: str) -> MessageQueue:
    from stockday.queues.sqlite import SqliteQueue

    return SqliteQueue(settings.queue_path, name, max_receives=settings.queue_max_receives)


def object_store(settings: Settings) -> ObjectStore:
    from stockday.objects.filesystem import FilesystemObjectStore

    return FilesystemObjectStore(settings.objects_dir)


def cache(settings: Settings) -> Cache:
    from stockday.cache.memory import MemoryCache

    return MemoryCache()
