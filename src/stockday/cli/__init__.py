"""The `stockday` command: run the stack, one service, or seed demo data; one module per group."""

from __future__ import annotations

import typer

from stockday.cli import aws, canary, chaos, cost, dlq, operator, seed, services, smoke, stack

app = typer.Typer(help="Stock-of-the-Day: five services, one command.", no_args_is_help=True)
app.command()(stack.up)
app.command()(services.serve)
app.command()(services.consume)
app.command()(seed.seed)
app.command()(stack.status)
app.command()(aws.emulator)
app.command()(aws.provision)
app.add_typer(dlq.app, name="dlq")
app.add_typer(operator.app, name="operator")
app.add_typer(canary.app, name="canary")
app.add_typer(chaos.app, name="chaos")
app.command()(smoke.smoke)
app.command()(cost.cost)


def main() -> None:
    app()


__all__ = ["app", "main"]
