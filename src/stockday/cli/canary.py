"""`stockday canary analyze`: promote or roll back a canary release, judged by its metrics."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import httpx
import typer

from stockday.cli.session import console

if TYPE_CHECKING:
    from stockday.release.canary import Verdict
    from stockday.release.traffic import Traffic

app = typer.Typer(help="Judge a canary release from its metrics.", no_args_is_help=True)


def _read_exposition(source: str, timeout: float) -> str:
    """A Prometheus text exposition from a /metrics URL or a saved file."""
    if source.startswith(("http://", "https://")):
        response = httpx.get(source, timeout=timeout)
        response.raise_for_status()
        return response.text
    return Path(source).read_text(encoding="utf-8")


def _read_all(sources: list[str], service: str | None, timeout: float) -> Traffic:
    """The traffic of all ``sources`` together, or exit 2 saying which could not be read."""
    from stockday.release.traffic import combine, parse_traffic

    try:
        return combine(parse_traffic(_read_exposition(s, timeout), service) for s in sources)
    except (httpx.HTTPError, OSError, ValueError) as exc:
        console.print(f"[red]cannot read metrics: {exc}[/red]")
        raise typer.Exit(2) from None


def _print_verdict(verdict: Verdict, json_output: bool) -> None:
    from stockday.release.canary import Decision

    if json_output:
        print(
            json.dumps(
                {
                    "decision": verdict.decision.value,
                    "reasons": verdict.reasons,
                    "stable": verdict.stable,
                    "canary": verdict.canary,
                }
            )
        )
        return
    colour = "green" if verdict.decision is Decision.PROMOTE else "red"
    console.print(f"[bold {colour}]{verdict.decision.value}[/bold {colour}]")
    for reason in verdict.reasons:
        console.print(f"  - {reason}")


@app.command("analyze")
def canary_analyze(
    stable: Annotated[
        list[str], typer.Option(help="Metrics of a stable replica: a /metrics URL or a file")
    ],
    canary: Annotated[
        list[str], typer.Option(help="Metrics of a canary replica: a /metrics URL or a file")
    ],
    window: Annotated[
        float,
        typer.Option(
            min=0,
            help="Seconds between two reads of every URL; only requests in between count "
            "(0: the totals as read, for files)",
        ),
    ] = 60.0,
    service: Annotated[
        str | None, typer.Option(help="Count only this service's requests (label 'service')")
    ] = None,
    min_requests: Annotated[int, typer.Option(min=1)] = 100,
    max_error_rate_increase: Annotated[float, typer.Option(min=0, max=1)] = 0.01,
    max_latency_ratio: Annotated[float, typer.Option(min=1)] = 1.5,
    latency_slack_ms: Annotated[float, typer.Option(min=0)] = 25.0,
    json_output: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON")] = False,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait for a /metrics")] = 10.0,
) -> None:
    """Compare canary and stable error rate and p99 latency; exit 0 to promote, 1 to roll back."""
    from stockday.release.canary import Decision, Thresholds, analyze

    stable_traffic = stable_before = _read_all(stable, service, timeout)
    canary_traffic = canary_before = _read_all(canary, service, timeout)
    if window > 0:
        time.sleep(window)
        stable_traffic = _read_all(stable, service, timeout).since(stable_before)
        canary_traffic = _read_all(canary, service, timeout).since(canary_before)
    verdict = analyze(
        stable_traffic,
        canary_traffic,
        Thresholds(
            min_requests=min_requests,
            max_error_rate_increase=max_error_rate_increase,
            max_latency_ratio=max_latency_ratio,
            latency_slack_seconds=latency_slack_ms / 1000,
        ),
    )
    _print_verdict(verdict, json_output)
    raise typer.Exit(0 if verdict.decision is Decision.PROMOTE else 1)
