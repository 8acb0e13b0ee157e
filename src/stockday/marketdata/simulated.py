"""An offline market-data provider: plausible, deterministic prices for any ticker.

Prices depend only on the symbol and the calendar day, never on the process, so every replica
of stock-price answers the same numbers. The model, in log-price space:

* every symbol has a base price (log-uniform between $10 and $600) and a daily volatility;
* every calendar year has an anchor: the log close of its last weekday, drawn around the base;
* the weekdays of a year follow a random walk bridged between the anchor of the year before and
  the anchor of the year, so a year's path is fixed once and for all and needs no history.

Because a day's bar never depends on "today", yesterday's quote is today's previous close.
Trading days are weekdays; holidays are ignored.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from hashlib import blake2b
from statistics import NormalDist

from stockday.cache.memory import BoundedMap
from stockday.domain.prices import Interval
from stockday.domain.stocks import InvalidStock, normalize_symbol
from stockday.marketdata.base import Bar, Quote, UnknownSymbol

SERIES_BARS: dict[Interval, int] = {
    Interval.DAILY: 100,
    Interval.WEEKLY: 104,
    Interval.MONTHLY: 60,
}

MIN_BASE_PRICE = 10.0
MAX_BASE_PRICE = 600.0
MIN_DAILY_VOLATILITY = 0.012
MAX_DAILY_VOLATILITY = 0.03
# Spread of the yearly anchors around the base price (log space): keeps five years of monthly
# bars within roughly $5..$900 while years still differ visibly.
ANCHOR_SPREAD = 0.22
MIN_BASE_VOLUME = 300_000
MAX_BASE_VOLUME = 30_000_000
MIN_PRICE = 0.01

_NORMAL = NormalDist()


def utc_today() -> date:
    return datetime.now(UTC).date()


def latest_trading_day(day: date) -> date:
    """The day itself on weekdays, else the Friday before."""
    weekday = day.weekday()
    return day - timedelta(days=weekday - 4) if weekday > 4 else day


class SimulatedProvider:
    """Deterministic simulated quotes and series (``source == "simulated"``)."""

    name = "simulated"

    def __init__(self, today: Callable[[], date] = utc_today, *, cache_size: int = 256) -> None:
        self._today = today
        self._series: BoundedMap[tuple[str, date, Interval], list[Bar]] = BoundedMap(
            max(1, cache_size)
        )
        # Year paths are shared by every day of the year and by the three intervals.
        self._years: BoundedMap[tuple[str, int], _YearPath] = BoundedMap(max(8, cache_size // 2))

    async def quote(self, symbol: str) -> Quote:
        symbol = _known(symbol)
        daily = self._window(symbol, Interval.DAILY)
        last, before = daily[-1], daily[-2]
        return Quote(
            symbol=symbol,
            price=last.close,
            previous_close=before.close,
            as_of=last.day,
            source=self.name,
        )

    async def series(self, symbol: str, interval: Interval) -> list[Bar]:
        # A copy: callers may mutate the list, the cached one must stay intact.
        return list(self._window(_known(symbol), Interval(interval)))

    async def close(self) -> None:
        self._series.clear()
        self._years.clear()

    # --- computation -------------------------------------------------------------------

    def _window(self, symbol: str, interval: Interval) -> list[Bar]:
        last_day = latest_trading_day(self._today())
        key = (symbol, last_day, interval)
        bars = self._series.get(key)
        if bars is None:
            bars = self._compute(symbol, last_day, interval)
            self._series.put(key, bars)
        return bars

    def _compute(self, symbol: str, last_day: date, interval: Interval) -> list[Bar]:
        count = SERIES_BARS[interval]
        if interval is Interval.DAILY:
            # 100 weekdays span 20 weeks; one extra week of margin.
            rows = self._days(symbol, last_day - timedelta(weeks=count // 5 + 1), last_day)
        elif interval is Interval.WEEKLY:
            monday = last_day - timedelta(days=last_day.weekday())
            days = self._days(symbol, monday - timedelta(weeks=count - 1), last_day)
            rows = _aggregate(days, lambda d: d - timedelta(days=d.weekday()))
        else:
            month = last_day.year * 12 + last_day.month - 1 - (count - 1)
            days = self._days(symbol, date(month // 12, month % 12 + 1, 1), last_day)
            rows = _aggregate(days, lambda d: d.replace(day=1))
        return [Bar(*row) for row in rows[-count:]]

    def _days(self, symbol: str, first: date, last: date) -> list[_Row]:
        """Daily rows of the weekdays from ``first`` to ``last`` inclusive."""
        rows: list[_Row] = []
        for year in range(first.year, last.year + 1):
            path = self._year(symbol, year)
            rows.extend(path.rows[bisect_left(path.days, first) : bisect_right(path.days, last)])
        return rows

    def _year(self, symbol: str, year: int) -> _YearPath:
        key = (symbol, year)
        path = self._years.get(key)
        if path is None:
            path = _year_path(_profile(symbol), symbol, year)
            self._years.put(key, path)
        return path


def _known(symbol: str) -> str:
    try:
        return normalize_symbol(symbol)
    except InvalidStock:
        # Any ticker-shaped symbol has simulated data; anything else names no stock.
        raise UnknownSymbol(f"no market data for {symbol!r}: not a ticker symbol") from None


@dataclass(frozen=True, slots=True)
class _Profile:
    base_log: float
    volatility: float
    base_volume: float


# (day, open, high, low, close, volume): plain tuples, as Bar objects cost more to build.
_Row = tuple[date, float, float, float, float, int]


@dataclass(frozen=True, slots=True)
class _YearPath:
    days: list[date]
    rows: list[_Row]


def _digest(*parts: object) -> int:
    """A stable 64-bit number from the parts (unlike hash(), identical in every process)."""
    text = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(blake2b(text, digest_size=8, person=b"stockday-sim").digest(), "big")


def _unit(*parts: object) -> float:
    """A stable number strictly between 0 and 1."""
    return (_digest(*parts) + 0.5) / 2**64


def _log_uniform(low: float, high: float, u: float) -> float:
    return math.exp(math.log(low) + u * (math.log(high) - math.log(low)))


def _profile(symbol: str) -> _Profile:
    return _Profile(
        base_log=math.log(_log_uniform(MIN_BASE_PRICE, MAX_BASE_PRICE, _unit(symbol, "base"))),
        volatility=MIN_DAILY_VOLATILITY
        + _unit(symbol, "volatility") * (MAX_DAILY_VOLATILITY - MIN_DAILY_VOLATILITY),
        base_volume=_log_uniform(MIN_BASE_VOLUME, MAX_BASE_VOLUME, _unit(symbol, "volume")),
    )


def _anchor(profile: _Profile, symbol: str, year: int) -> float:
    """Log close of the last weekday of ``year``."""
    return profile.base_log + ANCHOR_SPREAD * _NORMAL.inv_cdf(_unit(symbol, "anchor", year))


def _weekdays(year: int) -> list[date]:
    day = date(year, 1, 1)
    days = []
    while day.year == year:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


def _year_path(profile: _Profile, symbol: str, year: int) -> _YearPath:
    days = _weekdays(year)
    count = len(days)
    # random.Random's random() sequence for an integer seed is stable across Python versions;
    # gauss() is not promised to be, hence the explicit Box-Muller transform.
    rng = random.Random(_digest(symbol, "year", year))
    sigma = profile.volatility
    normals = _normals(rng, 3 * count)
    steps = [sigma * z for z in normals[:count]]
    start = _anchor(profile, symbol, year - 1)
    end = _anchor(profile, symbol, year)
    # Brownian bridge: spread the gap between the free walk's end and the anchor evenly.
    drift = (end - start - sum(steps)) / count

    rows: list[_Row] = []
    log_close = start
    previous_close = _cents(math.exp(start))
    for i, day in enumerate(days):
        # The last weekday lands exactly on the anchor, where next year's path starts.
        log_close = end if i == count - 1 else log_close + steps[i] + drift
        close = _cents(math.exp(log_close))
        # Opens gap a little from the previous close; highs and lows reach beyond both.
        open_ = _cents(previous_close * math.exp(0.3 * sigma * normals[count + i]))
        top, bottom = max(open_, close), min(open_, close)
        high = max(round(top * math.exp(0.6 * sigma * rng.random()), 2), top)
        low = min(_cents(bottom * math.exp(-0.6 * sigma * rng.random())), bottom)
        # Busier days move more.
        volume = profile.base_volume * math.exp(0.3 * normals[2 * count + i] + 8 * abs(steps[i]))
        rows.append((day, open_, high, low, close, int(volume)))
        previous_close = close
    return _YearPath(days=days, rows=rows)


def _normals(rng: random.Random, count: int) -> list[float]:
    """Standard normal numbers (Box-Muller, both outputs of each pair)."""
    values: list[float] = []
    uniform = rng.random
    while len(values) < count:
        radius = math.sqrt(-2.0 * math.log(1.0 - uniform()))
        angle = 2.0 * math.pi * uniform()
        values.append(radius * math.cos(angle))
        values.append(radius * math.sin(angle))
    return values[:count]


def _cents(value: float) -> float:
    return max(MIN_PRICE, round(value, 2))


def _aggregate(days: list[_Row], period: Callable[[date], date]) -> list[_Row]:
    """Merge consecutive daily rows of one period; each is dated by its last trading day."""
    merged: list[_Row] = []
    group: list[_Row] = []
    for row in days:
        if group and period(row[0]) != period(group[0][0]):
            merged.append(_merge(group))
            group = []
        group.append(row)
    if group:
        merged.append(_merge(group))
    return merged


def _merge(group: list[_Row]) -> _Row:
    return (
        group[-1][0],
        group[0][1],
        max(row[2] for row in group),
        min(row[3] for row in group),
        group[-1][4],
        sum(row[5] for row in group),
    )
