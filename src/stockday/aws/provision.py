"""Create the table, queues and bucket the services need, where they are missing.

For an emulator or a developer account. Production resources come from the infrastructure code
(deploy/), which declares the same names; this is idempotent and leaves existing resources alone.
"""

from __future__ import annotations

from collections.abc import Callable

from stockday.aws.clients import AwsConfig, make_client
from stockday.runtime.settings import Settings


def provision(
    settings: Settings,
    say: Callable[[str], None] = print,
    emulator_credentials: tuple[str, str] | None = None,
) -> None:
    from stockday.objects.s3 import create_bucket
    from stockday.queues.sqs import create_queue
    from stockday.stocks.dynamodb import create_table

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
        create_table(dynamodb, settings.dynamodb_table)
        say(f"DynamoDB table {settings.dynamodb_table}: ready")
        for queue in (settings.logo_jobs_queue, settings.logo_events_queue):
            create_queue(
                sqs,
                queue,
                max_receives=settings.queue_max_receives,
                visibility_seconds=max(1, round(settings.queue_visibility_seconds)),
            )
            say(f"SQS queue {queue} (dead letters: {queue}-dlq): ready")
        create_bucket(s3, settings.s3_bucket, settings.aws_region)
        say(f"S3 bucket {settings.s3_bucket}: ready")
    finally:
        dynamodb.close()
        sqs.close()
        s3.close()
