"""The local stack's Prometheus (Debian's package), with `stockday up --prometheus`.

It scrapes every replica's own /metrics (a job per service, a target per replica, generated
from the topology, as the operator's pod monitors find pods) and evaluates the service level
objectives' rules, generated from the same catalogue as the rules shipped in deploy/. It
listens on 127.0.0.1 only and keeps its data in the stack's data directory; `stockday status`
reads the objectives from its HTTP API. The supervisor starts and restarts it like HAProxy.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from stockday.devstack.topology import FRONT_HOST, Topology
from stockday.runtime import catalog

NAME = "prometheus"
# Local figures for a month at most, as the objectives' period.
RETENTION = "30d"
# Where Debian installs it, for a PATH without /usr/bin.
INSTALLED_AT = ("/usr/bin/prometheus",)


class PrometheusMissing(RuntimeError):
    """Debian's prometheus package is not installed."""


def prometheus_binary() -> str:
    found = shutil.which("prometheus") or next(
        (path for path in INSTALLED_AT if Path(path).exists()), None
    )
    if found is None:
        raise PrometheusMissing(
            "Prometheus is not installed; `stockday up --prometheus` runs Debian's: "
            "apt-get install prometheus (or start the stack without --prometheus)"
        )
    return found


def _duration(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


def prometheus_config(topology: Topology, scrape_seconds: float, rules: Path) -> str:
    """Prometheus's configuration: every replica scraped, the SLO rules evaluated, each
    ``scrape_seconds``."""
    jobs: list[dict[str, Any]] = []
    for service in catalog.SERVICES:
        targets = [
            {
                "targets": [f"{replica.host}:{replica.port}"],
                # Not "service": the replicas' own metrics carry that label.
                "labels": {"replica": replica.name, "zone": replica.zone.name},
            }
            for replica in topology.replicas_of(service.name)
        ]
        jobs.append(
            {
                "job_name": service.name,
                "metrics_path": service.health.metrics,
                "static_configs": targets,
            }
        )
    config = {
        "global": {
            "scrape_interval": _duration(scrape_seconds),
            "scrape_timeout": _duration(min(scrape_seconds, 10.0)),
            "evaluation_interval": _duration(scrape_seconds),
        },
        "rule_files": [str(rules)],
        "scrape_configs": jobs,
    }
    return yaml.safe_dump(config, sort_keys=False)


def prometheus_argv(topology: Topology, config: Path, data: Path) -> list[str]:
    """The command line of the stack's Prometheus."""
    return [
        prometheus_binary(),
        f"--config.file={config}",
        f"--storage.tsdb.path={data}",
        f"--storage.tsdb.retention.time={RETENTION}",
        f"--web.listen-address={FRONT_HOST}:{topology.prometheus_port}",
        "--log.level=warn",
    ]
