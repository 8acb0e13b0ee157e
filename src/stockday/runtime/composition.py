"""Adapter selection: the one place that maps settings to concrete adapters for every service.

``local`` wires the embedded adapters (SQLite, filesystem, in-process cache); ``aws`` wires
DynamoDB, SQS, S3 and memcached. Each adapter is told the setting that names its resource, so
that a readiness failure can say in one line what is missing and where it is configured.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING

from stockday.cache.base import Cache
from stockday.objects.base import ObjectStore
from stockday.operators.base import OperatorCredentials, StaticCredentials
from stockday.queues.base import MessageQueue
from stockday.ratelimit.limiter import ClientLimiter, parse_rule
from stockday.runtime.settings import Settings
from stockday.stocks.base import StockRepository

if TYPE_CHECKING:  # boto3 stays out of the local backend's imports
    from limits.aio.storage import Storage

    from stockday.aws.clients import AwsCalls, AwsConfig


def aws_config(settings: Settings) -> AwsConfig:
    from stockday.aws.clients import AwsConfig

    return AwsConfig(
        region=settings.aws_region,
        endpoint_url=settings.aws_endpoint_url,
        timeout_seconds=settings.aws_timeout_seconds,
    )


@lru_cache(maxsize=1)
def aws_calls() -> AwsCalls:
    """One thread pool for all AWS adapters of a process."""
    from stockday.aws.clients import AwsCalls

    return AwsCalls()


def queue_setting(settings: Settings, name: str) -> str:
    """The environment variable that names queue ``name``."""
    if name == settings.logo_events_queue:
        return "STOCKDAY_LOGO_EVENTS_QUEUE"
    return "STOCKDAY_LOGO_JOBS_QUEUE"


def stock_repository(settings: Settings) -> StockRepository:
    if settings.backend == "aws":
        from stockday.stocks.dynamodb import DynamoDbStockRepository

        return DynamoDbStockRepository(
            aws_config(settings), settings.dynamodb_table, calls=aws_calls()
        )
    from stockday.stocks.sqlite import SqliteStockRepository

    return SqliteStockRepository(settings.database_path)


def message_queue(settings: Settings, name: str) -> MessageQueue:
    if settings.backend == "aws":
        from stockday.queues.sqs import SqsQueue

        return SqsQueue(
            aws_config(settings),
            name,
            max_receives=settings.queue_max_receives,
            setting=queue_setting(settings, name),
            calls=aws_calls(),
        )
    from stockday.queues.sqlite import SqliteQueue

    return SqliteQueue(settings.queue_path, name, max_receives=settings.queue_max_receives)


def object_store(settings: Settings) -> ObjectStore:
    if settings.backend == "aws":
        from stockday.objects.s3 import S3ObjectStore

        return S3ObjectStore(
            aws_config(settings),
            settings.s3_bucket,
            cdn_base_url=settings.logo_cdn_base_url,
            signed_url_seconds=settings.signed_url_seconds,
            calls=aws_calls(),
        )
    from stockday.objects.filesystem import FilesystemObjectStore

    return FilesystemObjectStore(settings.objects_dir)


def object_store_endpoint(
    settings: Settings, environ: Mapping[str, str] = os.environ
) -> str | None:
    """The S3 endpoint the object store's calls and signed URLs go to, chosen as botocore
    chooses it: the setting, else ``AWS_ENDPOINT_URL_S3``, else ``AWS_ENDPOINT_URL`` (both
    ignored under ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS``); None for AWS's own or local.

    Read here rather than from a botocore client, which would cost the frontend (no boto3
    otherwise) 22 MB per replica; tests/aws/test_endpoints.py holds it to botocore's choice.
    """
    if settings.backend != "aws":
        return None
    if settings.aws_endpoint_url:
        return settings.aws_endpoint_url
    if environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").lower() == "true":
        return None
    return environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL") or None


def cache(settings: Settings) -> Cache:
    if settings.backend == "aws":
        from stockday.cache.memcached import MemcachedCache

        return MemcachedCache(
            settings.memcached_servers, timeout_seconds=settings.memcached_timeout_seconds
        )
    from stockday.cache.memory import MemoryCache

    return MemoryCache()


def operator_credentials(settings: Settings) -> OperatorCredentials:
    """The secret when one is named on the aws backend, else the hash in settings (or none)."""
    if settings.backend == "aws" and settings.operator_secret_name:
        from stockday.operators.secretsmanager import SecretsManagerCredentials

        return SecretsManagerCredentials(
            aws_config(settings), settings.operator_secret_name, calls=aws_calls()
        )
    configured = settings.operator_password_hash
    return StaticCredentials(configured.get_secret_value() if configured else None)


def rate_limit_storage(settings: Settings) -> Storage:
    """Where every replica counts its clients' hits: memcached on aws, a shared file locally."""
    if settings.backend == "aws":
        from limits.aio.storage import MemcachedStorage

        timeout = settings.rate_limit_timeout_seconds
        return MemcachedStorage(
            f"async+memcached://{settings.memcached_servers}",
            connect_timeout=timeout,
            read_timeout=timeout,
        )
    from stockday.ratelimit.sqlite import SqliteLimitStorage

    return SqliteLimitStorage(settings.rate_limit_path)


def client_limiter(settings: Settings) -> ClientLimiter:
    """The limiter of the frontend's rules, each read from its setting."""
    rules = {
        "pages": parse_rule(settings.rate_limit_pages),
        "creates": parse_rule(settings.rate_limit_creates),
        "uploads": parse_rule(settings.rate_limit_uploads),
        "upload-bytes": parse_rule(
            f"{settings.upload_bytes_per_hour}/hour" if settings.upload_bytes_per_hour else ""
        ),
        # Failed operator logins: counted only when a login fails (frontend/operators.py).
        "logins": parse_rule(
            f"{settings.operator_login_failures}/{settings.operator_login_window_seconds} seconds"
        ),
    }
    return ClientLimiter(
        rate_limit_storage(settings),
        rules,
        timeout_seconds=settings.rate_limit_timeout_seconds,
        batched={"pages"},
    )
