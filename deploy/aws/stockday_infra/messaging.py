"""The two work queues, each with its dead-letter queue named as the services expect."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stockday.aws.schema import DEAD_LETTER_RETENTION_SECONDS, dead_letter_queue_name
from stockday_infra.checkov import skip_checks
from stockday_infra.stages import Stage

SSE_SQS_REASON = (
    "Encrypted at rest with SQS-managed keys (SqsManagedSseEnabled); the check only looks for "
    "a KMS key id."
)


@dataclass(frozen=True)
class WorkQueue:
    queue: sqs.Queue
    dead_letters: sqs.Queue


def work_queue(scope: Construct, construct_id: str, name: str, stage: Stage) -> WorkQueue:
    """``name`` and ``<name>-dlq``, redriven after the services' max receives."""
    dead_letters = sqs.Queue(
        scope,
        f"{construct_id}DeadLetters",
        queue_name=dead_letter_queue_name(name),
        retention_period=Duration.seconds(DEAD_LETTER_RETENTION_SECONDS),
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        removal_policy=_removal(stage),
    )
    queue = sqs.Queue(
        scope,
        construct_id,
        queue_name=name,
        visibility_timeout=stage.visibility_timeout,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        dead_letter_queue=sqs.DeadLetterQueue(
            max_receive_count=stage.settings.queue_max_receives, queue=dead_letters
        ),
        removal_policy=_removal(stage),
    )
    for encrypted in (queue, dead_letters):
        skip_checks(encrypted, {"CKV_AWS_27": SSE_SQS_REASON})
    return WorkQueue(queue=queue, dead_letters=dead_letters)


def _removal(stage: Stage) -> RemovalPolicy:
    # Production keeps its queues (and any messages in them) even if the stack goes away.
    return RemovalPolicy.RETAIN if stage.production else RemovalPolicy.DESTROY
