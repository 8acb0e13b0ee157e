"""Routes for the stack itself are not served on the site's port; each replica still serves
its metrics on its own port, for scraping."""

from __future__ import annotations

import httpx
import pytest

from tests.support.stack import RunningStack

pytestmark = pytest.mark.e2e


def test_metrics_are_not_served_on_the_site_port(abuse_stack: RunningStack) -> None:
    with httpx.Client(timeout=10) as client:
        for path in ("/metrics", "/metrics/", "/metrics/anything"):
            assert client.get(f"{abuse_stack.frontend}{path}").status_code == 404, path
        assert client.get(f"{abuse_stack.frontend}/").status_code == 200
        for replica in abuse_stack.replicas_of("frontend"):
            scraped = client.get(f"{abuse_stack.replica_url(replica)}/metrics")
            assert scraped.status_code == 200
            assert "stockday_http_requests_total" in scraped.text
