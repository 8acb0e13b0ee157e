"""The README's configuration table is the Settings class, and its commands exist."""

from __future__ import annotations

import re
from pathlib import Path

from stockday.runtime.settings import Settings, variable_name

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_configuration_table_matches_settings() -> None:
    rows = dict(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \| `([^`]*)` \|", README, re.MULTILINE))
    expected = {}
    for name, field in Settings.model_fields.items():
        default = field.default
        expected[variable_name(name)] = (
            default.as_posix() if isinstance(default, Path) else str(default)
        )
    assert rows == expected


def test_readme_commands_are_the_ci_commands() -> None:
    assert "make up" in README
    assert "make test" in README
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.strip().splitlines()[-1] == "make test"
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^up: ", makefile, re.MULTILINE)
    assert re.search(r"^test: ", makefile, re.MULTILINE)


def test_documented_benchmarks_exist() -> None:
    for script in re.findall(r"uv run python (bench/\S+\.py)", README):
        assert (ROOT / script).is_file(), script
