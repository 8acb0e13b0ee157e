"""`stockday status` reads figures from the services' own /metrics answers."""

from __future__ import annotations

import math

from stockday.release.traffic import Traffic, parse_traffic

METRICS = """\
# TYPE stockday_http_requests_total counter
stockday_http_requests_total{route="/",service="frontend",status="2xx"} 96.0
stockday_http_requests_total{route="/",service="frontend",status="5xx"} 4.0
# TYPE stockday_http_request_duration_seconds histogram
stockday_http_request_duration_seconds_bucket{le="0.01",route="/",service="frontend"} 50.0
stockday_http_request_duration_seconds_bucket{le="0.05",route="/",service="frontend"} 98.0
stockday_http_request_duration_seconds_bucket{le="0.1",route="/",service="frontend"} 100.0
stockday_http_request_duration_seconds_bucket{le="+Inf",route="/",service="frontend"} 100.0
stockday_http_request_duration_seconds_count{route="/",service="frontend"} 100.0
stockday_http_request_duration_seconds_sum{route="/",service="frontend"} 1.5
"""


def test_requests_errors_and_quantiles_are_read_from_metrics() -> None:
    traffic = parse_traffic(METRICS)
    assert traffic.requests == 100
    assert traffic.errors == 4
    assert traffic.quantile(0.5) == 0.01
    assert traffic.quantile(0.99) == 0.1
    assert traffic.buckets[math.inf] == 100


def test_rates_come_from_the_difference_of_two_scrapes() -> None:
    earlier = Traffic(requests=10, errors=1, buckets={0.01: 10, math.inf: 10})
    later = Traffic(requests=30, errors=1, buckets={0.01: 10, 0.05: 30, math.inf: 30})
    delta = later.since(earlier)
    assert (delta.requests, delta.errors) == (20, 0)
    assert delta.quantile(0.5) == 0.05  # the new requests were all slower than 10 ms


def test_no_traffic_has_no_quantile() -> None:
    assert Traffic().quantile(0.99) is None
