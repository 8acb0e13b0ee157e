"""The service level objectives of ``stockday.slo.catalog`` as CloudWatch alarms.

The same objectives and burn rates as the Prometheus rules (deploy/prometheus, deploy/k8s),
read from the one catalogue. Each window of a burn-rate pair is a metric-math alarm on the error
ratio over that window (the alarm's period); a composite alarm per objective and severity fires
when both alarms of any of its pairs are in alarm, and is the only one that notifies. A
CloudWatch alarm's period is at most a day, so the 3d/6h ticket pair is Prometheus's alone.

Page views are the site's ALB (every path: the ALB does not count per path): its targets' and
its own 5xx, and the share of target responses within the latency bound (percentile rank).
The ALB is made by the ingress, after this stack: its dimension (``app/<name>/<id>``) is a
parameter, and without it the page-view alarms are not created. Logo processing is read from
custom metrics in the stage's namespace: ``LogoJobs`` by ``Outcome`` (ready, failed) and
``LogoReadySeconds``, queue-worker's counter and histogram.
"""

from __future__ import annotations

from aws_cdk import CfnCondition, Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_sns as sns
from constructs import Construct

from stockday.slo.catalog import (
    BURN_WINDOWS,
    OBJECTIVES,
    SECONDS,
    BurnWindow,
    Indicator,
    Journey,
    Objective,
    Severity,
)

LONGEST_ALARM_PERIOD = SECONDS["1d"]
ALB = "AWS/ApplicationELB"


def alarm_burns(severity: Severity) -> list[BurnWindow]:
    """The pairs of ``severity`` that CloudWatch alarms can hold (a period of a day at most)."""
    return [
        burn
        for burn in BURN_WINDOWS
        if burn.severity is severity and SECONDS[burn.long] <= LONGEST_ALARM_PERIOD
    ]


class ObjectiveAlarms(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        topic: sns.ITopic,
        load_balancer: str,
        has_load_balancer: CfnCondition,
        namespace: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.load_balancer = load_balancer
        self.namespace = namespace
        self.composites: list[cloudwatch.CompositeAlarm] = []
        action = actions.SnsAction(topic)
        for goal in OBJECTIVES:
            condition = has_load_balancer if goal.journey is Journey.PAGE_VIEWS else None
            for severity in Severity:
                composite = self._objective_alarm(goal, severity, condition)
                composite.add_alarm_action(action)
                composite.add_ok_action(action)
                self.composites.append(composite)

    def _objective_alarm(
        self, goal: Objective, severity: Severity, condition: CfnCondition | None
    ) -> cloudwatch.CompositeAlarm:
        pairs = []
        for burn in alarm_burns(severity):
            windows = [
                self._window_alarm(goal, burn, w, condition) for w in (burn.long, burn.short)
            ]
            pairs.append(cloudwatch.AlarmRule.all_of(*windows))
        kind = "FastBurn" if severity is Severity.PAGE else "SlowBurn"
        composite = cloudwatch.CompositeAlarm(
            self,
            f"{goal.alert_stem}{kind}",
            alarm_rule=cloudwatch.AlarmRule.any_of(*pairs),
            alarm_description=f"{severity.value}: {goal.name} is burning its error budget. "
            f"{goal.description} {goal.runbook}",
        )
        _only_if(composite, condition)
        return composite

    def _window_alarm(
        self, goal: Objective, burn: BurnWindow, window: str, condition: CfnCondition | None
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            f"{goal.alert_stem}{burn.long}{burn.short}{window}",
            alarm_description=f"{goal.name}: error ratio over {window} above "
            f"{burn.burn_rate:g} times the budget (one window of the {burn.long}/{burn.short} "
            "pair; the composite alarm notifies)",
            metric=self.error_ratio(goal, Duration.seconds(SECONDS[window])),
            threshold=round(burn.burn_rate * goal.budget, 10),
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        _only_if(alarm, condition)
        return alarm

    def error_ratio(self, goal: Objective, period: Duration) -> cloudwatch.MathExpression:
        """The share of bad events of ``goal`` over ``period``, as metric math."""
        metric = self._alb_metric if goal.journey is Journey.PAGE_VIEWS else self._logo_metric
        if goal.indicator is Indicator.LATENCY:
            assert goal.threshold_seconds is not None
            # The percentage of events within the bound (percentile rank).
            within = cloudwatch.Stats.percentile_rank(0, goal.threshold_seconds)
            name = (
                "TargetResponseTime" if goal.journey is Journey.PAGE_VIEWS else "LogoReadySeconds"
            )
            metrics = {"within": metric(name, within, period)}
            expression = "1 - within / 100"
        elif goal.journey is Journey.PAGE_VIEWS:
            metrics = {
                "target5xx": metric("HTTPCode_Target_5XX_Count", "Sum", period),
                "elb5xx": metric("HTTPCode_ELB_5XX_Count", "Sum", period),
                "requests": metric("RequestCount", "Sum", period),
            }
            expression = "(FILL(target5xx, 0) + FILL(elb5xx, 0)) / requests"
        else:
            metrics = {
                "failed": self._logo_metric("LogoJobs", "Sum", period, outcome="failed"),
                "ready": self._logo_metric("LogoJobs", "Sum", period, outcome="ready"),
            }
            expression = "FILL(failed, 0) / (FILL(failed, 0) + FILL(ready, 0))"
        return cloudwatch.MathExpression(
            expression=expression, using_metrics=metrics, period=period, label=goal.name
        )

    def _alb_metric(self, name: str, statistic: str, period: Duration) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=ALB,
            metric_name=name,
            dimensions_map={"LoadBalancer": self.load_balancer},
            statistic=statistic,
            period=period,
        )

    def _logo_metric(
        self, name: str, statistic: str, period: Duration, outcome: str | None = None
    ) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=self.namespace,
            metric_name=name,
            dimensions_map={"Outcome": outcome} if outcome else None,
            statistic=statistic,
            period=period,
        )


def _only_if(
    alarm: cloudwatch.Alarm | cloudwatch.CompositeAlarm, condition: CfnCondition | None
) -> None:
    if condition is not None:
        child = alarm.node.default_child
        assert isinstance(child, cloudwatch.CfnAlarm | cloudwatch.CfnCompositeAlarm)
        child.cfn_options.condition = condition
