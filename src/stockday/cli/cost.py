"""`stockday cost`: the monthly AWS cost of the production deployment, line by line."""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Annotated, Any

import typer
from rich.table import Table

from stockday.cli.session import console
from stockday.release.cost import (
    ASSUMPTION_NAMES,
    PRICE_SOURCE,
    PRICES_AS_OF,
    Assumptions,
    LineItem,
    line_items,
    total,
)


def _invalid(message: str) -> typer.Exit:
    console.print(f"[red]stockday cost: {message}[/red]")
    return typer.Exit(2)


def _overrides(pairs: list[str]) -> dict[str, Any]:
    """``name=value`` pairs for any other assumption, converted to the field's type."""
    kinds = {f.name: f.type for f in fields(Assumptions)}
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in ASSUMPTION_NAMES:
            raise _invalid(
                f"--set expects NAME=VALUE with NAME one of {', '.join(ASSUMPTION_NAMES)}"
            )
        try:
            values[name] = int(raw) if kinds[name] in ("int", int) else float(raw)
        except ValueError:
            raise _invalid(f"--set {name}: {raw!r} is not a number") from None
    return values


def _print_table(items: list[LineItem], daily_visitors: float) -> None:
    table = Table(title=f"Monthly AWS cost at {daily_visitors:,.0f} daily visitors (us-east-1)")
    table.add_column("Item")
    table.add_column("Quantity", justify="right")
    table.add_column("Unit price (USD)", justify="right")
    table.add_column("Monthly USD", justify="right")
    for item in items:
        quantity = f"{item.quantity:,.2f} {item.unit}"
        table.add_row(item.name, quantity, f"{item.unit_price:.10g}", f"{item.monthly:,.2f}")
    table.add_section()
    table.add_row("Total", "", "", f"{total(items):,.2f}")
    console.print(table)
    console.print(f"Prices as of {PRICES_AS_OF}: {PRICE_SOURCE}. An estimate, not an invoice.")


def _as_json(assumptions: Assumptions, items: list[LineItem]) -> str:
    lines = [
        {"item": i.name, "quantity": i.quantity, "unit": i.unit, "unit_price": i.unit_price}
        | {"monthly_usd": round(i.monthly, 4), "fixed": i.fixed}
        for i in items
    ]
    document = {
        "prices_as_of": PRICES_AS_OF,
        "price_source": PRICE_SOURCE,
        "assumptions": {name: getattr(assumptions, name) for name in ASSUMPTION_NAMES},
        "lines": lines,
        "total_monthly_usd": round(total(items), 2),
    }
    return json.dumps(document, indent=2)


def cost(
    daily_visitors: Annotated[float, typer.Option(help="Visitors a day.")],
    page_views_per_visitor: Annotated[float, typer.Option(help="Page views a visit.")] = 10.0,
    uploads_per_visitor: Annotated[float, typer.Option(help="Stocks added a visit.")] = 0.1,
    cache_hit_ratio: Annotated[float, typer.Option(help="Pages from the page cache.")] = 0.95,
    logo_bytes: Annotated[float, typer.Option(help="Bytes of one resized logo.")] = 15_000,
    upload_bytes: Annotated[float, typer.Option(help="Bytes of one uploaded logo.")] = 200_000,
    page_bytes: Annotated[float, typer.Option(help="Bytes of one page via the ALB.")] = 40_000,
    zones: Annotated[int, typer.Option(help="Availability zones.")] = 3,
    nat_gateways: Annotated[int, typer.Option(help="NAT gateways.")] = 3,
    assume: Annotated[
        list[str] | None,
        typer.Option("--set", help="Any other assumption as NAME=VALUE, e.g. cache_nodes=0."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead.")] = False,
) -> None:
    """Print the monthly AWS cost of the production deployment at a given traffic."""
    given = {
        "daily_visitors": daily_visitors,
        "page_views_per_visitor": page_views_per_visitor,
        "uploads_per_visitor": uploads_per_visitor,
        "cache_hit_ratio": cache_hit_ratio,
        "logo_bytes": logo_bytes,
        "upload_bytes": upload_bytes,
        "page_bytes": page_bytes,
        "zones": zones,
        "nat_gateways": nat_gateways,
    }
    assumptions = Assumptions(**(given | _overrides(assume or [])))
    try:
        items = line_items(assumptions)
    except ValueError as exc:
        raise _invalid(str(exc)) from None
    if as_json:
        typer.echo(_as_json(assumptions, items))
    else:
        _print_table(items, daily_visitors)
