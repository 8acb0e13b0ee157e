"""`stockday up --prometheus`, planned: Prometheus's configuration is valid for Prometheus
itself and scrapes every replica with the SLO rules; the supervisor runs it only when asked,
on the port of the stack's plan with its data in the stack's data directory; a missing binary
is one clear line, and nothing starts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from stockday.cli import app
from stockday.devstack import prometheus
from stockday.devstack.prometheus import prometheus_config
from stockday.devstack.supervisor import Stack
from stockday.devstack.topology import Topology
from stockday.runtime.settings import Settings, get_settings
from stockday.slo.prometheus import rules_file
from tests.support.ports import port_is_free
from tests.support.programs import require_program
from tests.support.stack import free_port_base

BASE = 21_000


@pytest.mark.parametrize("zones", [1, 2])
def test_promtool_accepts_the_configuration_and_its_rules(zones: int, tmp_path: Path) -> None:
    promtool = require_program("promtool", "prometheus")
    rules = tmp_path / "slo-rules.yaml"
    rules.write_text(rules_file())
    config = tmp_path / "prometheus.yml"
    plan = Topology(BASE, replicas=2, zones=zones, prometheus=True)
    config.write_text(prometheus_config(plan, 0.5, rules))
    checked = subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    parsed = yaml.safe_load(config.read_text())
    assert parsed["global"]["scrape_interval"] == "500ms"
    assert parsed["global"]["evaluation_interval"] == "500ms"
    scraped = {
        target: group["labels"]["replica"]
        for job in parsed["scrape_configs"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    assert scraped == {f"{r.host}:{r.port}": r.name for r in plan.all_replicas}
    # The replicas label their own metrics by service: a target label of that name would
    # rename theirs and break the rules.
    assert all(
        "service" not in g["labels"] for j in parsed["scrape_configs"] for g in j["static_configs"]
    )


def stack(tmp_path: Path, *, prometheus_on: bool) -> Stack:
    plan = Topology(BASE, replicas=1, prometheus=prometheus_on)
    return Stack(data_dir=tmp_path, topology=plan, settings=Settings(), say=lambda _: None)


def test_without_the_flag_the_stack_runs_no_prometheus(tmp_path: Path) -> None:
    planned = stack(tmp_path, prometheus_on=False)
    assert "prometheus" not in {child.name for child in planned.children}
    assert planned.describe()["prometheus_url"] is None
    assert (BASE + 4) not in {port for _, port in planned.topology.ports()}


def test_with_the_flag_prometheus_listens_on_loopback_with_data_in_the_stack(
    tmp_path: Path,
) -> None:
    planned = stack(tmp_path, prometheus_on=True)
    [child] = [c for c in planned.children if c.name == "prometheus"]
    assert child.replica is None
    assert f"--web.listen-address=127.0.0.1:{BASE + 4}" in child.argv
    assert f"--storage.tsdb.path={tmp_path.resolve() / 'prometheus'}" in child.argv
    assert planned.describe()["prometheus_url"] == f"http://127.0.0.1:{BASE + 4}"
    assert ("127.0.0.1", BASE + 4) in planned.topology.ports()


def test_a_missing_prometheus_is_one_clear_line_and_nothing_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prometheus.shutil, "which", lambda name: None)
    monkeypatch.setattr(prometheus, "INSTALLED_AT", ())
    port_base = free_port_base(1)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            app,
            ["up", "--prometheus", "--replicas", "1", "--port-base", str(port_base)],
            env={"STOCKDAY_DATA_DIR": str(tmp_path), "COLUMNS": "300"},
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2, result.output
    assert "Prometheus is not installed" in result.output
    assert "apt-get install prometheus" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "logs").exists()
    for port in (port_base, port_base + 4):
        assert port_is_free(port)
