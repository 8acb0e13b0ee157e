"""An invalid setting is one clear line and exit code 2, not a traceback or a crash loop."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from stockday.cli import app
from stockday.runtime.settings import get_settings


@pytest.mark.parametrize(
    "argv",
    [
        ["up", "--port-base", "18900"],
        ["serve", "stock-symbol", "--port", "18901"],
        ["consume", "queue-worker"],
        ["dlq", "list"],
    ],
)
def test_invalid_setting_is_named(argv: list[str]) -> None:
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            app, argv, env={"STOCKDAY_MAX_UPLOAD_BYTES": "ten megabytes", "COLUMNS": "200"}
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2, result.output
    assert "invalid setting STOCKDAY_MAX_UPLOAD_BYTES" in result.output
    assert "Traceback" not in result.output


def test_a_limit_the_limits_library_cannot_read_is_named() -> None:
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            app,
            ["serve", "frontend", "--port", "18902"],
            env={"STOCKDAY_RATE_LIMIT_CREATES": "ten a minute", "COLUMNS": "200"},
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2, result.output
    assert "invalid setting STOCKDAY_RATE_LIMIT_CREATES" in result.output
    assert "ten a minute" in result.output
    assert "Traceback" not in result.output
