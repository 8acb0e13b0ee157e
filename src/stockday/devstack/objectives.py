"""The service level objectives as `stockday status` shows them, read from the stack's
Prometheus (`stockday up --prometheus`), which records each objective's error ratio over every
window of the catalogue (``stockday.slo.prometheus``).

For each objective: its target, what was achieved over its period (up to 30 days: locally,
since Prometheus started keeping the stack's figures), the error budget left over that period,
and the burn rates over the last hour and five minutes (1x spends the budget exactly over the
period; the alerts page at 14.4x over an hour).
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from rich.table import Table

from stockday.slo.catalog import BURN_WINDOWS, OBJECTIVES, Objective
from stockday.slo.prometheus import ratio_record

WINDOWS = ("30d", "1h", "5m")
# The fastest burn that pages: a burn rate shown in red from there.
PAGING_BURN = max(burn.burn_rate for burn in BURN_WINDOWS)


@dataclass(frozen=True)
class ObjectiveRow:
    objective: Objective
    ratios: dict[str, float]  # window -> error ratio; a window without events is missing

    def burn(self, window: str) -> float | None:
        ratio = self.ratios.get(window)
        return None if ratio is None else ratio / self.objective.budget

    @property
    def achieved(self) -> float | None:
        ratio = self.ratios.get("30d")
        return None if ratio is None else 1.0 - ratio

    @property
    def budget_left(self) -> float | None:
        """The share of the period's error budget not spent yet (negative: overspent)."""
        burn = self.burn("30d")
        return None if burn is None else 1.0 - burn


class PrometheusUnavailable(RuntimeError):
    """The stack's Prometheus did not answer a query."""


def prometheus_ready(url: str, client: httpx.Client) -> tuple[bool, str]:
    """Whether Prometheus is ready, and why not."""
    try:
        answer = client.get(f"{url}/-/ready")
    except httpx.HTTPError as exc:
        return False, f"not answering: {type(exc).__name__}"
    return answer.status_code == 200, "" if answer.status_code == 200 else answer.text.strip()


def read_objectives(url: str, client: httpx.Client) -> list[ObjectiveRow]:
    """Every objective's recorded error ratios, by one instant query of Prometheus's API."""
    names = "|".join(ratio_record(window) for window in WINDOWS)
    try:
        answer = client.get(f"{url}/api/v1/query", params={"query": f'{{__name__=~"{names}"}}'})
        answer.raise_for_status()
        results = answer.json()["data"]["result"]
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        raise PrometheusUnavailable(f"Prometheus at {url} did not answer: {exc}") from exc
    by_name: dict[str, dict[str, float]] = {goal.name: {} for goal in OBJECTIVES}
    for series in results:
        labels, (_, value) = series["metric"], series["value"]
        window = labels["__name__"].removeprefix("slo:error_ratio:rate")
        if labels.get("slo") in by_name and value not in ("NaN", "+Inf", "-Inf"):
            by_name[labels["slo"]][window] = float(value)
    return [ObjectiveRow(goal, by_name[goal.name]) for goal in OBJECTIVES]


def render_objectives(rows: list[ObjectiveRow], url: str) -> Table:
    table = Table(title=f"Service level objectives, from Prometheus at {url}")
    for column in ("objective", "target", "achieved", "budget left", "burn 1h", "burn 5m"):
        table.add_column(column, justify="left" if column == "objective" else "right")
    for row in rows:
        table.add_row(
            row.objective.name,
            _percent(row.objective.target),
            _percent(row.achieved),
            _budget(row.budget_left),
            _burn(row.burn("1h")),
            _burn(row.burn("5m")),
        )
    return table


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.2f} %"


def _budget(left: float | None) -> str:
    if left is None:
        return "-"
    colour = "green" if left > 0.5 else "yellow" if left > 0 else "red"
    return f"[{colour}]{100 * left:.1f} %[/{colour}]"


def _burn(rate: float | None) -> str:
    if rate is None:
        return "-"
    colour = "red" if rate >= PAGING_BURN else "yellow" if rate > 1 else "green"
    return f"[{colour}]{rate:.2f}x[/{colour}]"
