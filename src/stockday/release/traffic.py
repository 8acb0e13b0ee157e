"""A service's traffic as its own Prometheus metrics count it: requests, errors, latency.

Read by `stockday status` (rates and quantiles between two scrapes) and by `stockday canary
analyze` (canary against stable over a window), from the counters and histograms every
service exports (stockday.runtime.web.observability, stockday.runtime.consumer).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

# metric sample -> (what it adds to: "requests" or "buckets", the label and value of an error)
_REQUESTS = {
    "stockday_http_requests_total": ("status", "5xx"),
    "stockday_consumer_messages_total": ("outcome", "retried"),
}
_LATENCY_BUCKETS = {
    "stockday_http_request_duration_seconds_bucket",
    "stockday_consumer_job_duration_seconds_bucket",
}


@dataclass
class Traffic:
    """Cumulative counters of one or more scrapes: requests (or messages), errors (5xx answers,
    or messages a consumer failed to handle) and the latency histogram."""

    requests: float = 0.0
    errors: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)  # latency upper bound -> count

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def since(self, earlier: Traffic | None) -> Traffic:
        """What happened after ``earlier``; a counter reset (restarted process) counts from 0."""
        if earlier is None or self.requests < earlier.requests:
            return self
        return Traffic(
            requests=self.requests - earlier.requests,
            errors=self.errors - earlier.errors,
            buckets={b: n - earlier.buckets.get(b, 0.0) for b, n in self.buckets.items()},
        )

    def __add__(self, other: Traffic) -> Traffic:
        buckets = dict(self.buckets)
        for bound, count in other.buckets.items():
            buckets[bound] = buckets.get(bound, 0.0) + count
        return Traffic(self.requests + other.requests, self.errors + other.errors, buckets)

    def quantile(self, q: float) -> float | None:
        """The q-quantile of latency as the upper bound of its bucket; None without traffic."""
        total = self.buckets.get(math.inf, 0.0)
        if total <= 0:
            return None
        rank = q * total
        return next((b for b in sorted(self.buckets) if self.buckets[b] >= rank), None)

    def interpolated_quantile(self, q: float) -> float | None:
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


def parse_traffic(exposition: str, service: str | None = None) -> Traffic:
    """The traffic in one Prometheus text exposition, optionally of one service only."""
    traffic = Traffic()
    buckets: dict[float, float] = defaultdict(float)
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if service is not None and sample.labels.get("service") != service:
                continue
            if sample.name in _REQUESTS:
                traffic.requests += sample.value
                label, error = _REQUESTS[sample.name]
                if sample.labels.get(label) == error:
                    traffic.errors += sample.value
            elif sample.name in _LATENCY_BUCKETS:
                buckets[float(sample.labels["le"])] += sample.value
    traffic.buckets = dict(buckets)
    return traffic


def combine(parts: Iterable[Traffic]) -> Traffic:
    """The traffic of several replicas together."""
    total = Traffic()
    for part in parts:
        total = total + part
    return total
