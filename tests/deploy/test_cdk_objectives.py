"""The service level objectives as CloudWatch alarms in each stage's template: a composite
alarm per objective and severity, to the alarm topic, over metric-math alarms of the error ratio
on each window of the catalogue's burn-rate pairs (those a day long at most)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stockday.slo.catalog import OBJECTIVES, SECONDS, Journey, Objective, Severity
from tests.deploy.cdk_support import STAGES, Template, import_infra, only, resources, synthesized

stages = pytest.mark.parametrize("stage", STAGES)


def template(stage: str) -> Template:
    return synthesized()[stage]


def objective_alarms(stage: str, goal: Objective) -> dict[str, dict[str, Any]]:
    return {
        logical: alarm
        for logical, alarm in resources(template(stage), "AWS::CloudWatch::Alarm").items()
        if logical.startswith(f"Objectives{goal.alert_stem}")
    }


def composite(stage: str, goal: Objective, severity: Severity) -> dict[str, Any]:
    kind = "FastBurn" if severity is Severity.PAGE else "SlowBurn"
    [found] = [
        alarm
        for logical, alarm in resources(template(stage), "AWS::CloudWatch::CompositeAlarm").items()
        if logical.startswith(f"Objectives{goal.alert_stem}{kind}")
    ]
    return found


def burns() -> Any:
    return import_infra().objectives.alarm_burns


@stages
@pytest.mark.parametrize("goal", OBJECTIVES, ids=lambda goal: goal.name)
def test_each_window_alarms_on_its_error_ratio_above_the_burn_rate(
    stage: str, goal: Objective
) -> None:
    alarms = objective_alarms(stage, goal)
    expected = set()
    for severity in Severity:
        for burn in burns()(severity):
            for window in (burn.long, burn.short):
                expected.add((SECONDS[window], round(burn.burn_rate * goal.budget, 10)))
    found = set()
    for alarm in alarms.values():
        props = alarm["Properties"]
        [expression] = [m for m in props["Metrics"] if m.get("ReturnData", True)]
        assert "Expression" in expression
        periods = {m["MetricStat"]["Period"] for m in props["Metrics"] if "MetricStat" in m}
        assert len(periods) == 1
        assert props["ComparisonOperator"] == "GreaterThanThreshold"
        assert props["TreatMissingData"] == "notBreaching"
        assert "AlarmActions" not in props  # the composite notifies
        found.add((periods.pop(), props["Threshold"]))
    assert found == expected
    assert max(period for period, _ in found) <= SECONDS["1d"]


@stages
@pytest.mark.parametrize("goal", OBJECTIVES, ids=lambda goal: goal.name)
@pytest.mark.parametrize("severity", Severity)
def test_a_composite_per_objective_and_severity_notifies_the_topic(
    stage: str, goal: Objective, severity: Severity
) -> None:
    topic_id, _ = only(template(stage), "AWS::SNS::Topic")
    props = composite(stage, goal, severity)["Properties"]
    assert props["AlarmActions"] == [{"Ref": topic_id}]
    assert props["OKActions"] == [{"Ref": topic_id}]
    assert goal.runbook in props["AlarmDescription"]
    rule = json.dumps(props["AlarmRule"])
    windows = {f"{b.long}{b.short}{w}" for b in burns()(severity) for w in (b.long, b.short)}
    for logical in objective_alarms(stage, goal):
        named = any(logical.startswith(f"Objectives{goal.alert_stem}{w}") for w in windows)
        assert (logical in rule) == named, logical
    assert rule.count(" AND ") == len(burns()(severity))


@stages
def test_page_view_alarms_read_the_site_load_balancer_only_once_it_is_given(stage: str) -> None:
    t = template(stage)
    parameter = t["Parameters"]["SiteLoadBalancer"]
    assert parameter["Default"] == ""
    for goal in OBJECTIVES:
        conditional = goal.journey is Journey.PAGE_VIEWS
        for alarm in objective_alarms(stage, goal).values():
            assert (alarm.get("Condition") == "HasSiteLoadBalancer") == conditional
            metrics = [
                m["MetricStat"]["Metric"]
                for m in alarm["Properties"]["Metrics"]
                if "MetricStat" in m
            ]
            for metric in metrics:
                if conditional:
                    assert metric["Namespace"] == "AWS/ApplicationELB"
                    assert metric["Dimensions"] == [
                        {"Name": "LoadBalancer", "Value": {"Ref": "SiteLoadBalancer"}}
                    ]
                else:
                    assert metric["MetricName"] in {"LogoJobs", "LogoReadySeconds"}


@stages
def test_latency_alarms_count_the_share_within_the_objective_bound(stage: str) -> None:
    for goal in OBJECTIVES:
        if goal.threshold_seconds is None:
            continue
        for alarm in objective_alarms(stage, goal).values():
            stats = {
                m["MetricStat"]["Stat"] for m in alarm["Properties"]["Metrics"] if "MetricStat" in m
            }
            assert stats == {f"PR(0:{goal.threshold_seconds:g})"}
