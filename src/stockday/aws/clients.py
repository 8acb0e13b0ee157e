"""boto3 clients with timeouts, and the thread pool the async adapters run them on.

boto3 is synchronous; the adapters call it on a dedicated pool so that a slow AWS call blocks
one worker thread, never the event loop. boto3 clients are thread-safe. Credentials come only
from the default AWS chain (environment, shared config, IAM role); nothing here reads a secret.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar, overload

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
)

from stockday.domain.errors import BackendUnavailable

if TYPE_CHECKING:
    from types_boto3_dynamodb import DynamoDBClient
    from types_boto3_s3 import S3Client
    from types_boto3_sqs import SQSClient

P = ParamSpec("P")
T = TypeVar("T")

# Enough threads for a consumer's long polls plus a web replica's concurrent requests.
POOL_THREADS = 32


@dataclass(frozen=True, slots=True)
class AwsConfig:
    """Where and how to reach AWS: region, optional endpoint override, timeouts."""

    region: str
    endpoint_url: str | None = None
    timeout_seconds: float = 2.0
    max_attempts: int = 3
    # An access key id and secret for a local emulator only; AWS itself: the default chain.
    emulator_credentials: tuple[str, str] | None = None


class AwsCalls:
    """Runs blocking boto3 calls on a private thread pool."""

    def __init__(self, threads: int = POOL_THREADS) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="aws")

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    async def run_guarded(
        self,
        resource: str,
        setting: str,
        fn: Callable[P, T],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """``run``, with any AWS failure raised as BackendUnavailable naming the resource."""
        try:
            return await self.run(fn, *args, **kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise BackendUnavailable(describe_failure(exc, resource, setting)) from exc

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _botocore_config(
    service: str, config: AwsConfig, *, read_timeout: float | None = None
) -> Config:
    return Config(
        # S3 presigned URLs and POSTs must be SigV4: botocore would sign them with SigV2 in
        # us-east-1, which buckets created since 2020 refuse.
        signature_version="s3v4" if service == "s3" else None,
        region_name=config.region,
        connect_timeout=config.timeout_seconds,
        read_timeout=read_timeout if read_timeout is not None else config.timeout_seconds,
        retries={"mode": "standard", "max_attempts": config.max_attempts},
        max_pool_connections=POOL_THREADS,
    )


@overload
def make_client(
    service: Literal["dynamodb"], config: AwsConfig, *, read_timeout: float | None = None
) -> DynamoDBClient: ...
@overload
def make_client(
    service: Literal["sqs"], config: AwsConfig, *, read_timeout: float | None = None
) -> SQSClient: ...
@overload
def make_client(
    service: Literal["s3"], config: AwsConfig, *, read_timeout: float | None = None
) -> S3Client: ...
def make_client(service: str, config: AwsConfig, *, read_timeout: float | None = None) -> Any:
    """A client for ``service``; ``read_timeout`` overrides the default (long polls need more)."""
    key_id, secret = config.emulator_credentials or (None, None)
    session = boto3.session.Session(aws_access_key_id=key_id, aws_secret_access_key=secret)
    return session.client(  # type: ignore[call-overload]
        service,
        region_name=config.region,
        endpoint_url=config.endpoint_url,
        config=_botocore_config(service, config, read_timeout=read_timeout),
    )


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError ("ResourceNotFoundException", ...), else ""."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def describe_failure(exc: BaseException, resource: str, setting: str) -> str:
    """One line saying what is wrong with ``resource`` and which setting names it."""
    code = error_code(exc)
    if isinstance(exc, NoCredentialsError):
        why = "no AWS credentials found in the default chain (environment, config, IAM role)"
    elif isinstance(exc, NoRegionError):
        why = "no AWS region configured (STOCKDAY_AWS_REGION)"
    elif isinstance(exc, EndpointConnectionError):
        why = f"cannot reach the AWS endpoint ({exc}); check STOCKDAY_AWS_REGION"
    elif code in {
        "ResourceNotFoundException",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "NoSuchBucket",
        "404",
        "NotFound",
    }:
        why = "does not exist in this account and region (STOCKDAY_AWS_REGION)"
    elif code in {
        "AccessDenied",
        "AccessDeniedException",
        "403",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
    }:
        why = f"access denied ({code}): check the credentials and the IAM policy"
    elif isinstance(exc, ClientError):
        why = f"AWS answered {code or 'an error'}: {exc}"
    elif isinstance(exc, BotoCoreError):
        why = str(exc)
    else:
        why = f"{type(exc).__name__}: {exc}"
    return f"{resource} unavailable: {why} (set by {setting})"
