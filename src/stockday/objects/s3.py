"""S3 object store: the AWS adapter of the ObjectStore port.

One private bucket holds both kinds of objects, under separate prefixes:

    uploads/<id>              raw uploads (from the browser through a presigned POST, or from
                              stock-symbol); unlinked ones expire through a lifecycle rule
    logos/<SYMBOL>/<id>.webp  resized logos, served through a CDN or presigned GET URLs

Nothing here ever sets an ACL: the bucket blocks public access and disables ACLs altogether
(stockday.aws.provision.create_bucket, and the CDK app); browsers read logos through the CDN
(with origin access control) or through time-limited signed URLs.

Signed URLs are always Signature Version 4: botocore still defaults presigned S3 URLs to the
deprecated SigV2 in older regions (us-east-1 among them), which buckets created since 2020 refuse.
A signed URL made with temporary credentials (an IAM role) stops working when they expire, even
before ``signed_url_seconds``; set a CDN base URL for logos in production.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, ParamSpec, TypeVar
from urllib.parse import quote

from botocore.exceptions import BotoCoreError, ClientError

from stockday.aws.clients import AwsCalls, AwsConfig, describe_failure, error_code, make_client
from stockday.domain.errors import BackendUnavailable
from stockday.domain.stocks import UPLOADS_PREFIX
from stockday.objects.base import (
    InvalidKey,
    ObjectInfo,
    PresignedUpload,
    StoredObject,
    check_key,
)

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

__all__ = ["S3ObjectStore"]

P = ParamSpec("P")
T = TypeVar("T")

MAX_SIGNED_SECONDS = 7 * 24 * 3600  # the longest SigV4 presigned URLs are valid
DEFAULT_CONTENT_TYPE = "application/octet-stream"
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


class S3ObjectStore:
    """ObjectStore on one S3 bucket; see the module docstring for the layout."""

    def __init__(
        self,
        config: AwsConfig,
        bucket: str,
        *,
        cdn_base_url: str | None = None,
        signed_url_seconds: int = 3600,
        setting: str = "STOCKDAY_S3_BUCKET",
        calls: AwsCalls | None = None,
        list_page_size: int = 1000,
    ) -> None:
        if not 1 <= signed_url_seconds <= MAX_SIGNED_SECONDS:
            raise ValueError(f"signed_url_seconds must be between 1 and {MAX_SIGNED_SECONDS}")
        if not 1 <= list_page_size <= 1000:
            raise ValueError("list_page_size must be between 1 and 1000")
        self._bucket = bucket
        self._cdn_base_url = cdn_base_url.rstrip("/") if cdn_base_url else None
        self._signed_url_seconds = signed_url_seconds
        self._setting = setting
        self._list_page_size = list_page_size
        self._owns_calls = calls is None
        self._calls = calls if calls is not None else AwsCalls()
        self._client = make_client("s3", config)

    @property
    def bucket(self) -> str:
        return self._bucket

    # -- the port ---------------------------------------------------------------------------

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        """Store or replace an object (a PUT in S3 is atomic: readers see old or new)."""
        check_key(key)
        await self._run(
            self._client.put_object,
            Bucket=self._bucket,
            Key=key,
            Body=bytes(data),
            ContentType=content_type,
        )

    async def get(self, key: str) -> StoredObject | None:
        check_key(key)
        return await self._run(self._get, key)

    async def exists(self, key: str) -> bool:
        """Whether the object exists (HEAD answers a bare 404 for a missing bucket too: False)."""
        check_key(key)
        return await self._run(self._exists, key)

    async def delete(self, key: str) -> None:
        """Remove an object; S3 answers a delete of a missing object with success too."""
        check_key(key)
        await self._run(self._client.delete_object, Bucket=self._bucket, Key=key)

    async def list(self, prefix: str) -> list[ObjectInfo]:
        """Every object whose key starts with ``prefix`` (ListObjectsV2, all pages), by key."""
        return await self._run(
            _list_objects, self._client, self._bucket, prefix, self._list_page_size
        )

    def url_for(self, key: str) -> str:
        """``<cdn>/<key>`` with a CDN base URL, else a presigned GET valid ``signed_url_seconds``.

        Presigning is computed locally: no request to S3.
        """
        check_key(key)
        if self._cdn_base_url is not None:
            return f"{self._cdn_base_url}/{quote(key, safe='/')}"
        try:
            return self._client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self._bucket, "Key": key},
                ExpiresIn=self._signed_url_seconds,
            )
        except (BotoCoreError, ClientError) as exc:
            raise self._unavailable(exc) from exc

    def presigned_upload(
        self, key: str, *, max_bytes: int, expires_seconds: int
    ) -> PresignedUpload | None:
        """A presigned POST for one image of 1..``max_bytes`` bytes to exactly ``key``.

        The signed policy pins the bucket and the key, bounds the size and requires a
        ``Content-Type`` field starting with ``image/``; S3 refuses any upload that breaks it.
        Browsers may only write raw uploads, so ``key`` must lie under ``UPLOADS_PREFIX`` (where
        the lifecycle rule eventually removes what is never linked to a stock).
        """
        check_key(key)
        if not key.startswith(UPLOADS_PREFIX):
            raise InvalidKey(f"browser uploads go under {UPLOADS_PREFIX!r}, not {key!r}")
        if max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        if not 1 <= expires_seconds <= MAX_SIGNED_SECONDS:
            raise ValueError(f"expires_seconds must be between 1 and {MAX_SIGNED_SECONDS}")
        # Taken before signing, so that it is never later than the policy's own expiration.
        expires_at = datetime.now(UTC) + timedelta(seconds=expires_seconds)
        try:
            # botocore adds the exact {"bucket": ...} and {"key": ...} conditions itself.
            post = self._client.generate_presigned_post(
                Bucket=self._bucket,
                Key=key,
                Conditions=[
                    ["content-length-range", 1, max_bytes],
                    ["starts-with", "$Content-Type", "image/"],
                ],
                ExpiresIn=expires_seconds,
            )
        except (BotoCoreError, ClientError) as exc:
            raise self._unavailable(exc) from exc
        return PresignedUpload(
            url=post["url"],
            fields={name: str(value) for name, value in post["fields"].items()},
            expires_at=expires_at,
        )

    async def check(self) -> None:
        """Raise BackendUnavailable unless the bucket exists and these credentials reach it."""
        await self._run(self._client.head_bucket, Bucket=self._bucket)

    async def close(self) -> None:
        self._client.close()
        if self._owns_calls:
            self._calls.close()

    # -- helpers ----------------------------------------------------------------------------

    async def _run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a blocking call on the AWS pool; AWS failures become BackendUnavailable."""
        resource = f"S3 bucket {self._bucket!r}"
        return await self._calls.run_guarded(resource, self._setting, fn, *args, **kwargs)

    def _unavailable(self, exc: BaseException) -> BackendUnavailable:
        return BackendUnavailable(
            describe_failure(exc, f"S3 bucket {self._bucket!r}", self._setting)
        )

    # Blocking helpers, run in the pool's threads.

    def _get(self, key: str) -> StoredObject | None:
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) in _NOT_FOUND_CODES:
                return None
            raise
        with response["Body"] as body:
            data = body.read()  # botocore checks the length against Content-Length
        return StoredObject(
            key=key, data=data, content_type=response.get("ContentType") or DEFAULT_CONTENT_TYPE
        )

    def _exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) in _NOT_FOUND_CODES:
                return False
            raise
        return True


def _list_objects(client: S3Client, bucket: str, prefix: str, page_size: int) -> list[ObjectInfo]:
    """Blocking list(): every page of ListObjectsV2 under ``prefix``, sorted by key."""
    paginator = client.get_paginator("list_objects_v2")
    pages = paginator.paginate(
        Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": page_size}
    )
    found = [
        ObjectInfo(
            key=item["Key"],
            size=item["Size"],
            modified_at=item["LastModified"].astimezone(UTC),
        )
        for page in pages
        for item in page.get("Contents", [])
    ]
    # S3 lists in UTF-8 byte order, which is code point order; sorting keeps the contract
    # whatever an S3-compatible server does.
    found.sort(key=lambda info: info.key)
    return found
