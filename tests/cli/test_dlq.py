"""`stockday dlq list` and `stockday dlq redrive` on a local data directory."""

from __future__ import annotations

import asyncio
from pathlib import Path

from typer.testing import CliRunner

from stockday import backends
from stockday.cli import app
from stockday.settings import Settings


async def _poison(settings: Settings, count: int) -> None:
    queue = backends.message_queue(settings, settings.logo_jobs_queue)
    for i in range(count):
        await queue.send(f"poison {i}")
    # Receive each more than max_receives times without deleting: SQS-style redrive to the DLQ.
    for _ in range(settings.queue_max_receives + 1):
        await queue.receive(max_messages=10, wait_seconds=0.2, visibility_timeout=0)
    await queue.close()


def test_list_and_redrive_dead_letters(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, queue_max_receives=2)
    asyncio.run(_poison(settings, 3))
    runner = CliRunner()
    env = {"STOCKDAY_QUEUE_MAX_RECEIVES": "2", "COLUMNS": "200"}
    listed = runner.invoke(app, ["dlq", "list", "--data-dir", str(tmp_path)], env=env)
    assert listed.exit_code == 0, listed.output
    assert "3 dead" in listed.output
    assert "poison 0" in listed.output
    redriven = runner.invoke(
        app, ["dlq", "redrive", "logo-jobs", "--data-dir", str(tmp_path)], env=env
    )
    assert redriven.exit_code == 0, redriven.output
    assert "re-drove 3" in redriven.output

    async def stats() -> tuple[int, int]:
        queue = backends.message_queue(settings, settings.logo_jobs_queue)
        result = await queue.stats()
        await queue.close()
        return result.visible, result.dead_letters

    assert asyncio.run(stats()) == (3, 0)
