"""The Prometheus rules of the objectives, run by promtool on synthetic series.

For each objective, series that burn its error budget at a chosen rate (a share of bad events
of ``burn * (1 - target)``) over chosen minutes; `promtool test rules` then checks which alerts
fire when. Every alert is shown firing for each of its window pairs, and not firing on a short
spike, on a burn below its rates and on a healthy service. The rules file committed under
deploy/ must be what the catalogue generates, and pass `promtool check rules`.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from stockday.slo import prometheus
from stockday.slo.catalog import BURN_WINDOWS, OBJECTIVES, WINDOWS, Objective, Severity

ROOT = Path(__file__).resolve().parents[2]
PER_MINUTE = 1000.0  # events per minute in every scenario

Segment = tuple[int, float]  # (minutes, burn rate)


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is needed: apt-get install prometheus (.ci/run installs it)"
    return found


def counter(increments: list[float]) -> str:
    """promtool's notation of a counter starting at 0 and growing by each increment in turn,
    one sample per increment (runs of equal increments as ``start+step x n``)."""
    parts, total, index = ["0"], 0.0, 0
    while index < len(increments):
        step, run = increments[index], 1
        while index + run < len(increments) and increments[index + run] == step:
            run += 1
        parts.append(f"{total + step:.12g}+{step:.12g}x{run - 1}")
        total += step * run
        index += run
    return " ".join(parts)


def series(goal: Objective, segments: list[Segment], interval: int) -> list[dict[str, str]]:
    """The counters the services would export for ``goal``, one sample per ``interval``
    minutes: the good events and all of them, or the bad ones and all of them."""
    good: list[float] = []
    bad: list[float] = []
    for minutes, burn in segments:
        failing = PER_MINUTE * interval * burn * goal.budget
        good += [PER_MINUTE * interval - failing] * (minutes // interval)
        bad += [failing] * (minutes // interval)
    every = [g + b for g, b in zip(good, bad, strict=True)]
    page = 'service="frontend",method="GET",route="/"'
    counted: dict[str, list[tuple[str, list[float]]]] = {
        "page-views-availability": [
            (f'stockday_http_requests_total{{{page},status="2xx"}}', good),
            (f'stockday_http_requests_total{{{page},status="5xx"}}', bad),
        ],
        "page-views-latency": [
            (f'stockday_http_request_duration_seconds_bucket{{{page},le="0.25"}}', good),
            (f"stockday_http_request_duration_seconds_count{{{page}}}", every),
        ],
        "logo-processing-availability": [
            ('stockday_logo_jobs_total{outcome="ready"}', good),
            ('stockday_logo_jobs_total{outcome="failed"}', bad),
        ],
        "logo-processing-latency": [
            ('stockday_logo_ready_seconds_bucket{le="10.0"}', good),
            ("stockday_logo_ready_seconds_count", every),
        ],
    }
    # A counter of bad events that never grew is not exported at all, as prometheus-client
    # leaves out a label set never used: the rules must read that as none.
    return [
        {"series": name, "values": counter(values)}
        for name, values in counted[goal.name]
        if any(values)
    ]


def expected(goal: Objective, severity: Severity) -> list[dict[str, Any]]:
    rule = prometheus.alert_rule(goal, severity)
    labels = {
        **rule["labels"],
        "journey": goal.journey.value,
        "indicator": goal.indicator.value,
    }
    return [{"exp_labels": labels, "exp_annotations": rule["annotations"]}]


@dataclass(frozen=True)
class Scenario:
    name: str
    segments: list[Segment]
    fires: dict[Severity, bool]  # at the end of the segments


# Each set of scenarios runs with samples and rule evaluations ``interval`` minutes apart: as
# fine as its shortest window that matters needs, as coarse as the machine's time asks.
FAST_SCENARIOS = (
    # 20x over 1h and 5m (over 14.4), after a healthy 6 h (3.6x over 6h: under its 6x):
    # pages through the first pair; as any fast burn, opens a ticket too.
    Scenario("fast burn", [(360, 0.0), (65, 20.0)], {Severity.PAGE: True, Severity.TICKET: True}),
    # 3 minutes at 20x are 1x over the hour: no page.
    Scenario(
        "short spike", [(120, 0.0), (3, 20.0)], {Severity.PAGE: False, Severity.TICKET: False}
    ),
)
HOURS_SCENARIOS = (
    # 8x: under 14.4 over 1h, over 6 over 6h and 30m: pages through the second pair.
    Scenario("6h burn", [(420, 8.0)], {Severity.PAGE: True, Severity.TICKET: True}),
    # 4x for 26 hours: a ticket through 1d/2h, no page.
    Scenario("1d burn", [(1560, 4.0)], {Severity.PAGE: False, Severity.TICKET: True}),
)
DAYS_SCENARIOS = (
    # 1.5x for three days: a ticket through 3d/6h (under 3 over 1d), no page.
    Scenario("3d burn", [(4380, 1.5)], {Severity.PAGE: False, Severity.TICKET: True}),
    # 0.8x for three days: within budget, nothing.
    Scenario("healthy", [(4380, 0.8)], {Severity.PAGE: False, Severity.TICKET: False}),
)
SCENARIO_SETS = {
    "minutes": (FAST_SCENARIOS, 1),
    "hours": (HOURS_SCENARIOS, 5),
    "days": (DAYS_SCENARIOS, 15),
}


def group(goal: Objective, scenario: Scenario, interval: int) -> dict[str, Any]:
    """One promtool test group: the scenario's series and the alerts expected at its end."""
    minutes = sum(length for length, _ in scenario.segments)
    return {
        "name": f"{goal.name}: {scenario.name}",
        "interval": f"{interval}m",
        "input_series": series(goal, scenario.segments, interval),
        "alert_rule_test": [
            {
                "eval_time": f"{minutes}m",
                "alertname": prometheus.alert_name(goal, severity),
                "exp_alerts": expected(goal, severity) if fires else [],
            }
            for severity, fires in scenario.fires.items()
        ],
    }


def run_promtool_tests(tmp_path: Path, groups: list[dict[str, Any]], evaluation: str) -> None:
    rules = tmp_path / "slo-rules.yaml"
    rules.write_text(prometheus.rules_file())
    tests = tmp_path / "slo-tests.yaml"
    document = {"rule_files": [str(rules)], "evaluation_interval": evaluation, "tests": groups}
    tests.write_text(yaml.safe_dump(document, sort_keys=False))
    result = subprocess.run(
        [promtool(), "test", "rules", str(tests)], capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("scale", SCENARIO_SETS)
@pytest.mark.parametrize("goal", OBJECTIVES, ids=lambda goal: goal.name)
def test_alerts_fire_on_their_burn_rates_and_not_below(
    goal: Objective, scale: str, tmp_path: Path
) -> None:
    scenarios, interval = SCENARIO_SETS[scale]
    groups = [group(goal, scenario, interval) for scenario in scenarios]
    run_promtool_tests(tmp_path, groups, f"{interval}m")


def test_committed_rules_are_what_the_catalogue_generates() -> None:
    stale = "stale: regenerate with `uv run python -m stockday.slo.prometheus`"
    assert (ROOT / prometheus.RULES_FILE).read_text() == prometheus.rules_file(), stale
    assert (ROOT / prometheus.PROMETHEUS_RULE_FILE).read_text() == prometheus.prometheus_rule(), (
        stale
    )


def test_committed_rules_pass_promtool_check() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(ROOT / prometheus.RULES_FILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(OBJECTIVES) * (len(WINDOWS) + len(Severity))} rules found" in result.stdout


def test_the_windows_spend_the_budget_shares_of_the_sre_workbook() -> None:
    shares = {(b.long, b.short): round(b.budget_share, 4) for b in BURN_WINDOWS}
    assert shares == {("1h", "5m"): 0.02, ("6h", "30m"): 0.05, ("1d", "2h"): 0.1, ("3d", "6h"): 0.1}
