"""`stockday dlq`: the dead letters of every queue, with their reasons, and their re-drive."""

from __future__ import annotations

import asyncio
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from stockday.cli.session import console, settings_for
from stockday.queues.base import MessageQueue
from stockday.runtime import catalog
from stockday.runtime.settings import Settings

app = typer.Typer(help="Look at and re-drive dead letters.", no_args_is_help=True)


def _queue_name(setting: str) -> str:
    """A queue's name on the command line: its setting's default ("logo_jobs_queue" -> ...)."""
    return str(Settings.model_fields[setting].default)


# Choices built from the catalog (mypy cannot see their members).
QueueName = StrEnum(  # type: ignore[misc]
    "QueueName", {s.upper(): _queue_name(s) for s in catalog.QUEUE_SETTINGS}
)
SETTING_OF = {_queue_name(s): s for s in catalog.QUEUE_SETTINGS}

DataDirOption = Annotated[
    Path | None, typer.Option(help="Data directory of the local stack (STOCKDAY_DATA_DIR)")
]


def _open(settings: Settings, queue_name: str) -> MessageQueue:
    from stockday.runtime import composition

    return composition.message_queue(settings, getattr(settings, SETTING_OF[queue_name]))


async def _dead_letter_table(settings: Settings, queue_name: str, limit: int) -> Table:
    queue = _open(settings, queue_name)
    try:
        stats = await queue.stats()
        letters = await queue.dead_letters(limit=limit)
    finally:
        await queue.close()
    table = Table(
        title=f"{queue.name}: {stats.visible} waiting, {stats.in_flight} in flight, "
        f"{stats.dead_letters} dead"
    )
    for column in ("message id", "receives", "dead since", "reason", "body"):
        table.add_column(column)
    for letter in letters:
        table.add_row(
            letter.message_id,
            str(letter.receive_count),
            letter.dead_at.isoformat(timespec="seconds"),
            letter.reason,
            letter.body[:80],
        )
    return table


@app.command("list")
def dlq_list(
    data_dir: DataDirOption = None,
    limit: Annotated[int, typer.Option(min=1)] = 20,
) -> None:
    """Dead-letter counts of every queue and the oldest dead letters, with their reasons."""
    settings = settings_for(data_dir)

    async def tables() -> list[Table]:
        return [await _dead_letter_table(settings, name, limit) for name in SETTING_OF]

    for table in asyncio.run(tables()):
        console.print(table)


@app.command("redrive")
def dlq_redrive(
    queue_name: Annotated[QueueName, typer.Argument(help="Queue whose dead letters to re-drive")],
    data_dir: DataDirOption = None,
    limit: Annotated[int | None, typer.Option(min=1)] = None,
) -> None:
    """Move dead letters back to their queue for another try."""
    settings = settings_for(data_dir)

    async def redrive() -> int:
        queue = _open(settings, queue_name.value)
        try:
            return await queue.redrive(limit=limit)
        finally:
            await queue.close()

    moved = asyncio.run(redrive())
    console.print(f"re-drove {moved} dead letters to {queue_name.value}")
