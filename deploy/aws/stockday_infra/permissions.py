"""docs/aws-iam.md as data: what each workload may do, on which of the stage's resources.

Targets are symbolic here and become ARNs in :mod:`stockday_infra.identities`; the tests check
the synthesized roles against the page itself, so the page, this table and the roles agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum


class Target(Enum):
    """A resource (or part of one) a permission applies to; values as docs/aws-iam.md names them."""

    TABLE = "TABLE"
    TABLE_INDEXES = "TABLE/index/*"
    JOBS = "JOBS"
    JOBS_DLQ = "JOBS-dlq"
    EVENTS = "EVENTS"
    EVENTS_DLQ = "EVENTS-dlq"
    BUCKET = "BUCKET"
    UPLOADS = "BUCKET/uploads/*"
    LOGOS = "BUCKET/logos/*"
    OPERATOR_SECRET = "OPERATOR_SECRET"  # noqa: S105 (a symbolic resource name, not a secret)


@dataclass(frozen=True)
class Grant:
    actions: tuple[str, ...]
    targets: tuple[Target, ...]


def _queue_lookup(*targets: Target) -> Grant:
    # Every SqsQueue resolves its URLs and its readiness check reads the attributes of the queue
    # and of its dead-letter queue (the redrive target must exist), so each principal that uses
    # a queue gets these two read-only actions on both.
    return Grant(("sqs:GetQueueUrl", "sqs:GetQueueAttributes"), targets)


_CONSUME = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility")

SERVICE_GRANTS: Mapping[str, tuple[Grant, ...]] = {
    # The operators' password hash, for their login.
    "frontend": (Grant(("secretsmanager:GetSecretValue",), (Target.OPERATOR_SECRET,)),),
    "stock-symbol": (
        Grant(
            (
                "dynamodb:DescribeTable",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
                "dynamodb:ConditionCheckItem",
            ),
            (Target.TABLE,),
        ),
        Grant(("dynamodb:Query",), (Target.TABLE_INDEXES,)),
        _queue_lookup(Target.JOBS, Target.JOBS_DLQ, Target.EVENTS, Target.EVENTS_DLQ),
        Grant(("sqs:SendMessage",), (Target.JOBS, Target.EVENTS)),
        # The operator page's dead letters and their re-drive.
        Grant(_CONSUME, (Target.JOBS_DLQ, Target.EVENTS_DLQ)),
        Grant(("s3:ListBucket",), (Target.BUCKET,)),
        Grant(("s3:PutObject",), (Target.UPLOADS,)),
        Grant(("s3:GetObject",), (Target.UPLOADS, Target.LOGOS)),
        Grant(("s3:DeleteObject",), (Target.UPLOADS, Target.LOGOS)),
    ),
    "logo-resizer": (
        _queue_lookup(Target.JOBS, Target.JOBS_DLQ, Target.EVENTS, Target.EVENTS_DLQ),
        Grant(_CONSUME, (Target.JOBS,)),
        Grant(("sqs:SendMessage",), (Target.EVENTS,)),
        Grant(("s3:ListBucket",), (Target.BUCKET,)),
        Grant(("s3:GetObject",), (Target.UPLOADS, Target.LOGOS)),
        Grant(("s3:PutObject",), (Target.LOGOS,)),
    ),
    "queue-worker": (
        _queue_lookup(Target.EVENTS, Target.EVENTS_DLQ),
        Grant(_CONSUME, (Target.EVENTS,)),
        Grant(("s3:ListBucket",), (Target.BUCKET,)),
        Grant(("s3:DeleteObject",), (Target.UPLOADS, Target.LOGOS)),
    ),
}

# Services that call no AWS API: they get no role and no pod identity association, so their
# pods hold no AWS credentials at all.
NO_AWS_ACCESS = ("stock-price",)

# The `stockday dlq` operator: a managed policy for the people or pipeline that inspect and
# redrive dead letters; attach it to their role.
OPERATOR_GRANTS: tuple[Grant, ...] = (
    _queue_lookup(Target.JOBS, Target.JOBS_DLQ, Target.EVENTS, Target.EVENTS_DLQ),
    Grant(_CONSUME, (Target.JOBS_DLQ, Target.EVENTS_DLQ)),
    Grant(("sqs:SendMessage",), (Target.JOBS, Target.EVENTS)),
)

# KEDA scales the consumers on queue depth: it reads the attributes of the two work queues.
KEDA_GRANTS: tuple[Grant, ...] = (Grant(("sqs:GetQueueAttributes",), (Target.JOBS, Target.EVENTS)),)
KEDA_NAMESPACE = "keda"
KEDA_SERVICE_ACCOUNT = "keda-operator"
