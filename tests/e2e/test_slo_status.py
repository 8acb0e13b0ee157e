"""The service level objectives live on the local stack: `stockday up --prometheus` runs
Debian's Prometheus scraping every replica with the SLO rules, and `stockday status` shows the
objectives read from its HTTP API."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.stack import RunningStack, add_stock, free_port_base, status_once
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

PAGE_VIEWS_PER_POLL = 5


@pytest.fixture(scope="module")
def watched_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    stack = RunningStack(
        tmp_path_factory.mktemp("watched") / "data",
        free_port_base(),
        replicas=1,
        # Scrapes and rule evaluations twice a second: figures within seconds, not minutes.
        env={"STOCKDAY_PROMETHEUS_SCRAPE_SECONDS": "0.5"},
        prometheus=True,
    )
    stack.start()
    yield stack
    stack.stop()


def objective_rows(shown: str) -> dict[str, list[str]]:
    """objective -> (target, achieved, budget left, burn 1h, burn 5m), from the status text."""
    rows = {}
    for line in shown.splitlines():
        cells = [cell.strip() for cell in line.strip("│┃ ").split("│")]
        if len(cells) == 6 and cells[0].startswith(("page-views-", "logo-processing-")):
            rows[cells[0]] = cells[1:]
    return rows


def test_status_shows_the_page_view_objectives_from_prometheus(
    watched_stack: RunningStack,
) -> None:
    stack = watched_stack
    shown = ""
    client = httpx.Client(timeout=10)

    def page_views_measured() -> bool:
        # A rate needs a counter seen growing between scrapes: page views keep coming until
        # the figures appear.
        nonlocal shown
        for _ in range(PAGE_VIEWS_PER_POLL):
            assert client.get(stack.frontend + "/").status_code == 200
        shown = status_once(stack)
        rows = objective_rows(shown)
        return rows.get("page-views-availability", ["-", "-"])[1] != "-"

    with client:
        assert client.get(f"{stack.topology.prometheus_url}/-/ready").status_code == 200
        # Scrapes and evaluations are half a second apart: a few polls.
        wait_until(page_views_measured, 60, lambda: shown, interval=0.2)
    rows = objective_rows(shown)
    target, achieved, budget_left, burn_1h, burn_5m = rows["page-views-availability"]
    assert (target, achieved, budget_left) == ("99.90 %", "100.00 %", "100.0 %"), shown
    assert burn_1h == burn_5m == "0.00x", shown
    assert rows["page-views-latency"][0] == "99.00 %", shown
    assert rows["page-views-latency"][1].endswith(" %"), shown
    # No logo was added: no events, no figures, rather than a made-up 100 %.
    assert rows["logo-processing-availability"][1:] == ["-", "-", "-", "-"], shown
    # Prometheus is one of the stack's processes, ready, on the port of the stack's plan.
    assert "prometheus" in stack.stack_pids()
    assert f"127.0.0.1:{stack.port_base + 4}" in shown


def test_prometheus_scrapes_every_replica_and_loads_the_rules(
    watched_stack: RunningStack,
) -> None:
    stack = watched_stack
    with httpx.Client(base_url=stack.topology.prometheus_url, timeout=10) as client:
        targets = client.get("/api/v1/targets").json()["data"]["activeTargets"]
        expected = {f"{r.host}:{r.port}" for r in stack.topology.all_replicas}
        assert {t["labels"]["instance"] for t in targets} == expected
        groups = client.get("/api/v1/rules").json()["data"]["groups"]
        assert [g["name"] for g in groups] == ["stockday-slo"]
        assert len(groups[0]["rules"]) == 4 * (8 + 2)  # objectives x (windows + severities)
    assert (stack.data_dir / "prometheus").is_dir()


def test_a_logo_added_shows_up_in_the_logo_processing_objectives(
    watched_stack: RunningStack,
) -> None:
    stack = watched_stack
    with stack.client(stack.symbol) as api:
        add_stock(api, "SLO")
    shown = ""

    def logo_measured() -> bool:
        nonlocal shown
        shown = status_once(stack)
        rows = objective_rows(shown)
        return all(
            rows.get(name, ["-", "-"])[1] != "-"
            for name in ("logo-processing-availability", "logo-processing-latency")
        )

    # The logo is ready within seconds; then a scrape sees queue-worker's counters grow.
    wait_until(logo_measured, 60, lambda: shown, interval=0.5)
    rows = objective_rows(shown)
    assert rows["logo-processing-availability"][1:3] == ["100.00 %", "100.0 %"], shown
    # Its time is measured (whether within the bound is the machine's business, not this test's).
    assert rows["logo-processing-latency"][1].endswith(" %"), shown
