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

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from stockday.release.traffic import Traffic


class Decision(StrEnum):
    PROMOTE = "promote"
    ROLLBACK = "rollback"


@dataclass(frozen=True)
class Thresholds:
    min_requests: int = 100
    max_error_rate_increase: float = 0.01
    max_latency_ratio: float = 1.5
    latency_slack_seconds: float = 0.025


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
        "p50_seconds": traffic.interpolated_quantile(0.5),
        "p99_seconds": traffic.interpolated_quantile(0.99),
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
    stable_p99 = stable.interpolated_quantile(0.99)
    canary_p99 = canary.interpolated_quantile(0.99)
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
