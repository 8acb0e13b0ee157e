"""Price series vocabulary shared by the provider port, the stock-price API and the pages."""

from __future__ import annotations

from enum import StrEnum


class Interval(StrEnum):
    """The spacing of a price series: one bar per trading day, week or month."""

    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
