"""Canary analysis: parsing the services' metrics, and the promote / roll back rules."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from stockday.release.canary import Decision, Thresholds, analyze
from stockday.release.traffic import Traffic, combine, parse_traffic
from stockday.runtime.web.observability import LATENCY, REQUESTS

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


def exposition(service: str, ok: int, errors: int, latency: float) -> str:
    """Metrics as a service exposes them: same names, labels and buckets as web.observability."""
    registry = CollectorRegistry()
    requests = Counter(
        REQUESTS._name, "requests", ["service", "method", "route", "status"], registry=registry
    )
    durations = Histogram(
        LATENCY._name,
        "latency",
        ["service", "method", "route"],
        buckets=BUCKETS,
        registry=registry,
    )
    requests.labels(service, "GET", "/", "2xx").inc(ok)
    requests.labels(service, "GET", "/", "5xx").inc(errors)
    for _ in range(ok + errors):
        durations.labels(service, "GET", "/").observe(latency)
    return generate_latest(registry).decode()


def traffic(requests: int, errors: int, latency: float) -> Traffic:
    return parse_traffic(exposition("frontend", requests - errors, errors, latency))


def test_parse_counts_requests_errors_and_buckets() -> None:
    parsed = parse_traffic(exposition("frontend", ok=90, errors=10, latency=0.003))
    assert parsed.requests == 100
    assert parsed.errors == 10
    assert parsed.error_rate == pytest.approx(0.10)
    assert parsed.buckets[0.0025] == 0
    assert parsed.buckets[0.005] == 100
    assert parsed.buckets[math.inf] == 100


def test_parse_keeps_only_the_named_service() -> None:
    text = exposition("frontend", 5, 0, 0.01) + exposition("stock-symbol", 7, 1, 0.01)
    assert parse_traffic(text, "stock-symbol").requests == 8
    assert parse_traffic(text, "frontend").requests == 5


def test_quantile_interpolates_within_the_bucket_like_prometheus() -> None:
    # 100 observations, all in the (0.005, 0.01] bucket: the median is its middle.
    parsed = traffic(100, 0, 0.007)
    assert parsed.interpolated_quantile(0.5) == pytest.approx(0.0075)
    assert parsed.interpolated_quantile(0.99) == pytest.approx(0.00995)
    assert Traffic().interpolated_quantile(0.99) is None


def test_quantile_beyond_the_last_bucket_is_its_bound() -> None:
    assert traffic(10, 0, 30.0).interpolated_quantile(0.99) == 5


def test_window_subtracts_earlier_reads_and_combines_replicas() -> None:
    before = traffic(100, 0, 0.003)
    after = traffic(300, 20, 0.003)
    window = after.since(before)
    assert (window.requests, window.errors) == (200, 20)
    assert window.buckets[0.005] == 200
    both = combine([window, traffic(50, 0, 0.003)])
    assert (both.requests, both.errors) == (250, 20)


def test_a_restarted_replica_counts_from_zero() -> None:
    before = traffic(1000, 5, 0.003)
    restarted = traffic(120, 0, 0.003)
    assert restarted.since(before).requests == 120


def test_healthy_canary_is_promoted_with_its_reasons() -> None:
    verdict = analyze(traffic(700, 1, 0.004), traffic(300, 0, 0.004))
    assert verdict.decision is Decision.PROMOTE
    assert any("error rate" in reason for reason in verdict.reasons)
    assert any("p99" in reason for reason in verdict.reasons)


def test_failing_canary_is_rolled_back_for_its_error_rate() -> None:
    verdict = analyze(traffic(700, 0, 0.004), traffic(300, 60, 0.004))
    assert verdict.decision is Decision.ROLLBACK
    assert verdict.reasons == [
        "canary error rate 20.00% (60/300) against stable 0.00% (0/700): above the allowed 1.00%"
    ]


def test_slow_canary_is_rolled_back_for_its_latency() -> None:
    verdict = analyze(traffic(700, 0, 0.004), traffic(300, 0, 0.2))
    assert verdict.decision is Decision.ROLLBACK
    assert len(verdict.reasons) == 1
    assert "p99" in verdict.reasons[0]


def test_small_latency_differences_stay_within_the_slack() -> None:
    # 2.5x slower, but only by a few milliseconds: bucket resolution, not a regression.
    assert analyze(traffic(700, 0, 0.002), traffic(300, 0, 0.007)).decision is Decision.PROMOTE


def test_too_little_canary_traffic_is_no_evidence() -> None:
    verdict = analyze(traffic(700, 0, 0.004), traffic(20, 0, 0.004))
    assert verdict.decision is Decision.ROLLBACK
    assert "fewer than the 100 needed" in verdict.reasons[0]


def test_thresholds_are_settable() -> None:
    lenient = Thresholds(min_requests=10, max_error_rate_increase=0.25)
    assert analyze(traffic(700, 0, 0.004), traffic(20, 4, 0.004), lenient).decision is (
        Decision.PROMOTE
    )
