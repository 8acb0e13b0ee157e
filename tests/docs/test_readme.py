"""The README's configuration table is the Settings class, its commands exist, and the README
and docs/ link only to files that exist: they are the project's front door and its map."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from stockday.runtime.settings import Settings, variable_name

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
PERFORMANCE = (ROOT / "docs" / "performance.md").read_text()
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BENCHMARK_COMMAND = re.compile(r"uv run python (bench/\S+\.py)")


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


@pytest.mark.parametrize("text", [README, PERFORMANCE], ids=["README.md", "docs/performance.md"])
def test_documented_benchmarks_exist(text: str) -> None:
    for script in BENCHMARK_COMMAND.findall(text):
        assert (ROOT / script).is_file(), script


def test_performance_page_documents_every_benchmark() -> None:
    documented = set(BENCHMARK_COMMAND.findall(PERFORMANCE))
    assert documented == {
        "bench/page_view.py",
        "bench/random_pick.py",
        "bench/logo_pipeline.py",
        "bench/footprint.py",
        "bench/http_servers.py",
        "bench/hostile_images.py",
    }


def test_readme_stays_a_front_door() -> None:
    assert len(README.splitlines()) <= 200


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_relative_links_resolve(document: Path) -> None:
    for target in re.findall(r"\]\(([^)\s]+)\)", document.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = target.split("#", 1)[0]
        assert (document.parent / path).exists(), f"{document.name} links to missing {target}"


def test_the_repository_cites_nothing_outside_itself() -> None:
    """Docs, code and pipelines point at the project's own docs/, never at a brief or tracker
    that a reader of the repository does not have."""
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    outside = re.compile(rb"\b(SYSTEM|ENGINEERING)\.md\b|\bissue #?\d+\b", re.IGNORECASE)
    citing = [
        name.decode()
        for name in tracked
        if name
        and not name.endswith(b".lock")
        and not name.startswith(b"deploy/tools/")
        and (ROOT / name.decode()).is_file()
        and outside.search((ROOT / name.decode()).read_bytes())
    ]
    assert citing == []
