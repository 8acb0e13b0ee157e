"""A stage's settings, read from the env file its Kubernetes overlay is generated from.

``deploy/k8s/overlays/<stage>/stockday.env`` holds the ``STOCKDAY_*`` values the services of a
stage run with; the ConfigMaps are generated from it, and this module reads the same file to name
the table, the queues, the bucket, the CDN host and the memcached name, so the infrastructure
and the services cannot disagree. Values the file does not set fall back to the defaults of
:class:`stockday.runtime.settings.Settings` itself (maximum receives, visibility timeout, upload
retention), which is what the services fall back to as well.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aws_cdk import Duration
from aws_cdk import aws_logs as logs
from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from stockday.aws.schema import dead_letter_queue_name
from stockday.runtime.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[3]
OVERLAYS_DIR = REPO_ROOT / "deploy" / "k8s" / "overlays"
ENV_FILE_NAME = "stockday.env"
STAGES = ("staging", "production")

# What the infrastructure names; a stage's env file must set each of these.
REQUIRED = (
    "STOCKDAY_AWS_REGION",
    "STOCKDAY_DYNAMODB_TABLE",
    "STOCKDAY_LOGO_JOBS_QUEUE",
    "STOCKDAY_LOGO_EVENTS_QUEUE",
    "STOCKDAY_S3_BUCKET",
    "STOCKDAY_MEMCACHED_SERVERS",
)


class EnvFileSettings(Settings):
    """The services' settings from given values and the code's defaults only.

    The environment of whoever runs ``cdk synth`` must not leak into the infrastructure, so the
    environment, dotenv and secrets sources are dropped.
    """

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


@dataclass(frozen=True)
class Sizing:
    """What differs between stages besides names: capacity, redundancy, retention."""

    vpc_cidr: str
    nat_gateways: int
    node_instance_types: tuple[str, ...]
    nodes_min: int
    nodes_max: int
    cache_node_type: str
    cache_nodes: int
    log_retention: logs.RetentionDays
    log_bucket_days: int


SIZING: Mapping[str, Sizing] = {
    # One NAT gateway: staging tolerates losing egress with one zone.
    "staging": Sizing(
        vpc_cidr="10.20.0.0/16",
        nat_gateways=1,
        node_instance_types=("t3.medium",),
        nodes_min=3,
        nodes_max=6,
        cache_node_type="cache.t4g.micro",
        cache_nodes=2,
        log_retention=logs.RetentionDays.ONE_MONTH,
        log_bucket_days=90,
    ),
    "production": Sizing(
        vpc_cidr="10.30.0.0/16",
        nat_gateways=3,
        node_instance_types=("t3.large", "t3a.large"),
        nodes_min=3,
        nodes_max=12,
        cache_node_type="cache.t4g.small",
        cache_nodes=3,
        log_retention=logs.RetentionDays.ONE_YEAR,
        log_bucket_days=365,
    ),
}


@dataclass(frozen=True)
class Stage:
    """One stage: its name, the env file's lines and the settings they make."""

    name: str
    env_file: Path
    values: Mapping[str, str]
    settings: Settings

    @property
    def production(self) -> bool:
        return self.name == "production"

    @property
    def sizing(self) -> Sizing:
        return SIZING[self.name]

    @property
    def namespace(self) -> str:
        """Kubernetes namespace of the five services."""
        return f"stockday-{self.name}"

    @property
    def cluster_name(self) -> str:
        return f"stockday-{self.name}"

    @property
    def jobs_dead_letter_queue(self) -> str:
        return dead_letter_queue_name(self.settings.logo_jobs_queue)

    @property
    def events_dead_letter_queue(self) -> str:
        return dead_letter_queue_name(self.settings.logo_events_queue)

    @property
    def visibility_timeout(self) -> Duration:
        # Rounded up, as the SQS adapter rounds: never shorter than the services expect.
        return Duration.seconds(math.ceil(self.settings.queue_visibility_seconds))

    @property
    def upload_retention_days(self) -> int:
        # S3 lifecycle rules count whole days; from the longer (linked) retention, rounded up,
        # so the backstop never deletes an upload the janitor would keep.
        return math.ceil(self.settings.linked_upload_retention_seconds / 86_400)

    @property
    def cdn_host(self) -> str | None:
        """Host name of the logo CDN, or None when logos are served by signed URLs."""
        base = self.settings.logo_cdn_base_url
        if not base:
            return None
        parts = urlsplit(base)
        if parts.scheme != "https" or not parts.hostname or parts.path.strip("/"):
            raise StageError(
                f"{self.env_file}: STOCKDAY_LOGO_CDN_BASE_URL must be https://<host> with no "
                f"path (logo keys start with logos/), got {base!r}"
            )
        return parts.hostname

    @property
    def memcached_endpoint(self) -> tuple[str, int]:
        """Host and port of STOCKDAY_MEMCACHED_SERVERS: the one name the stack makes resolvable."""
        servers = [s.strip() for s in self.settings.memcached_servers.split(",") if s.strip()]
        if len(servers) != 1:
            raise StageError(
                f"{self.env_file}: STOCKDAY_MEMCACHED_SERVERS must name one host:port (the "
                f"cluster's DNS name), got {self.settings.memcached_servers!r}"
            )
        host, _, port = servers[0].rpartition(":")
        if "." not in host or not port.isdigit():
            raise StageError(
                f"{self.env_file}: STOCKDAY_MEMCACHED_SERVERS must be <name>.<zone>:<port>, "
                f"got {servers[0]!r}"
            )
        return host, int(port)

    @property
    def memcached_zone(self) -> str:
        """The private hosted zone holding the memcached name: the name minus its first label."""
        return self.memcached_endpoint[0].partition(".")[2]


class StageError(ValueError):
    """A stage's env file cannot name the infrastructure."""


def read_env_file(path: Path) -> dict[str, str]:
    """``NAME=value`` lines as kustomize's configMapGenerator reads them; # comments skipped."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise StageError(f"{path}:{number}: expected NAME=value, got {raw!r}")
        values[name.strip()] = value
    return values


def load_stage(name: str, overlays_dir: Path = OVERLAYS_DIR) -> Stage:
    """The stage ``name`` from its overlay's env file, validated by the services' own model."""
    if name not in SIZING:
        raise StageError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
    path = overlays_dir / name / ENV_FILE_NAME
    values = read_env_file(path)
    missing = [key for key in REQUIRED if not values.get(key)]
    if missing:
        raise StageError(f"{path}: missing {', '.join(missing)}")
    fields: dict[str, Any] = {
        key.removeprefix("STOCKDAY_").lower(): value
        for key, value in values.items()
        if key.startswith("STOCKDAY_")
    }
    try:
        settings = EnvFileSettings(**fields)
    except ValidationError as exc:
        raise StageError(f"{path}: {exc}") from exc
    return Stage(name=name, env_file=path, values=values, settings=settings)
