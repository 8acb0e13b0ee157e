"""The objectives as Prometheus recording and alerting rules.

Recording rules keep each objective's error ratio over every window as
``slo:error_ratio:rate<window>{slo="<name>"}``; alerting rules compare them with the burn rates
of the catalogue. The rules are summed ``by (namespace)``: one figure per stage on a Prometheus
shared by stages, one in all locally, where there is no namespace label.

``python -m stockday.slo.prometheus`` writes the committed copies under deploy/ (a plain rules
file, and the same groups in a PrometheusRule for the Prometheus operator); a test holds them
equal to what this module generates.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from stockday.slo.catalog import (
    BURN_WINDOWS,
    OBJECTIVES,
    WINDOWS,
    BurnWindow,
    Indicator,
    Journey,
    Objective,
    Severity,
)

RULES_FILE = Path("deploy") / "prometheus" / "slo-rules.yaml"
PROMETHEUS_RULE_FILE = Path("deploy") / "k8s" / "base" / "slo-rules.yaml"
HOME_PAGE = 'service="frontend",method="GET",route="/"'
# How each objective counts its events: the series of all events, and of the bad ones.
_HTTP_REQUESTS = "stockday_http_requests_total"
_HTTP_LATENCY = "stockday_http_request_duration_seconds"
_LOGO_JOBS = "stockday_logo_jobs_total"
_LOGO_READY = "stockday_logo_ready_seconds"
OPERATIONS_DOC = "docs/operations.md#service-level-objectives"


def ratio_record(window: str) -> str:
    """The name of the recorded error ratio over ``window``."""
    return f"slo:error_ratio:rate{window}"


def _sum_rate(selector: str, window: str) -> str:
    return f"sum by (namespace) (rate({selector}[{window}]))"


def _le(seconds: float) -> str:
    """A bucket's ``le`` as prometheus-client writes it (10 -> "10.0", 0.25 -> "0.25")."""
    return repr(float(seconds))


def error_ratio(goal: Objective, window: str) -> str:
    """PromQL of the share of bad events over ``window``; no value without events."""
    if goal.indicator is Indicator.LATENCY:
        assert goal.threshold_seconds is not None
        metric, labels = (
            (_HTTP_LATENCY, HOME_PAGE) if goal.journey is Journey.PAGE_VIEWS else (_LOGO_READY, "")
        )
        good = (
            f'{metric}_bucket{{{labels}{"," if labels else ""}le="{_le(goal.threshold_seconds)}"}}'
        )
        every = f"{metric}_count{{{labels}}}" if labels else f"{metric}_count"
        return f"1 - {_sum_rate(good, window)} / {_sum_rate(every, window)}"
    if goal.journey is Journey.PAGE_VIEWS:
        every = f"{_HTTP_REQUESTS}{{{HOME_PAGE}}}"
        bad = f'{_HTTP_REQUESTS}{{{HOME_PAGE},status="5xx"}}'
    else:
        every, bad = _LOGO_JOBS, f'{_LOGO_JOBS}{{outcome="failed"}}'
    # A counter of bad events appears only once one happens: count none as zero.
    all_rate = _sum_rate(every, window)
    return f"({_sum_rate(bad, window)} or 0 * {all_rate}) / {all_rate}"


def _number(value: float) -> str:
    return f"{value:.6g}"


def _burn_condition(goal: Objective, burn: BurnWindow) -> str:
    limit = _number(burn.burn_rate * goal.budget)
    selector = f'{{slo="{goal.name}"}}'
    return (
        f"({ratio_record(burn.long)}{selector} > {limit}"
        f" and {ratio_record(burn.short)}{selector} > {limit})"
    )


def alert_name(goal: Objective, severity: Severity) -> str:
    return f"{goal.alert_stem}{'FastBurn' if severity is Severity.PAGE else 'SlowBurn'}"


def alert_rule(goal: Objective, severity: Severity) -> dict[str, Any]:
    burns = [burn for burn in BURN_WINDOWS if burn.severity is severity]
    pairs = ", ".join(f"{b.long}/{b.short} at {b.burn_rate:g}x" for b in burns)
    return {
        "alert": alert_name(goal, severity),
        "expr": " or ".join(_burn_condition(goal, burn) for burn in burns),
        "labels": {"severity": severity.value, "slo": goal.name},
        "annotations": {
            "summary": f"{goal.name} is burning its error budget ({pairs})",
            "description": f"Objective: {goal.description} Burning its 30-day budget at "
            f"{pairs} would spend it long before the period ends.",
            "runbook": f"{goal.runbook} ({OPERATIONS_DOC})",
        },
    }


def rule_groups() -> list[dict[str, Any]]:
    """One group: every objective's ratio over every window, then the alerts that read them.

    One group, because Prometheus evaluates a group's rules in order and groups independently:
    the alerts then always read the ratios of the same evaluation, never ones older than the
    query lookback (which would be no data when evaluations are minutes apart).
    """
    records = [
        {
            "record": ratio_record(window),
            "expr": error_ratio(goal, window),
            "labels": {
                "slo": goal.name,
                "journey": goal.journey.value,
                "indicator": goal.indicator.value,
            },
        }
        for goal in OBJECTIVES
        for window in WINDOWS
    ]
    alerts = [alert_rule(goal, severity) for goal in OBJECTIVES for severity in Severity]
    return [{"name": "stockday-slo", "rules": [*records, *alerts]}]


def _dump(document: dict[str, Any]) -> str:
    return yaml.safe_dump(document, sort_keys=False, width=120, allow_unicode=True)


HEADER = (
    "# Generated from src/stockday/slo/catalog.py by `uv run python -m stockday.slo.prometheus`:\n"
    "# edit the catalogue, not this file.\n"
)


def rules_file() -> str:
    """A plain Prometheus rules file (``rule_files:``)."""
    return HEADER + _dump({"groups": rule_groups()})


def prometheus_rule() -> str:
    """The same rules as a PrometheusRule object of the Prometheus operator."""
    document = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "stockday-slo", "labels": {"app.kubernetes.io/name": "stockday-slo"}},
        "spec": {"groups": rule_groups()},
    }
    return HEADER + _dump(document)


def write(root: Path) -> list[Path]:
    """Write both committed copies under the repository ``root``; the paths written."""
    written = []
    for relative, text in ((RULES_FILE, rules_file()), (PROMETHEUS_RULE_FILE, prometheus_rule())):
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write(Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()):
        print(f"wrote {path}")
