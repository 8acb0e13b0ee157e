"""`stockday dlq list` and `stockday dlq redrive` on a local data directory."""

from __future__ import annotations

import asyncio
from pathlib import Path

from typer.testing import CliRunner

from stockday.cli import app
from stockday.contracts.messages import LogoRequested, encode
from stockday.runtime import composition
from stockday.runtime.settings import Settings


async def _poison(settings: Settings, count: int) -> None:
    queue = composition.message_queue(settings, settings.logo_jobs_queue)
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
        queue = composition.message_queue(settings, settings.logo_jobs_queue)
        result = await queue.stats()
        await queue.close()
        return result.visible, result.dead_letters

    assert asyncio.run(stats()) == (3, 0)


async def _dead_letters(settings: Settings, bodies: list[str]) -> list[str]:
    """Send ``bodies`` and let them die as a consumer that keeps failing would; their ids."""
    queue = composition.message_queue(settings, settings.logo_jobs_queue)
    ids = [await queue.send(body) for body in bodies]
    for _ in range(settings.queue_max_receives + 1):
        await queue.receive(max_messages=10, wait_seconds=0.2, visibility_timeout=0)
    await queue.close()
    return ids


def test_list_shows_why_each_letter_died(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, queue_max_receives=2)
    job = LogoRequested(symbol="POISON", upload_id="f" * 32, upload_key="uploads/" + "f" * 32)
    bodies = ["poison 0", '{"type": "logo.teleported", "schema_version": 1}', encode(job)]
    ids = asyncio.run(_dead_letters(settings, bodies))
    env = {"STOCKDAY_QUEUE_MAX_RECEIVES": "2", "COLUMNS": "400"}
    listed = CliRunner().invoke(app, ["dlq", "list", "--data-dir", str(tmp_path)], env=env)
    assert listed.exit_code == 0, listed.output
    assert "reason" in listed.output
    assert "malformed: body is not JSON" in listed.output
    assert "malformed: invalid message at body: Input tag 'logo.teleported'" in listed.output
    assert (
        f"logo.requested for POISON: handler failed 2 times (see the consumer logs for message "
        f"{ids[2]})"
    ) in listed.output
