"""Settings for every service, read from STOCKDAY_* environment variables (pydantic-settings)."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal

from limits import parse_many
from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# A multipart body carries boundaries and part headers around the file.
MULTIPART_FRAMING_BYTES = 16 * 1024
DEFAULT_PORT = 8080


class Settings(BaseSettings):
    """One settings object shared by the five services; each reads what it needs."""

    model_config = SettingsConfigDict(env_prefix="STOCKDAY_", extra="ignore")

    backend: Literal["local", "aws"] = Field(
        default="local",
        description="Which adapters to wire in: local (embedded) or aws (AWS services).",
    )
    data_dir: Path = Field(
        default=Path("./data"), description="Where the local backends keep stocks, queues, objects."
    )

    symbol_url: str = Field(
        default="http://127.0.0.1:8001", description="Base URL of the stock-symbol service."
    )
    price_url: str = Field(
        default="http://127.0.0.1:8002", description="Base URL of the stock-price service."
    )
    http_timeout_seconds: float = Field(
        default=2.0, gt=0, description="Timeout of every service-to-service HTTP call."
    )
    random_pick_batch: int = Field(
        default=100,
        ge=1,
        le=100,
        description="Random picks a frontend worker asks stock-symbol for in one call, at most.",
    )
    random_pick_max_age_seconds: float = Field(
        default=1.0,
        ge=0,
        description="Seconds a prefetched random pick may be shown after it was drawn; 0: none.",
    )
    price_cache_ttl_seconds: int = Field(
        default=900, ge=1, description="How long stock-symbol caches a quote."
    )
    price_persist_interval_seconds: int = Field(
        default=3600,
        ge=0,
        description="Minimum age before a fresh quote is written to the stock as its last price.",
    )

    alpha_vantage_api_key: SecretStr | None = Field(
        default=None, description="Use Alpha Vantage for market data when set; simulated if not."
    )
    alpha_vantage_url: str = Field(
        default="https://www.alphavantage.co/query", description="Alpha Vantage endpoint."
    )

    max_upload_bytes: int = Field(
        default=10 * 1024 * 1024,
        gt=0,
        description="Largest accepted logo upload, in bytes; larger requests get 413 from the "
        "frontend and, on the site's port, from `stockday up`'s HAProxy.",
    )
    max_upload_pixels: int = Field(
        default=25_000_000, gt=0, description="Largest accepted logo, in pixels (width x height)."
    )
    logo_max_side: int = Field(default=256, gt=0, description="Longest side of a resized logo.")
    image_threads: int = Field(
        default=2,
        ge=1,
        description="Image inspections and resizes a replica runs at once, each in a worker "
        "thread off the event loop.",
    )
    image_memory_budget_mb: int = Field(
        default=96,
        ge=16,
        description="Memory a replica's image decodes may hold at once, in MB, estimated from "
        "each image's header; a larger image waits until it can run alone.",
    )
    edge_header_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description="`stockday up`'s HAProxy gives up a request whose headers (and, on the "
        "site's port, first buffer of body) take longer than this to arrive.",
    )
    edge_max_connections: int = Field(
        default=4000,
        ge=100,
        description="Open connections `stockday up`'s HAProxy accepts on the site's port.",
    )
    edge_max_connections_per_source: int = Field(
        default=100,
        ge=1,
        description="Open connections one client address may hold on the site's port; more are "
        "refused.",
    )

    queue_max_receives: int = Field(
        default=5, ge=1, description="Deliveries of a message before it goes to the DLQ."
    )
    queue_visibility_seconds: float = Field(
        default=30.0, gt=0, description="Visibility timeout of a received message."
    )
    queue_wait_seconds: float = Field(
        default=2.0, ge=0, description="Long-poll wait of a consumer's receive."
    )
    queue_retry_delay_seconds: float = Field(
        default=1.0, ge=0, description="Delay before a failed message is delivered again."
    )
    logo_jobs_queue: str = Field(default="logo-jobs", description="Queue of resize jobs.")
    logo_events_queue: str = Field(default="logo-events", description="Queue of logo results.")

    upload_retention_seconds: int = Field(
        default=3600,
        ge=1,
        description="Age after which a raw upload never linked to a stock is deleted.",
    )
    linked_upload_retention_seconds: int = Field(
        default=30 * 24 * 3600,
        ge=60,
        description="Age after which a raw upload linked to a stock (its logo job pending, or "
        "its logo failed) is deleted.",
    )
    janitor_interval_seconds: float = Field(
        default=3600.0, gt=0, description="How often queue-worker looks for expired raw uploads."
    )
    aws_region: str = Field(
        default="us-east-1", description="AWS region of the table, queues and bucket (aws backend)."
    )
    aws_endpoint_url: str | None = Field(
        default=None,
        description="Send every AWS call to this URL instead of AWS (an emulator such as moto);"
        " unset, botocore's AWS_ENDPOINT_URL_S3 (_DYNAMODB, _SQS) or AWS_ENDPOINT_URL apply.",
    )
    aws_timeout_seconds: float = Field(
        default=2.0, gt=0, description="Connect and read timeout of every AWS call."
    )
    dynamodb_table: str = Field(
        default="stockday-stocks", description="DynamoDB table of stocks (aws backend)."
    )
    s3_bucket: str = Field(
        default="stockday-objects", description="S3 bucket of uploads and logos (aws backend)."
    )
    s3_tolerate_unsupported_bucket_settings: bool = Field(
        default=False,
        description="Provisioning logs and skips a bucket setting the S3 endpoint refuses"
        " (ownership controls, public access block, encryption, lifecycle): for an emulator"
        " that lacks them, such as s3rver. Never set on AWS.",
    )
    logo_cdn_base_url: str | None = Field(
        default=None,
        description="Serve logos from this CDN base URL; signed S3 URLs when unset (aws backend).",
    )
    signed_url_seconds: int = Field(
        default=3600, ge=60, le=604800, description="Lifetime of a signed logo or upload URL."
    )
    memcached_servers: str = Field(
        default="127.0.0.1:11211",
        description="memcached host:port list, comma-separated, for the price cache and the rate "
        "limits (aws backend).",
    )
    memcached_timeout_seconds: float = Field(
        default=0.2, gt=0, description="Timeout of a memcached call; a miss after it."
    )

    rate_limit_pages: str = Field(
        default="600/minute",
        description="Page views (and other GETs) one client may make on the frontend, in the "
        "notation of the limits library (`N/minute`, or per second, hour or day; several "
        "joined by `;`); empty: no limit.",
    )
    rate_limit_creates: str = Field(
        default="10/minute;50/hour",
        description="Stock creations one client may submit on the frontend; empty: no limit.",
    )
    rate_limit_uploads: str = Field(
        default="10/minute;50/hour",
        description="Logo uploads one client may send to the frontend; empty: no limit.",
    )
    upload_bytes_per_hour: int = Field(
        default=50 * 1024 * 1024,
        ge=0,
        description="Upload bytes one client may send to the frontend per hour; 0: no limit.",
    )
    trusted_proxies: str = Field(
        default="127.0.0.1",
        description="Peers (IPs or CIDR ranges, comma-separated; * for any) whose "
        "X-Forwarded-Proto and X-Forwarded-For the frontend believes: its load balancers.",
    )
    rate_limit_timeout_seconds: float = Field(
        default=0.2,
        gt=0,
        description="Timeout of a rate-limit store call; the request is served (fail open) "
        "after it.",
    )

    operator_password_hash: SecretStr | None = Field(
        default=None,
        description="scrypt hash of the operators' password (`stockday operator hash-password`); "
        "nobody can log in as operator when neither it nor the secret is set.",
    )
    operator_secret_name: str | None = Field(
        default=None,
        description="Secrets Manager secret holding that hash, read instead of the setting "
        "(aws backend).",
    )
    operator_session_seconds: int = Field(
        default=8 * 3600, ge=60, le=7 * 24 * 3600, description="Lifetime of an operator's login."
    )
    operator_login_failures: int = Field(
        default=5,
        ge=1,
        description="Failed operator logins a client may make in a window before it must wait "
        "(counted on the rate limits' store, so across every replica).",
    )
    operator_login_window_seconds: int = Field(
        default=300, ge=1, description="The window of those failed logins, in seconds."
    )

    otlp_endpoint: str | None = Field(
        default=None,
        description="Export traces over OTLP/HTTP to this collector URL; no tracing when unset.",
    )
    log_format: Literal["json", "text"] = Field(
        default="json",
        description="Log lines as JSON objects (with request and trace ids) or text.",
    )
    log_level: str = Field(default="INFO", description="Log level of every service.")
    fault_error_rate: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Fail this share of an HTTP service's requests (not probes) with 500: fault "
        "injection for release checks. Never set in production.",
    )
    fault_crash_before_ack_file: Path | None = Field(
        default=None,
        description="While this file exists and names a consumer, the next replica of it to "
        "finish a job deletes the file and dies by SIGKILL before acknowledging: fault "
        "injection for failure drills. Never set in production.",
    )

    log_max_bytes: int = Field(
        default=10 * 1024 * 1024,
        ge=4096,
        description="`stockday up` rotates a process's log file when it reaches this size.",
    )
    log_backup_count: int = Field(
        default=3, ge=1, description="Rotated log files `stockday up` keeps per process."
    )
    hang_seconds: float = Field(
        default=10.0,
        gt=0,
        description="`stockday up` kills a replica whose /api/ping stays silent this long.",
    )
    prometheus_scrape_seconds: float = Field(
        default=15.0,
        ge=0.1,
        le=300,
        description="How often `stockday up --prometheus` scrapes every replica and evaluates "
        "the SLO rules.",
    )
    port: int = Field(
        default=DEFAULT_PORT,
        gt=0,
        lt=65536,
        validation_alias=AliasChoices("port", "PORT"),
        description="Listen port of a service started by the container image (variable PORT).",
    )

    @field_validator("rate_limit_pages", "rate_limit_creates", "rate_limit_uploads")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        """Parsed here, so that a wrong limit stops the service at start with one line."""
        if value.strip():
            parse_many(value)  # raises ValueError naming what it could not read
        return value.strip()

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_addresses(cls, value: str) -> str:
        for item in (part.strip() for part in value.split(",")):
            if item != "*":
                ipaddress.ip_network(item, strict=False)  # ValueError names the bad item
        return value

    @property
    def max_upload_request_bytes(self) -> int:
        """Largest accepted upload request: the file plus room for its multipart framing."""
        return self.max_upload_bytes + MULTIPART_FRAMING_BYTES

    @property
    def image_memory_budget_bytes(self) -> int:
        return self.image_memory_budget_mb * 1024 * 1024

    @property
    def readiness_timeout_seconds(self) -> float:
        """How long /api/ready waits for a check: longer than the calls the checks make."""
        return max(2.0, self.aws_timeout_seconds + 0.5, self.http_timeout_seconds + 0.5)

    @property
    def database_path(self) -> Path:
        return self.data_dir / "stocks.sqlite3"

    @property
    def queue_path(self) -> Path:
        return self.data_dir / "queues.sqlite3"

    @property
    def rate_limit_path(self) -> Path:
        return self.data_dir / "limits.sqlite3"

    @property
    def objects_dir(self) -> Path:
        return self.data_dir / "objects"


def variable_name(field: str) -> str:
    """The environment variable of a Settings field: ``STOCKDAY_<FIELD>`` unless aliased."""
    alias = (
        Settings.model_fields[field].validation_alias if field in Settings.model_fields else None
    )
    if isinstance(alias, AliasChoices):
        return str(alias.choices[-1])
    return f"STOCKDAY_{field.upper()}"


def describe_invalid_settings(exc: ValidationError) -> list[str]:
    """One line per invalid variable, naming it as it is set (see ``variable_name``)."""
    lines = []
    for error in exc.errors():
        loc = "_".join(str(part) for part in error["loc"])
        name = loc if loc.isupper() else variable_name(loc)
        lines.append(f"invalid setting {name}: {error['msg']}")
    return lines


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
