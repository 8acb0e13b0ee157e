"""Seeded random generators for the tests whose assertions are statistical (chi-square over
random picks): with a fixed seed such a test gives the same answer on every run."""

from __future__ import annotations

import random

from stockday.runtime.settings import Settings
from stockday.stocks.sqlite import SqliteStockRepository

SEED = 20_240_611


def seeded_rng(seed: int = SEED) -> random.Random:
    return random.Random(seed)


def seeded_stocks(settings: Settings, seed: int = SEED) -> SqliteStockRepository:
    """The local stock repository of ``settings``, its random picks drawn from ``seed``."""
    return SqliteStockRepository(settings.database_path, rng=seeded_rng(seed))
