"""Create the table, queues and bucket the services need, where they are missing.

For an emulator or a developer account. Production resources come from the infrastructure code
(deploy/aws), built from the same declarations (stockday.aws.schema); everything here is
idempotent and brings existing resources to the declared settings, or leaves them alone.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import BotoCoreError, ClientError

from stockday.aws.clients import AwsConfig, error_code, make_client
from stockday.aws.schema import (
    DEAD_LETTER_RETENTION_SECONDS,
    STOCKS_TABLE,
    TableSchema,
    dead_letter_queue_name,
)
from stockday.domain.errors import BackendUnavailable
from stockday.domain.stocks import UPLOADS_PREFIX
from stockday.runtime.settings import Settings

if TYPE_CHECKING:
    from types_boto3_dynamodb import DynamoDBClient
    from types_boto3_s3 import S3Client
    from types_boto3_s3.literals import BucketLocationConstraintType
    from types_boto3_s3.type_defs import BucketLifecycleConfigurationTypeDef
    from types_boto3_sqs import SQSClient

__all__ = ["create_bucket", "create_queue", "create_table", "provision"]

log = logging.getLogger("stockday.aws.provision")

UPLOAD_RETENTION_DAYS = 30
# Building an index on a large table takes minutes: up to ten of them, checked every 2 s.
INDEX_WAIT_SECONDS = 2.0
INDEX_WAIT_ATTEMPTS = 300
_NO_SUCH_QUEUE = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
_QUEUE_EXISTS = {"QueueAlreadyExists", "QueueNameExists"}


def provision(
    settings: Settings,
    say: Callable[[str], None] = print,
    emulator_credentials: tuple[str, str] | None = None,
) -> None:
    """Create (or bring up to date) every AWS resource ``settings`` name."""
    config = AwsConfig(
        region=settings.aws_region,
        endpoint_url=settings.aws_endpoint_url,
        timeout_seconds=max(settings.aws_timeout_seconds, 10.0),
        emulator_credentials=emulator_credentials,
    )
    dynamodb = make_client("dynamodb", config)
    sqs = make_client("sqs", config)
    s3 = make_client("s3", config)
    try:
        _provision_all(settings, say, dynamodb, sqs, s3)
    except (BotoCoreError, ClientError) as exc:
        raise BackendUnavailable(f"could not create the AWS resources: {exc}") from exc
    finally:
        dynamodb.close()
        sqs.close()
        s3.close()


def _provision_all(
    settings: Settings,
    say: Callable[[str], None],
    dynamodb: DynamoDBClient,
    sqs: SQSClient,
    s3: S3Client,
) -> None:
    create_table(dynamodb, settings.dynamodb_table)
    say(f"DynamoDB table {settings.dynamodb_table}: ready")
    for queue in (settings.logo_jobs_queue, settings.logo_events_queue):
        create_queue(
            sqs,
            queue,
            max_receives=settings.queue_max_receives,
            visibility_seconds=max(1, round(settings.queue_visibility_seconds)),
        )
        say(f"SQS queue {queue} (dead letters: {dead_letter_queue_name(queue)}): ready")
    create_bucket(
        s3,
        settings.s3_bucket,
        settings.aws_region,
        tolerate_unsupported=settings.s3_tolerate_unsupported_bucket_settings,
    )
    say(f"S3 bucket {settings.s3_bucket}: ready")


# --- DynamoDB ------------------------------------------------------------------------------


def create_table(
    client: DynamoDBClient,
    table: str,
    schema: TableSchema = STOCKS_TABLE,
    *,
    poll_seconds: int = 2,
    max_polls: int = 150,
) -> None:
    """Create ``table`` with ``schema`` if it is missing, and wait until it is ACTIVE.

    DynamoDB answers a new table CREATING for seconds (minutes with indexes) and refuses
    reads and writes until then, so this polls its status every ``poll_seconds`` and raises
    botocore's WaiterError after ``max_polls`` (five minutes by default). Idempotent: an
    existing table (even one created concurrently) keeps its items, once ACTIVE; an index the
    schema declares and the table lacks is added.
    """
    existed = True
    try:
        client.describe_table(TableName=table)
    except ClientError as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise
        existed = False
        try:
            client.create_table(
                TableName=table,
                BillingMode=schema.billing_mode,
                AttributeDefinitions=schema.attribute_definitions(),
                KeySchema=schema.key_schema(),
                GlobalSecondaryIndexes=schema.global_secondary_indexes(),
                SSESpecification={"Enabled": True},
            )
        except ClientError as race:
            if error_code(race) != "ResourceInUseException":
                raise
    client.get_waiter("table_exists").wait(
        TableName=table, WaiterConfig={"Delay": poll_seconds, "MaxAttempts": max_polls}
    )
    if existed:  # DynamoDB changes only an ACTIVE table
        _add_missing_indexes(client, table, schema)


def _add_missing_indexes(client: DynamoDBClient, table: str, schema: TableSchema) -> None:
    """Add the indexes declared since ``table`` was made, one update each (DynamoDB builds one
    new index at a time), waiting for each to be ACTIVE."""
    described = client.describe_table(TableName=table)["Table"]
    present = {index.get("IndexName") for index in described.get("GlobalSecondaryIndexes", [])}
    for index in schema.global_secondary_indexes():
        if index["IndexName"] in present:
            continue
        client.update_table(
            TableName=table,
            AttributeDefinitions=schema.attribute_definitions(),
            GlobalSecondaryIndexUpdates=[{"Create": index}],
        )
        for _ in range(INDEX_WAIT_ATTEMPTS):
            current = client.describe_table(TableName=table)["Table"]
            statuses = [i.get("IndexStatus") for i in current.get("GlobalSecondaryIndexes", [])]
            if all(status == "ACTIVE" for status in statuses):
                break
            time.sleep(INDEX_WAIT_SECONDS)  # polling AWS's own progress, as its waiters do
        else:
            raise TimeoutError(f"index {index['IndexName']} of {table} is still being built")


# --- SQS -----------------------------------------------------------------------------------


def create_queue(
    client: SQSClient, name: str, *, max_receives: int, visibility_seconds: int = 30
) -> str:
    """Create (or bring up to date) ``name`` and its dead-letter queue; return the queue URL.

    Idempotent: existing queues get the attributes set again. The queue moves a message received
    ``max_receives`` times to the dead-letter queue, which keeps messages 14 days. botocore
    errors are raised as they come.
    """
    if max_receives < 1:
        raise ValueError("max_receives must be at least 1")
    dead_url = _ensure_queue(
        client,
        dead_letter_queue_name(name),
        {"MessageRetentionPeriod": str(DEAD_LETTER_RETENTION_SECONDS)},
    )
    dead_arn = client.get_queue_attributes(QueueUrl=dead_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    redrive = {"deadLetterTargetArn": dead_arn, "maxReceiveCount": str(max_receives)}
    return _ensure_queue(
        client,
        name,
        {"VisibilityTimeout": str(visibility_seconds), "RedrivePolicy": json.dumps(redrive)},
    )


def _ensure_queue(client: SQSClient, name: str, attributes: dict[Any, str]) -> str:
    try:
        url = client.get_queue_url(QueueName=name)["QueueUrl"]
    except ClientError as exc:
        if error_code(exc) not in _NO_SUCH_QUEUE:
            raise
        try:
            return client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        except ClientError as race:
            # Created meanwhile by another provisioner: fall through and update it.
            if error_code(race) not in _QUEUE_EXISTS:
                raise
            url = client.get_queue_url(QueueName=name)["QueueUrl"]
    client.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    return url


# --- S3 ------------------------------------------------------------------------------------


def create_bucket(
    client: S3Client, bucket: str, region: str, *, tolerate_unsupported: bool = False
) -> None:
    """Create ``bucket`` private and encrypted, or bring an existing one of ours to that state.

    Idempotent: every setting is written whole each time. The bucket is created plainly (as
    AWS allows), then gets one setting per call:

    - ACLs disabled (object ownership "bucket owner enforced") and every public access block;
    - default encryption with S3-managed keys (SSE-S3);
    - a lifecycle rule expiring raw uploads after 30 days. The application's janitor deletes
      uploads never linked to a stock; this rule is the backstop for whatever it misses (a
      crash, a janitor that is not running).

    A setting the endpoint refuses fails provisioning, unless ``tolerate_unsupported`` (for an
    emulator that lacks them, such as s3rver; never on AWS): then it is logged and skipped.
    """
    if _bucket_is_ours(client, bucket):
        log.info("bucket %s exists already; applying its settings", bucket)
    else:
        _create_plain_bucket(client, bucket, region)
    for name, apply in _bucket_settings(client, bucket):
        try:
            apply()
        except ClientError as exc:
            if not tolerate_unsupported:
                raise
            log.warning(
                "bucket %s has no %s: the S3 endpoint refused it (%s); tolerated because"
                " STOCKDAY_S3_TOLERATE_UNSUPPORTED_BUCKET_SETTINGS is set",
                bucket,
                name,
                error_code(exc) or exc,
            )


def _bucket_is_ours(client: S3Client, bucket: str) -> bool:
    """Whether ``bucket`` exists and these credentials reach it; False when it is missing."""
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if error_code(exc) in {"404", "NoSuchBucket", "NotFound"}:
            return False
        raise
    return True


def _create_plain_bucket(client: S3Client, bucket: str, region: str) -> None:
    try:
        # us-east-1 is the one region that takes no (and refuses an explicit) LocationConstraint.
        if region == "us-east-1":
            client.create_bucket(Bucket=bucket)
        else:
            client.create_bucket(
                Bucket=bucket,
                CreateBucketConfiguration={
                    "LocationConstraint": cast("BucketLocationConstraintType", region)
                },
            )
    except ClientError as exc:
        # Created meanwhile by another provisioner of this account.
        if error_code(exc) != "BucketAlreadyOwnedByYou":
            raise


def _bucket_settings(client: S3Client, bucket: str) -> list[tuple[str, Callable[[], object]]]:
    """Each setting of the bucket, named, as a call that writes it whole."""
    return [
        (
            "ownership controls",
            partial(
                client.put_bucket_ownership_controls,
                Bucket=bucket,
                OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
            ),
        ),
        (
            "public access block",
            partial(
                client.put_public_access_block,
                Bucket=bucket,
                PublicAccessBlockConfiguration={
                    "BlockPublicAcls": True,
                    "IgnorePublicAcls": True,
                    "BlockPublicPolicy": True,
                    "RestrictPublicBuckets": True,
                },
            ),
        ),
        (
            "default encryption",
            partial(
                client.put_bucket_encryption,
                Bucket=bucket,
                ServerSideEncryptionConfiguration={
                    "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
                },
            ),
        ),
        (
            "lifecycle rule",
            partial(
                client.put_bucket_lifecycle_configuration,
                Bucket=bucket,
                LifecycleConfiguration=UPLOADS_LIFECYCLE,
            ),
        ),
    ]


UPLOADS_LIFECYCLE: BucketLifecycleConfigurationTypeDef = {
    "Rules": [
        {
            "ID": "expire-unlinked-uploads",
            "Filter": {"Prefix": UPLOADS_PREFIX},
            "Status": "Enabled",
            "Expiration": {"Days": UPLOAD_RETENTION_DAYS},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        }
    ]
}
