"""Alarms on what users would feel or lose, an encrypted topic they go to, and one dashboard."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import ArnFormat, Aws, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from stockday_infra.messaging import WorkQueue

# The operations the DynamoDB adapter calls.
TABLE_OPERATIONS = (
    dynamodb.Operation.GET_ITEM,
    dynamodb.Operation.QUERY,
    dynamodb.Operation.TRANSACT_GET_ITEMS,
    dynamodb.Operation.TRANSACT_WRITE_ITEMS,
)
# A logo job waiting this long means logo-resizer is down or far behind (a resize takes
# milliseconds).
OLDEST_JOB_SECONDS = 300
CACHE_CPU_PERCENT = 80
# Prices live 15 minutes in the cache; steady evictions mean the nodes are too small.
CACHE_EVICTIONS_PER_5_MINUTES = 100


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        key: kms.IKey,
        table: dynamodb.Table,
        queues: Sequence[WorkQueue],
        jobs: WorkQueue,
        cache: elasticache.CfnCacheCluster,
        cache_nodes: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(
            self,
            "Alarms",
            display_name=f"{name} alarms",
            master_key=key,
            enforce_ssl=True,
        )
        # The topic's policy replaces SNS's default one, so it names its publisher: this
        # account's alarms.
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={
                    "ArnLike": {
                        "aws:SourceArn": Stack.of(self).format_arn(
                            service="cloudwatch",
                            resource="alarm",
                            resource_name="*",
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                    },
                    "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                },
            )
        )
        action = actions.SnsAction(self.topic)
        self.alarms: list[cloudwatch.Alarm] = []

        def alarm(
            construct_id: str,
            description: str,
            *,
            metric: cloudwatch.IMetric,
            threshold: float,
            evaluation_periods: int,
            comparison_operator: cloudwatch.ComparisonOperator,
            treat_missing_data: cloudwatch.TreatMissingData,
        ) -> cloudwatch.Alarm:
            created = cloudwatch.Alarm(
                self,
                construct_id,
                alarm_description=description,
                metric=metric,
                threshold=threshold,
                evaluation_periods=evaluation_periods,
                comparison_operator=comparison_operator,
                treat_missing_data=treat_missing_data,
            )
            created.add_alarm_action(action)
            created.add_ok_action(action)
            self.alarms.append(created)
            return created

        def on_any(construct_id: str, description: str, metric: cloudwatch.IMetric) -> None:
            """An alarm on the first occurrence: one or more in one period."""
            alarm(
                construct_id,
                description,
                metric=metric,
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )

        for work in queues:
            on_any(
                f"DeadLetters-{work.dead_letters.node.id}",
                f"A message was dead-lettered in {work.dead_letters.queue_name}: see it with "
                "`stockday dlq list`, redrive it with `stockday dlq redrive`.",
                work.dead_letters.metric_approximate_number_of_messages_visible(
                    period=Duration.minutes(1), statistic="Maximum"
                ),
            )
        alarm(
            "OldestLogoJob",
            f"The oldest logo job waited over {OLDEST_JOB_SECONDS} s: logo-resizer is down or "
            "behind.",
            metric=jobs.queue.metric_approximate_age_of_oldest_message(
                period=Duration.minutes(1), statistic="Maximum"
            ),
            threshold=OLDEST_JOB_SECONDS,
            evaluation_periods=3,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        throttles = table.metric_throttled_requests_for_operations(
            operations=list(TABLE_OPERATIONS), period=Duration.minutes(5)
        )
        on_any("TableThrottles", f"Requests to {table.table_name} were throttled.", throttles)
        system_errors = table.metric_system_errors_for_operations(
            operations=list(TABLE_OPERATIONS), period=Duration.minutes(5)
        )
        on_any(
            "TableSystemErrors",
            f"DynamoDB answered {table.table_name} requests with server errors.",
            system_errors,
        )
        cache_cpu = _per_node_max(cache, cache_nodes, "CPUUtilization", "Maximum")
        alarm(
            "CacheCpu",
            f"A memcached node ran above {CACHE_CPU_PERCENT} % CPU for 15 minutes.",
            metric=cache_cpu,
            threshold=CACHE_CPU_PERCENT,
            evaluation_periods=3,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.MISSING,
        )
        evictions = _per_node_max(cache, cache_nodes, "Evictions", "Sum")
        alarm(
            "CacheEvictions",
            "memcached keeps evicting live prices: its nodes are too small.",
            metric=evictions,
            threshold=CACHE_EVICTIONS_PER_5_MINUTES,
            evaluation_periods=3,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

        dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=name, default_interval=Duration.hours(6)
        )
        dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=self.alarms, width=24, height=4)
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Queue depth (visible messages)",
                left=[
                    q.metric_approximate_number_of_messages_visible(period=Duration.minutes(1))
                    for work in queues
                    for q in (work.queue, work.dead_letters)
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Oldest message age (s)",
                left=[
                    work.queue.metric_approximate_age_of_oldest_message(period=Duration.minutes(1))
                    for work in queues
                ],
                width=12,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="DynamoDB capacity consumed",
                left=[
                    table.metric_consumed_read_capacity_units(period=Duration.minutes(5)),
                    table.metric_consumed_write_capacity_units(period=Duration.minutes(5)),
                ],
                width=8,
            ),
            # One widget each: both expressions name their metrics by operation.
            cloudwatch.GraphWidget(title="DynamoDB throttled requests", left=[throttles], width=8),
            cloudwatch.GraphWidget(title="DynamoDB server errors", left=[system_errors], width=8),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(title="memcached CPU, highest node", left=[cache_cpu], width=8),
            cloudwatch.GraphWidget(title="memcached evictions", left=[evictions], width=8),
            cloudwatch.GraphWidget(
                title="memcached hits and misses",
                left=[
                    _per_node_sum(cache, cache_nodes, "GetHits", "hits"),
                    _per_node_sum(cache, cache_nodes, "GetMisses", "misses"),
                ],
                width=8,
            ),
        )


def _node_metrics(
    cache: elasticache.CfnCacheCluster, nodes: int, metric: str, statistic: str
) -> dict[str, cloudwatch.IMetric]:
    # memcached publishes host metrics per node; node ids are 0001, 0002, ...
    return {
        f"{metric.lower()}{index}": cloudwatch.Metric(
            namespace="AWS/ElastiCache",
            metric_name=metric,
            dimensions_map={"CacheClusterId": cache.ref, "CacheNodeId": f"{index:04d}"},
            statistic=statistic,
            period=Duration.minutes(5),
        )
        for index in range(1, nodes + 1)
    }


def _per_node_max(
    cache: elasticache.CfnCacheCluster, nodes: int, metric: str, statistic: str
) -> cloudwatch.MathExpression:
    per_node = _node_metrics(cache, nodes, metric, statistic)
    return cloudwatch.MathExpression(
        expression=f"MAX([{', '.join(per_node)}])",
        using_metrics=per_node,
        label=f"{metric} (highest node)",
        period=Duration.minutes(5),
    )


def _per_node_sum(
    cache: elasticache.CfnCacheCluster, nodes: int, metric: str, label: str
) -> cloudwatch.MathExpression:
    per_node = _node_metrics(cache, nodes, metric, "Sum")
    return cloudwatch.MathExpression(
        expression=" + ".join(per_node),
        using_metrics=per_node,
        label=label,
        period=Duration.minutes(5),
    )
