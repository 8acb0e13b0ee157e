"""What every command shares: the console it prints to, its settings, the signals that stop it."""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType

import typer
from pydantic import ValidationError
from rich.console import Console

from stockday.runtime.settings import Settings, describe_invalid_settings, get_settings

console = Console()


def valid_settings() -> Settings:
    """The settings, or a clear message per invalid variable and exit code 2 (no traceback)."""
    try:
        return get_settings()
    except ValidationError as exc:
        for line in describe_invalid_settings(exc):
            console.print(f"[red]{line}[/red]")
        raise typer.Exit(2) from None


def settings_for(data_dir: Path | None) -> Settings:
    """The valid settings, with ``data_dir`` in place of the configured one when given."""
    settings = valid_settings()
    return settings.model_copy(update={"data_dir": data_dir}) if data_dir else settings


class StopSignal:
    """Turns SIGTERM and SIGINT into a flag that the command's loop checks."""

    def __init__(self) -> None:
        self.requested = False
        signal.signal(signal.SIGTERM, self._request)
        signal.signal(signal.SIGINT, self._request)

    def _request(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
