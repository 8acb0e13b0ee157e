"""How the pages show what stock-symbol answers: the filters, tests and globals of the templates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal
from urllib.parse import urlsplit

from stockday.contracts.stocks import LogoOut, PriceOut
from stockday.runtime import composition
from stockday.runtime.settings import Settings

SOURCE_LABELS = {"simulated": "simulated data", "alphavantage": "Alpha Vantage"}

Direction = Literal["up", "down", "flat"]


def logo_src(logo: LogoOut, http_origins: Sequence[str] = ()) -> str | None:
    """The URL for ``<img src>``: only when ready, and only same-site, https or from one of
    ``http_origins`` (``http://host:port``, an S3 emulator's)."""
    url = logo.url
    if logo.state != "ready" or not url:
        return None
    if url.startswith("/") and not url.startswith("//"):
        return url
    if url.startswith("https://"):
        return url
    return url if any(url.startswith(f"{o}/") for o in http_origins) else None


def price_direction(price: PriceOut) -> Direction:
    """Which way the price moved since the previous close."""
    # Compare the rounded value, so "+0.00" is never drawn as a rise or a fall.
    cents = round(price.change, 2)
    return "up" if cents > 0 else "down" if cents < 0 else "flat"


def is_simulated(price: PriceOut) -> bool:
    return price.source == "simulated"


def source_label(source: str) -> str:
    """A price source's name for people."""
    return SOURCE_LABELS.get(source, source)


def initials(symbol: str) -> str:
    """What the logo placeholder shows: the first two letters or digits of the symbol."""
    return "".join(ch for ch in symbol if ch.isalnum())[:2] or "?"


def format_money(value: float) -> str:
    return f"{value:,.2f}"


def format_signed(value: float) -> str:
    # round() first so a tiny negative change is "+0.00", not "-0.00".
    return f"{round(value, 2) + 0.0:+,.2f}"


def format_percent(value: float) -> str:
    return f"{round(value, 2) + 0.0:+.2f}%"


def image_origins(settings: Settings) -> tuple[str, ...]:
    """Plain-http origins logos may come from: an S3 emulator's (or a test CDN's) endpoint.

    The S3 endpoint is the one the object store actually uses, however it is configured
    (``STOCKDAY_AWS_ENDPOINT_URL``, botocore's ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``).
    Real logos come from the site itself or over https (a CDN, signed S3 URLs).
    """
    if settings.backend != "aws":
        return ()
    origins = []
    for url in (composition.object_store_endpoint(settings), settings.logo_cdn_base_url):
        parts = urlsplit(url or "")
        if parts.scheme == "http" and parts.netloc:
            origins.append(f"http://{parts.netloc}")
    return tuple(dict.fromkeys(origins))
