"""Provisioning as on AWS: a new table is waited for until ACTIVE, and a bucket is created
plainly, then given each setting in its own call; an emulator lacking a setting stops
provisioning unless a setting says to tolerate it."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import closing
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError, WaiterError
from botocore.stub import Stubber

from stockday.aws.clients import AwsConfig, make_client
from stockday.aws.provision import create_bucket, create_table
from tests.support.aws import s3rver_target

if TYPE_CHECKING:
    from types_boto3_dynamodb import DynamoDBClient


@pytest.fixture
def offline_dynamodb() -> Iterator[DynamoDBClient]:
    """A DynamoDB client whose answers a Stubber gives: nothing leaves the process."""
    config = AwsConfig(region="us-east-1", emulator_credentials=("stub", "stub"))
    with closing(make_client("dynamodb", config)) as client:
        yield client


def described(status: str) -> dict[str, Any]:
    return {"Table": {"TableName": "stocks", "TableStatus": status}}


def test_a_new_table_is_waited_for_until_it_is_active(offline_dynamodb: DynamoDBClient) -> None:
    with Stubber(offline_dynamodb) as stub:
        stub.add_client_error("describe_table", service_error_code="ResourceNotFoundException")
        stub.add_response("create_table", {"TableDescription": {"TableStatus": "CREATING"}})
        # As real DynamoDB answers: CREATING for a while, then ACTIVE.
        for status in ("CREATING", "CREATING", "CREATING", "ACTIVE"):
            stub.add_response("describe_table", described(status), {"TableName": "stocks"})
        create_table(offline_dynamodb, "stocks", poll_seconds=0, max_polls=10)
        # Returned only after the table said ACTIVE: every answer up to it was asked for.
        stub.assert_no_pending_responses()


def test_a_table_that_never_becomes_active_fails_provisioning(
    offline_dynamodb: DynamoDBClient,
) -> None:
    with Stubber(offline_dynamodb) as stub:
        for _ in range(1 + 3):  # is it there (yes, CREATING), then three polls
            stub.add_response("describe_table", described("CREATING"))
        with pytest.raises(WaiterError, match="Max attempts exceeded"):
            create_table(offline_dynamodb, "stocks", poll_seconds=0, max_polls=3)


def test_the_bucket_is_created_plainly_then_set_up(config: AwsConfig) -> None:
    with closing(make_client("s3", config)) as client:
        calls: list[str] = []
        created: list[dict[str, Any]] = []

        def record(params: dict[str, Any], model: Any, **_: Any) -> None:
            calls.append(model.name)
            if model.name == "CreateBucket":
                created.append(dict(params))

        client.meta.events.register("provide-client-params.s3.*", record)
        name = f"stockday-plain-{uuid.uuid4().hex[:12]}"
        create_bucket(client, name, config.region)
    # What every S3 implementation takes; ownership and the rest come after, one call each.
    assert created == [{"Bucket": name}]
    assert calls == [
        "HeadBucket",
        "CreateBucket",
        "PutBucketOwnershipControls",
        "PutPublicAccessBlock",
        "PutBucketEncryption",
        "PutBucketLifecycleConfiguration",
    ]


def test_an_emulator_lacking_bucket_settings_fails_provisioning_unless_told(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = s3rver_target().config
    with closing(make_client("s3", config)) as client:
        name = f"stockday-s3rver-{uuid.uuid4().hex[:12]}"
        with pytest.raises(ClientError):
            create_bucket(client, name, config.region)  # never silently without its settings

        with caplog.at_level(logging.WARNING, logger="stockday.aws.provision"):
            create_bucket(client, name, config.region, tolerate_unsupported=True)
        missing = [r.getMessage() for r in caplog.records]
        for setting in ("public access block", "default encryption", "lifecycle rule"):
            assert any(f"has no {setting}" in line for line in missing), missing
        assert all("STOCKDAY_S3_TOLERATE_UNSUPPORTED_BUCKET_SETTINGS" in m for m in missing)

        # The bucket itself works, and a second provisioning keeps what it holds.
        client.put_object(Bucket=name, Key="uploads/kept", Body=b"x")
        create_bucket(client, name, config.region, tolerate_unsupported=True)
        assert client.get_object(Bucket=name, Key="uploads/kept")["Body"].read() == b"x"
