"""S3ObjectStore beyond the contract: privacy, signed and CDN URLs, browser uploads, failures."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from stockday.aws.clients import AwsConfig, make_client
from stockday.aws.provision import create_bucket
from stockday.domain.errors import BackendUnavailable
from stockday.objects.base import InvalidKey
from stockday.objects.filesystem import FilesystemObjectStore
from stockday.objects.s3 import S3ObjectStore
from tests.support.aws import (
    AwsTarget,
    aws_target,
    emulator_gap,
    s3rver_target,
    target_emulator,
    unreachable_config,
)
from tests.support.servers import ServerProcess

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

pytestmark = pytest.mark.anyio

PUBLIC_GROUPS = (
    "http://acs.amazonaws.com/groups/global/AllUsers",
    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers",
)


def new_bucket_name() -> str:
    return f"stockday-s3-{uuid.uuid4().hex[:16]}"


@pytest.fixture
def s3_client(config: AwsConfig) -> Iterator[S3Client]:
    with closing(make_client("s3", config)) as client:
        yield client


@pytest.fixture
def bucket(s3_client: S3Client, config: AwsConfig) -> str:
    name = new_bucket_name()
    create_bucket(s3_client, name, config.region)
    return name


@pytest.fixture
async def store(config: AwsConfig, bucket: str) -> AsyncIterator[S3ObjectStore]:
    adapter = S3ObjectStore(config, bucket)
    yield adapter
    await adapter.close()


def policy_of(fields: dict[str, str]) -> dict[str, object]:
    decoded: dict[str, object] = json.loads(base64.b64decode(fields["policy"]))
    return decoded


# -- failures ---------------------------------------------------------------------------------


async def test_check_of_a_missing_bucket_names_the_bucket_and_the_setting(
    config: AwsConfig,
) -> None:
    name = new_bucket_name()
    store = S3ObjectStore(config, name, setting="STOCKDAY_S3_BUCKET")
    try:
        with pytest.raises(BackendUnavailable) as raised:
            await store.check()
        message = str(raised.value)
        assert repr(name) in message
        assert "STOCKDAY_S3_BUCKET" in message
        assert "does not exist" in message
        # Other calls fail the same way; a missing bucket is not a missing object.
        with pytest.raises(BackendUnavailable, match="STOCKDAY_S3_BUCKET"):
            await store.get("uploads/x")
        with pytest.raises(BackendUnavailable, match="STOCKDAY_S3_BUCKET"):
            await store.put("uploads/x", b"x", content_type="image/png")
        with pytest.raises(BackendUnavailable, match="STOCKDAY_S3_BUCKET"):
            await store.list("uploads/")
    finally:
        await store.close()


async def test_an_unreachable_endpoint_is_backend_unavailable() -> None:
    store = S3ObjectStore(unreachable_config(), "stockday-anything", setting="STOCKDAY_S3_BUCKET")
    try:
        with pytest.raises(BackendUnavailable, match="cannot reach") as raised:
            await store.check()
        assert "'stockday-anything'" in str(raised.value)
        with pytest.raises(BackendUnavailable):
            await store.exists("uploads/x")
    finally:
        await store.close()


async def test_invalid_settings_are_refused(config: AwsConfig) -> None:
    with pytest.raises(ValueError):
        S3ObjectStore(config, "b", signed_url_seconds=0)
    with pytest.raises(ValueError):
        S3ObjectStore(config, "b", signed_url_seconds=8 * 24 * 3600)


# -- the bucket -------------------------------------------------------------------------------


async def test_created_bucket_is_private_encrypted_and_expires_uploads(
    s3_client: S3Client, bucket: str, store: S3ObjectStore, aws_emulator: ServerProcess
) -> None:
    block = s3_client.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    ownership = s3_client.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]
    assert ownership["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    encryption = s3_client.get_bucket_encryption(Bucket=bucket)
    [rule] = encryption["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    [lifecycle] = s3_client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert lifecycle["Status"] == "Enabled"
    assert lifecycle.get("Filter") == {"Prefix": "uploads/"}
    assert lifecycle.get("Expiration") == {"Days": 30}

    # Objects the store writes carry no public grant, and anonymous readers are refused.
    await store.put("logos/AAPL/a.webp", b"logo", content_type="image/webp")
    for grants in (
        s3_client.get_bucket_acl(Bucket=bucket)["Grants"],
        s3_client.get_object_acl(Bucket=bucket, Key="logos/AAPL/a.webp")["Grants"],
    ):
        assert grants
        assert all(g["Grantee"].get("URI") not in PUBLIC_GROUPS for g in grants)
        assert {g["Permission"] for g in grants} == {"FULL_CONTROL"}
    async with httpx.AsyncClient() as http:
        anonymous = await http.get(f"{aws_emulator.url}/{bucket}/logos/AAPL/a.webp")
    assert anonymous.status_code == 403


async def test_create_bucket_is_idempotent_in_us_east_1_and_elsewhere(
    aws_emulator: ServerProcess,
) -> None:
    for region in ("us-east-1", "eu-west-1"):
        client = make_client("s3", AwsConfig(region=region, endpoint_url=aws_emulator.url))
        try:
            name = new_bucket_name()
            create_bucket(client, name, region)
            client.put_object(Bucket=name, Key="uploads/kept", Body=b"x")
            create_bucket(client, name, region)  # again: no error, nothing lost
            location = client.get_bucket_location(Bucket=name).get("LocationConstraint")
            assert (location or "us-east-1") == region
            assert client.get_object(Bucket=name, Key="uploads/kept")["Body"].read() == b"x"
        finally:
            client.close()


# -- URLs -------------------------------------------------------------------------------------


async def test_signed_url_fetches_the_bytes_with_their_content_type(store: S3ObjectStore) -> None:
    key = "logos/BRK.B/ä b+c.webp"
    await store.put(key, b"RIFF-logo-bytes", content_type="image/webp")
    url = store.url_for(key)
    query = parse_qs(urlsplit(url).query)
    # SigV4 (botocore would otherwise presign with SigV2 in us-east-1), for signed_url_seconds.
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == ["3600"]
    async with httpx.AsyncClient() as http:
        response = await http.get(url)
    assert response.status_code == 200
    assert response.content == b"RIFF-logo-bytes"
    assert response.headers["content-type"] == "image/webp"


async def test_signed_url_lifetime_is_configurable(config: AwsConfig, bucket: str) -> None:
    store = S3ObjectStore(config, bucket, signed_url_seconds=120)
    try:
        query = parse_qs(urlsplit(store.url_for("logos/AAPL/a.webp")).query)
        assert query["X-Amz-Expires"] == ["120"]
    finally:
        await store.close()


async def test_cdn_url_is_the_base_plus_the_quoted_key(config: AwsConfig) -> None:
    store = S3ObjectStore(config, "any-bucket", cdn_base_url="https://cdn.example.com/")
    try:
        assert store.url_for("logos/AAPL/0123abcd.webp") == (
            "https://cdn.example.com/logos/AAPL/0123abcd.webp"
        )
        assert store.url_for("logos/A B/x+y?z#.webp") == (
            "https://cdn.example.com/logos/A%20B/x%2By%3Fz%23.webp"
        )
        with pytest.raises(InvalidKey):
            store.url_for("../secrets")
    finally:
        await store.close()


# -- listing ----------------------------------------------------------------------------------


async def test_list_follows_every_page(config: AwsConfig, bucket: str) -> None:
    store = S3ObjectStore(config, bucket, list_page_size=2)
    try:
        keys = [f"uploads/{i:02d}" for i in range(7)] + ["uploads/ü ö", "logos/X/y.webp"]
        for key in keys:
            await store.put(key, key.encode(), content_type="image/png")
        listed = await store.list("uploads/")
        assert [o.key for o in listed] == sorted(k for k in keys if k.startswith("uploads/"))
        assert all(o.modified_at.tzinfo is not None for o in listed)
    finally:
        await store.close()


# -- browser uploads --------------------------------------------------------------------------


async def test_presigned_post_policy_pins_key_size_and_image_type(store: S3ObjectStore) -> None:
    before = datetime.now(UTC)
    upload = store.presigned_upload("uploads/abc", max_bytes=1000, expires_seconds=600)
    assert upload is not None
    assert before + timedelta(seconds=599) <= upload.expires_at <= before + timedelta(seconds=601)
    assert upload.fields["key"] == "uploads/abc"
    assert upload.fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
    assert "acl" not in upload.fields
    policy = policy_of(dict(upload.fields))
    conditions = policy["conditions"]
    assert isinstance(conditions, list)
    assert ["content-length-range", 1, 1000] in conditions
    assert ["starts-with", "$Content-Type", "image/"] in conditions
    assert {"key": "uploads/abc"} in conditions
    assert {"bucket": store.bucket} in conditions
    expiration = datetime.fromisoformat(str(policy["expiration"]).replace("Z", "+00:00"))
    assert abs(expiration - upload.expires_at) < timedelta(seconds=2)


async def test_presigned_post_is_only_for_uploads(store: S3ObjectStore) -> None:
    with pytest.raises(InvalidKey):
        store.presigned_upload("logos/AAPL/a.webp", max_bytes=10, expires_seconds=60)
    with pytest.raises(InvalidKey):
        store.presigned_upload("uploads/../logos/x", max_bytes=10, expires_seconds=60)
    with pytest.raises(ValueError):
        store.presigned_upload("uploads/a", max_bytes=0, expires_seconds=60)


@dataclass(frozen=True)
class S3Emulator:
    """One S3 emulator the browser-upload tests run on; ``emulator`` names it for its gaps."""

    emulator: str
    target: Callable[[], AwsTarget]


S3_EMULATORS = [
    # moto, or the endpoint STOCKDAY_TEST_S3_ENDPOINT names (tests/support/aws.py).
    pytest.param(S3Emulator(target_emulator("s3"), partial(aws_target, "s3")), id="s3"),
    pytest.param(S3Emulator("s3rver", s3rver_target), id="s3-s3rver"),
]
POLICY_NOT_ENFORCED = {
    "moto": "moto 5.2.5 does not evaluate POST policy conditions (the signed policy itself is"
    " checked in test_presigned_post_policy_pins_key_size_and_image_type)",
    "s3rver": "s3rver 3.7.1 ignores the policy field of a POST: it checks neither the signature"
    " over it nor its conditions",
}


def policy_enforced(test: Callable[..., Any]) -> Callable[..., Any]:
    """What AWS S3 does with a POST that breaks its signed policy: a strict xfail on the
    emulators that do not check the policy."""
    for emulator, reason in POLICY_NOT_ENFORCED.items():
        test = emulator_gap(emulator, reason)(test)
    return test


@pytest.fixture(params=S3_EMULATORS)
async def browser_store(request: pytest.FixtureRequest) -> AsyncIterator[S3ObjectStore]:
    """An S3 store on a fresh bucket, on each S3 emulator in turn."""
    config = request.param.target().config
    name = new_bucket_name()
    with closing(make_client("s3", config)) as client:
        create_bucket(client, name, config.region, tolerate_unsupported=True)
    adapter = S3ObjectStore(config, name)
    yield adapter
    await adapter.close()


async def post_form(url: str, fields: dict[str, str], data: bytes, content_type: str) -> int:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            url,
            data={**fields, "Content-Type": content_type},
            files={"file": ("logo.png", data, content_type)},  # the file goes last
        )
    return response.status_code


async def test_presigned_post_upload_stores_the_object(browser_store: S3ObjectStore) -> None:
    store = browser_store
    upload = store.presigned_upload("uploads/from-browser", max_bytes=1000, expires_seconds=60)
    assert upload is not None
    status = await post_form(upload.url, dict(upload.fields), b"\x89PNG" + b"x" * 100, "image/png")
    assert status in (200, 201, 204)
    stored = await store.get("uploads/from-browser")
    assert stored is not None
    assert stored.data == b"\x89PNG" + b"x" * 100
    assert stored.content_type == "image/png"


@policy_enforced
async def test_presigned_post_larger_than_max_bytes_is_refused(
    browser_store: S3ObjectStore,
) -> None:
    store = browser_store
    upload = store.presigned_upload("uploads/too-big", max_bytes=100, expires_seconds=60)
    assert upload is not None
    status = await post_form(upload.url, dict(upload.fields), b"x" * 101, "image/png")
    assert status in (400, 403)  # AWS: 400 EntityTooLarge
    assert not await store.exists("uploads/too-big")


@policy_enforced
async def test_presigned_post_of_a_non_image_is_refused(browser_store: S3ObjectStore) -> None:
    store = browser_store
    upload = store.presigned_upload("uploads/not-an-image", max_bytes=1000, expires_seconds=60)
    assert upload is not None
    status = await post_form(upload.url, dict(upload.fields), b"<html>", "text/html")
    assert status in (400, 403)  # AWS: 403 AccessDenied, "Policy Condition failed"
    assert not await store.exists("uploads/not-an-image")


async def test_filesystem_store_takes_no_browser_uploads(tmp_path: Path) -> None:
    store = FilesystemObjectStore(tmp_path / "objects")
    assert store.presigned_upload("uploads/a", max_bytes=10, expires_seconds=60) is None
    with pytest.raises(InvalidKey):
        store.presigned_upload("../a", max_bytes=10, expires_seconds=60)
