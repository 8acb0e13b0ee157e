"""The stocks table, the objects bucket and the bucket that receives every log."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stockday.aws.schema import STOCKS_TABLE, KeyAttribute
from stockday.domain.stocks import UPLOADS_PREFIX
from stockday_infra.checkov import skip_checks
from stockday_infra.stages import Stage

LOGOS_PREFIX = "logos/"
# Log prefixes inside the log bucket, one per source.
ACCESS_LOGS_PREFIX = "s3-access/"
CDN_LOGS_PREFIX = "cloudfront/"
# The CDK's enum members are named after the types, not valued by DynamoDB's letters.
_ATTRIBUTE_TYPES = {
    "S": dynamodb.AttributeType.STRING,
    "N": dynamodb.AttributeType.NUMBER,
    "B": dynamodb.AttributeType.BINARY,
}


def stocks_table(scope: Construct, stage: Stage) -> dynamodb.Table:
    """The table declared by stockday.aws.schema.STOCKS_TABLE (as ``stockday provision`` makes
    it), made durable."""
    schema = STOCKS_TABLE
    table = dynamodb.Table(
        scope,
        "Stocks",
        table_name=stage.settings.dynamodb_table,
        partition_key=_attribute(schema.partition_key),
        sort_key=_attribute(schema.sort_key) if schema.sort_key else None,
        billing_mode=dynamodb.BillingMode(schema.billing_mode),
        # The AWS-managed key: encrypted at rest with no key grants for the service roles.
        encryption=dynamodb.TableEncryption.AWS_MANAGED,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        deletion_protection=stage.production,
        removal_policy=RemovalPolicy.RETAIN,
    )
    for index in schema.indexes:
        table.add_global_secondary_index(
            index_name=index.name,
            partition_key=_attribute(index.partition_key),
            sort_key=_attribute(index.sort_key) if index.sort_key else None,
            projection_type=dynamodb.ProjectionType(index.projection),
        )
    skip_checks(
        table,
        {
            "CKV_AWS_119": "Encrypted with the AWS-managed key: a customer key would need KMS "
            "grants on every role that docs/aws-iam.md does not list, for no gain here."
        },
    )
    return table


def _attribute(key: KeyAttribute) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=key.name, type=_ATTRIBUTE_TYPES[key.type])


def log_bucket(scope: Construct, stage: Stage) -> s3.Bucket:
    """Where S3 access logs, CloudFront logs and VPC flow logs go."""
    bucket = s3.Bucket(
        scope,
        "Logs",
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        # S3 access logs accept SSE-S3 only.
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        versioned=True,
        # CloudFront's standard logs are delivered with an ACL grant, so ACLs stay enabled
        # (owner preferred); every other writer is authorised by the bucket policy.
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
        lifecycle_rules=[
            s3.LifecycleRule(
                id="expire-logs",
                expiration=Duration.days(stage.sizing.log_bucket_days),
                noncurrent_version_expiration=Duration.days(7),
                abort_incomplete_multipart_upload_after=Duration.days(1),
            )
        ],
        removal_policy=RemovalPolicy.RETAIN,
    )
    skip_checks(
        bucket,
        {
            "CKV_AWS_18": "This is the log bucket: logging its own accesses would log forever.",
        },
    )
    return bucket


def objects_bucket(scope: Construct, stage: Stage, logs: s3.IBucket) -> s3.Bucket:
    """Uploads and logos: private, encrypted, versioned; raw uploads expire as a backstop."""
    return s3.Bucket(
        scope,
        "Objects",
        bucket_name=stage.settings.s3_bucket,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        # SSE-S3, as stockday.aws.provision.create_bucket: no KMS grants needed by the roles.
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        versioned=True,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        server_access_logs_bucket=logs,
        server_access_logs_prefix=f"{ACCESS_LOGS_PREFIX}{stage.settings.s3_bucket}/",
        lifecycle_rules=[
            # queue-worker's janitor deletes raw uploads no stock needs after the retention;
            # this rule is the backstop for whatever it misses.
            s3.LifecycleRule(
                id="expire-raw-uploads",
                prefix=UPLOADS_PREFIX,
                expiration=Duration.days(stage.upload_retention_days),
            ),
            # Versioning keeps deleted objects recoverable for a while, not forever.
            s3.LifecycleRule(
                id="expire-old-versions",
                noncurrent_version_expiration=Duration.days(30),
                expired_object_delete_marker=True,
                abort_incomplete_multipart_upload_after=Duration.days(1),
            ),
        ],
        removal_policy=RemovalPolicy.RETAIN,
    )
