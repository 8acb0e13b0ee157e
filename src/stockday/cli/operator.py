"""`stockday operator`: what configuring operators needs."""

from __future__ import annotations

import sys

import typer

from stockday.operators.passwords import hash_password

app = typer.Typer(help="Operators of the site: their password hash.", no_args_is_help=True)

MIN_PASSWORD_LENGTH = 12


@app.command("hash-password")
def hash_password_command() -> None:
    """Print the scrypt hash of a password for STOCKDAY_OPERATOR_PASSWORD_HASH (or the secret).

    The password is read from standard input when it is not a terminal (one line), else asked
    for twice without echo; it is never a command-line argument, which `ps` would show.
    """
    if sys.stdin.isatty():
        password = typer.prompt("Operator password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < MIN_PASSWORD_LENGTH:
        typer.echo(f"the password must be at least {MIN_PASSWORD_LENGTH} characters", err=True)
        raise typer.Exit(2)
    typer.echo(hash_password(password))
