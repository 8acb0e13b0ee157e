"""Market data: the provider port, its two adapters and the choice between them."""

from __future__ import annotations

from stockday.domain.prices import Interval
from stockday.marketdata.alphavantage import AlphaVantageProvider
from stockday.marketdata.base import (
    Bar,
    MarketDataProvider,
    ProviderError,
    Quote,
    RateLimited,
    UnknownSymbol,
)
from stockday.marketdata.simulated import SimulatedProvider
from stockday.runtime.settings import Settings

__all__ = [
    "AlphaVantageProvider",
    "Bar",
    "Interval",
    "MarketDataProvider",
    "ProviderError",
    "Quote",
    "RateLimited",
    "SimulatedProvider",
    "UnknownSymbol",
    "build_provider",
]


def build_provider(settings: Settings) -> MarketDataProvider:
    """Alpha Vantage when an API key is configured, the offline simulation otherwise."""
    secret = settings.alpha_vantage_api_key
    api_key = secret.get_secret_value().strip() if secret is not None else ""
    if not api_key:
        return SimulatedProvider()
    return AlphaVantageProvider(
        api_key=api_key,
        base_url=settings.alpha_vantage_url,
        timeout=settings.http_timeout_seconds,
    )
