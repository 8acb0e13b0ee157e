"""The service level objectives, defined once.

Every objective is a ratio of bad events to all events over a window, and a target share of
good ones over 30 days. Alerts follow the multi-window, multi-burn-rate scheme: an alert needs
the error budget burning fast over a long window (so it is significant) and over a short one (so
it is still happening, and resets soon after a fix). Two pairs page, two open a ticket.

Pure data: the Prometheus rules (``stockday.slo.prometheus``), the CloudWatch alarms of the CDK
app (``deploy/aws``) and the status view turn it into their own queries.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

PERIOD_DAYS = 30


class Severity(StrEnum):
    PAGE = "page"
    TICKET = "ticket"


@dataclass(frozen=True, slots=True)
class BurnWindow:
    """Fire when the budget burns at ``burn_rate`` times the sustainable pace over both windows.

    ``budget_share`` is what such a burn spends of the 30-day budget over the long window.
    """

    long: str
    short: str
    burn_rate: float
    severity: Severity

    @property
    def budget_share(self) -> float:
        return self.burn_rate * SECONDS[self.long] / (PERIOD_DAYS * SECONDS["1d"])


# The SRE workbook's windows for a 30-day objective: 2 % of the budget in an hour or 5 % in six
# hours pages; 10 % in a day or in three days opens a ticket.
BURN_WINDOWS: tuple[BurnWindow, ...] = (
    BurnWindow("1h", "5m", 14.4, Severity.PAGE),
    BurnWindow("6h", "30m", 6.0, Severity.PAGE),
    BurnWindow("1d", "2h", 3.0, Severity.TICKET),
    BurnWindow("3d", "6h", 1.0, Severity.TICKET),
)

SECONDS = {
    "5m": 300,
    "30m": 1800,
    "1h": 3600,
    "2h": 7200,
    "6h": 21600,
    "1d": 86400,
    "3d": 259200,
    "30d": 2592000,
}
# Every window a ratio is recorded over: the alerts' and the whole period (budget left).
WINDOWS: tuple[str, ...] = tuple(SECONDS)


class Journey(StrEnum):
    """What a user does that an objective is about."""

    PAGE_VIEWS = "page-views"  # opening the home page
    LOGO_PROCESSING = "logo-processing"  # from a logo's request to the logo ready


class Indicator(StrEnum):
    AVAILABILITY = "availability"
    LATENCY = "latency"


@dataclass(frozen=True, slots=True)
class Objective:
    """One objective. ``name`` labels its series and names its alarms; ``threshold_seconds``
    is the latency a good event must not exceed (latency objectives only)."""

    name: str
    journey: Journey
    indicator: Indicator
    target: float
    description: str
    runbook: str
    threshold_seconds: float | None = None

    @property
    def budget(self) -> float:
        """The share of events that may be bad: 1 - target."""
        return round(1.0 - self.target, 10)

    @property
    def alert_stem(self) -> str:
        """``PageViewsAvailability``: what its alerts' names start with."""
        return "".join(part.capitalize() for part in self.name.split("-"))


# The home page's latency bound; a bucket of stockday_http_request_duration_seconds.
PAGE_VIEW_SECONDS = 0.25
# From the logo request to the logo recorded ready; a bucket of stockday_logo_ready_seconds.
LOGO_READY_SECONDS = 10.0

OBJECTIVES: tuple[Objective, ...] = (
    Objective(
        "page-views-availability",
        Journey.PAGE_VIEWS,
        Indicator.AVAILABILITY,
        0.999,
        "99.9 % of home page views are answered without a server error (5xx).",
        "See which replicas answer 5xx (`stockday status`, the frontend's logs) and whether "
        "stock-symbol or its stores are down; roll back a release that brought it.",
    ),
    Objective(
        "page-views-latency",
        Journey.PAGE_VIEWS,
        Indicator.LATENCY,
        0.99,
        f"99 % of home page views are answered within {PAGE_VIEW_SECONDS * 1000:g} ms.",
        "Look for a saturated service (CPU, replicas at their ceiling), a slow stock store or "
        "price cache, and a release that brought it; scale out or roll back.",
        threshold_seconds=PAGE_VIEW_SECONDS,
    ),
    Objective(
        "logo-processing-availability",
        Journey.LOGO_PROCESSING,
        Indicator.AVAILABILITY,
        0.99,
        "99 % of accepted logo uploads end with the logo ready, not failed.",
        "Read the failed logos' errors in queue-worker's and logo-resizer's logs and the dead "
        "letters (`stockday dlq list`); fix the cause, then `stockday dlq redrive`.",
    ),
    Objective(
        "logo-processing-latency",
        Journey.LOGO_PROCESSING,
        Indicator.LATENCY,
        0.99,
        f"99 % of logos are ready within {LOGO_READY_SECONDS:g} s of their request.",
        "Check the logo-jobs and logo-events queues' depth and oldest message, that "
        "logo-resizer and queue-worker run and keep up, and that stock-symbol answers them.",
        threshold_seconds=LOGO_READY_SECONDS,
    ),
)


def objective(name: str) -> Objective:
    for candidate in OBJECTIVES:
        if candidate.name == name:
            return candidate
    raise ValueError(f"no objective {name!r}: one of {', '.join(o.name for o in OBJECTIVES)}")
