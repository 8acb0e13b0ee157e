"""`stockday smoke`: a read-only check of a deployed site, run by the pipeline after a deploy."""

from __future__ import annotations

import time
from typing import Annotated

import httpx
import typer
from rich.table import Table

from stockday.cli.session import console

SMOKE_CHECKS = (
    ("/api/ready", "ready", "readiness: the frontend reaches stock-symbol"),
    ("/", "Stock of the Day", "home page with a random stock"),
    ("/watchlist", "Watchlist", "watchlist page"),
    ("/stocks/new", "csrf", "add-stock form with its CSRF token"),
)


def _wait_until_ready(client: httpx.Client, base: str, wait: float) -> None:
    """Poll readiness for up to ``wait`` seconds; the checks report what is still wrong."""
    deadline = time.monotonic() + wait
    while True:
        try:
            if client.get(f"{base}/api/ready").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() >= deadline:
            return
        time.sleep(1.0)


def _check(client: httpx.Client, base: str, path: str, marker: str) -> tuple[str, str, bool]:
    """One check: its HTTP status, the body (or what went wrong), and whether it passed."""
    try:
        response = client.get(f"{base}{path}")
    except httpx.HTTPError as exc:
        return "-", f"{type(exc).__name__}: {exc}", False
    status, body = str(response.status_code), response.text
    csp = response.headers.get("content-security-policy", "")
    ok = response.status_code == 200 and marker in body
    if ok and path != "/api/ready" and "default-src" not in csp:
        ok, body = False, "no Content-Security-Policy header"
    return status, body, ok


def smoke(
    url: Annotated[str, typer.Argument(help="The site's base URL, e.g. https://staging.example")],
    wait: Annotated[
        float, typer.Option(min=0, help="Seconds to wait for the site to become ready")
    ] = 60.0,
) -> None:
    """Read-only smoke test of a deployed site (the pipeline runs it after each deploy)."""
    base = url.rstrip("/")
    table = Table("check", "status", "ms", "result")
    failed = False
    with httpx.Client(timeout=10.0, follow_redirects=False) as client:
        _wait_until_ready(client, base, wait)
        for path, marker, what in SMOKE_CHECKS:
            started = time.perf_counter()
            status, body, ok = _check(client, base, path, marker)
            elapsed = f"{(time.perf_counter() - started) * 1000:.0f}"
            result = "[green]ok[/green]" if ok else f"[red]failed[/red] {body[:80]}"
            table.add_row(f"{what} ({path})", status, elapsed, result)
            failed = failed or not ok
    console.print(table)
    raise typer.Exit(1 if failed else 0)
