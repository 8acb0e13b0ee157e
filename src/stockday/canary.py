"""Canary analysis: compare a canary's and the stable release's request metrics, then decide.

The inputs are the services' own Prometheus metrics (``stockday_http_requests_total`` by
status class, ``stockday_http_request_duration_seconds`` buckets), read from /metrics
endpoints or saved exposition files. Over a window both sides are read twice and only what
happened in between counts, so a stable release's long history does not dilute the comparison.
The rules are deliberately few and stated in the reasons:

- too little canary traffic is no evidence of health: roll back;
- the canary's error rate may exceed the stable one by at most ``max_error_rate_increase``;
- the canary's p99 latency may exceed ``max_latency_ratio`` times the stable p99 only while the
  difference stays under ``latency_slack_seconds`` (histogram buckets are coarse at the bottom).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from prometheus_client.parser import text_string_to_metric_families

REQUESTS_METRIC = "stockday_http_requests_total"
LATENCY_BUCKET_METRIC = "stockday_http_request_duration_seconds_bucket"


class Decision(StrEnum):
    PROMOTE = "promote"
    ROLLBACK = "rollback"


@dataclass(frozen=True)
class Thresholds:
    min_requests: int = 100
    max_error_rate_increase: float = 0.01
    max_latency_ratio: float = 1.5
    latency_slack_seconds: float = 0.025


@dataclass
class Traffic:
    """Requests, server errors and a latency histogram (cumulative counts by upper bound)."""

    requests: float = 0.0
    errors: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def quantile(self, q: float) -> float | None:
        """The q-quantile of latency, interpolated in its bucket like Prometheus; None if empty."""
        bounds = sorted(self.buckets)
        if not bounds or self.buckets[bounds[-1]] <= 0:
            return None
        rank = q * self.buckets[bounds[-1]]
        lower_bound, lower_count = 0.0, 0.0
        for bound in bounds:
            count = self.buckets[bound]
            if count >= rank:
                if math.isinf(bound):
                    return lower_bound  # beyond the last finite bucket: its bound is all we know
                if count == lower_count:
                    return bound
                return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                    count - lower_count
                )
            lower_bound, lower_count = bound, count
        return bounds[-1]

    def __add__(self, other: Traffic) -> Traffic:
        buckets = dict(self.buckets)
        for bound, count in other.buckets.items():
            buckets[bound] = buckets.get(bound, 0.0) + count
        return Traffic(self.requests + other.requests, self.errors + other.errors, buckets)

    def __sub__(self, earlier: Traffic) -> Traffic:
        """What happened since ``earlier``; a counter reset (restarted process) counts from 0."""
        if self.requests < earlier.requests:
            return self
        buckets = {b: c - earlier.buckets.get(b, 0.0) for b, c in self.buckets.items()}
        return Traffic(self.requests - earlier.requests, self.errors - earlier.errors, buckets)


def parse_traffic(exposition: str, service: str | None = None) -> Traffic:
    """The request traffic in one Prometheus text exposition, optionally of one service only."""
    traffic = Traffic()
    buckets: dict[float, float] = defaultdict(float)
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if service is not None and sample.labels.get("service") != service:
                continue
            if sample.name == REQUESTS_METRIC:
                traffic.requests += sample.value
                if sample.labels.get("status") == "5xx":
                    traffic.errors += sample.value
            elif sample.name == LATENCY_BUCKET_METRIC:
                buckets[float(sample.labels["le"])] += sample.value
    traffic.buckets = dict(buckets)
    return traffic


def combine(parts: Iterable[Traffic]) -> Traffic:
    """The traffic of several replicas together."""
    total = Traffic()
    for part in parts:
        total = total + part
    return total


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    reasons: list[str]
    stable: Mapping[str, float | None]
    canary: Mapping[str, float | None]


def summarize(traffic: Traffic) -> dict[str, float | None]:
    return {
        "requests": traffic.requests,
        "errors": traffic.errors,
        "error_rate": traffic.error_rate,
        "p50_seconds": traffic.quantile(0.5),
        "p99_seconds": traffic.quantile(0.99),
    }


def analyze(stable: Traffic, canary: Traffic, thresholds: Thresholds | None = None) -> Verdict:
    """Promote the canary only if it had enough traffic and is no worse than stable, by rule."""
    limits = thresholds or Thresholds()
    failures: list[str] = []
    passes: list[str] = []
    if canary.requests < limits.min_requests:
        failures.append(
            f"canary served {canary.requests:.0f} requests, fewer than the "
            f"{limits.min_requests} needed to judge it"
        )
    allowed_rate = stable.error_rate + limits.max_error_rate_increase
    rates = (
        f"canary error rate {canary.error_rate:.2%} "
        f"({canary.errors:.0f}/{canary.requests:.0f}) against stable {stable.error_rate:.2%} "
        f"({stable.errors:.0f}/{stable.requests:.0f})"
    )
    if canary.error_rate > allowed_rate:
        failures.append(f"{rates}: above the allowed {allowed_rate:.2%}")
    else:
        passes.append(f"{rates}: within the allowed {allowed_rate:.2%}")
    stable_p99, canary_p99 = stable.quantile(0.99), canary.quantile(0.99)
    if stable_p99 is not None and canary_p99 is not None:
        allowed_p99 = max(
            stable_p99 * limits.max_latency_ratio, stable_p99 + limits.latency_slack_seconds
        )
        latencies = (
            f"canary p99 {canary_p99 * 1000:.1f} ms against stable {stable_p99 * 1000:.1f} ms"
        )
        if canary_p99 > allowed_p99:
            failures.append(f"{latencies}: above the allowed {allowed_p99 * 1000:.1f} ms")
        else:
            passes.append(f"{latencies}: within the allowed {allowed_p99 * 1000:.1f} ms")
    decision = Decision.ROLLBACK if failures else Decision.PROMOTE
    return Verdict(
        decision=decision,
        reasons=failures if failures else passes,
        stable=summarize(stable),
        canary=summarize(canary),
    )
