"""One stage of Stock-of-the-Day on AWS: network, cluster, data, CDN, cache, alarms."""

from __future__ import annotations

import os

from aws_cdk import (
    ArnFormat,
    CfnCondition,
    CfnOutput,
    CfnParameter,
    Environment,
    Fn,
    RemovalPolicy,
    Stack,
    Tags,
)
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from stockday_infra import storage
from stockday_infra.cache import PriceCache
from stockday_infra.cdn import LogoCdn
from stockday_infra.cluster import KubernetesCluster
from stockday_infra.identities import WorkloadIdentities
from stockday_infra.messaging import work_queue
from stockday_infra.monitoring import Monitoring
from stockday_infra.network import ZONES, Network
from stockday_infra.objectives import ObjectiveAlarms
from stockday_infra.operators import operator_secret
from stockday_infra.permissions import Target
from stockday_infra.stages import Stage

# CloudFront accepts certificates from us-east-1 only.
CERTIFICATE_PATTERN = r"^arn:aws[a-z-]*:acm:us-east-1:[0-9]{12}:certificate/[0-9a-f-]{36}$"
ROLE_PATTERN = r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]+$"
CIDR_PATTERN = r"^(\d{1,3}\.){3}\d{1,3}/(\d|[12]\d|3[0-2])$"


def stack_name(stage: Stage) -> str:
    return f"Stockday{stage.name.capitalize()}"


class StockdayStack(Stack):
    def __init__(self, scope: Construct, stage: Stage) -> None:
        super().__init__(
            scope,
            stack_name(stage),
            # The account of the credentials cdk runs with; the region is the stage's setting.
            env=Environment(
                account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=stage.settings.aws_region
            ),
            description=f"Stock-of-the-Day {stage.name}: names from {_relative(stage)}",
            termination_protection=stage.production,
        )
        Tags.of(self).add("project", "stockday")
        Tags.of(self).add("stage", stage.name)
        settings = stage.settings

        api_cidr = CfnParameter(
            self,
            "ApiAllowedCidr",
            description="IPv4 range (CIDR) allowed to reach the cluster's public API endpoint: "
            "the operators' and the pipeline's egress.",
            allowed_pattern=CIDR_PATTERN,
            constraint_description="an IPv4 CIDR such as 203.0.113.0/24",
        )
        admin_role = CfnParameter(
            self,
            "ClusterAdminRoleArn",
            description="IAM role of the operators, given cluster-admin access to Kubernetes.",
            allowed_pattern=ROLE_PATTERN,
            constraint_description="an IAM role ARN",
        )
        deploy_role = CfnParameter(
            self,
            "DeployRoleArn",
            description="IAM role the pipeline deploys with (kubectl apply), given cluster-admin "
            "access too; empty for none. Must differ from ClusterAdminRoleArn.",
            default="",
            allowed_pattern=f"^$|{ROLE_PATTERN}",
            constraint_description="an IAM role ARN, or empty",
        )

        observability_key = kms.Key(
            self,
            "ObservabilityKey",
            description=f"Encrypts the log groups and the alarm topic of stockday {stage.name}",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        observability_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchLogs",
                principals=[iam.ServicePrincipal(f"logs.{self.region}.amazonaws.com")],
                actions=[
                    "kms:Encrypt*",
                    "kms:Decrypt*",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:Describe*",
                ],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": self.format_arn(
                            service="logs",
                            resource="log-group",
                            resource_name="*",
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                    }
                },
            )
        )
        # CloudWatch alarms publish to the encrypted topic with this key (the form AWS documents;
        # the topic's own policy limits publishers to this account's alarms).
        observability_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarms",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
            )
        )

        logs = storage.log_bucket(self, stage)
        network = Network(self, "Network", sizing=stage.sizing, log_bucket=logs)
        cluster = KubernetesCluster(
            self,
            "Kubernetes",
            stage=stage,
            subnet_ids=network.private_subnet_ids,
            api_allowed_cidr=api_cidr.value_as_string,
            admin_role_arn=admin_role.value_as_string,
            deploy_role_arn=deploy_role.value_as_string,
            log_key=observability_key,
        )

        table = storage.stocks_table(self, stage)
        bucket = storage.objects_bucket(self, stage, logs)
        jobs = work_queue(self, "LogoJobs", settings.logo_jobs_queue, stage)
        events = work_queue(self, "LogoEvents", settings.logo_events_queue, stage)
        operators = operator_secret(self, stage)

        arns = {
            Target.TABLE: table.table_arn,
            Target.TABLE_INDEXES: f"{table.table_arn}/index/*",
            Target.JOBS: jobs.queue.queue_arn,
            Target.JOBS_DLQ: jobs.dead_letters.queue_arn,
            Target.EVENTS: events.queue.queue_arn,
            Target.EVENTS_DLQ: events.dead_letters.queue_arn,
            Target.BUCKET: bucket.bucket_arn,
            Target.UPLOADS: bucket.arn_for_objects(f"{storage.UPLOADS_PREFIX}*"),
            Target.LOGOS: bucket.arn_for_objects(f"{storage.LOGOS_PREFIX}*"),
            Target.OPERATOR_SECRET: operators.secret_arn,
        }
        identities = WorkloadIdentities(
            self, "Identities", cluster=cluster.cluster, namespace=stage.namespace, arns=arns
        )

        cdn_host = stage.cdn_host
        cdn: LogoCdn | None = None
        if cdn_host is not None:
            certificate = CfnParameter(
                self,
                "LogoCdnCertificateArn",
                description=f"ACM certificate (us-east-1) for {cdn_host}, the logo CDN's name.",
                allowed_pattern=CERTIFICATE_PATTERN,
                constraint_description="an ACM certificate ARN in us-east-1",
            )
            cdn = LogoCdn(
                self,
                "LogoCdn",
                host=cdn_host,
                certificate_arn=certificate.value_as_string,
                bucket=bucket,
                log_bucket=logs,
            )

        cache = PriceCache(
            self,
            "PriceCache",
            stage=stage,
            vpc=network.vpc,
            subnet_ids=network.private_subnet_ids,
            client_security_group_id=cluster.security_group_id,
        )

        monitoring = Monitoring(
            self,
            "Monitoring",
            name=stack_name(stage),
            key=observability_key,
            table=table,
            queues=(jobs, events),
            jobs=jobs,
            cache=cache.cluster,
            cache_nodes=stage.sizing.cache_nodes,
        )
        self._objective_alarms(stage, monitoring)

        # What the services' settings must say; the contract tests hold these to the env file.
        self._setting("STOCKDAY_AWS_REGION", self.region)
        self._setting("STOCKDAY_DYNAMODB_TABLE", table.table_name)
        self._setting("STOCKDAY_LOGO_JOBS_QUEUE", jobs.queue.queue_name)
        self._setting("STOCKDAY_LOGO_EVENTS_QUEUE", events.queue.queue_name)
        self._setting("STOCKDAY_S3_BUCKET", bucket.bucket_name)
        self._setting("STOCKDAY_MEMCACHED_SERVERS", f"{cache.host}:{cache.port}")
        # The name as given: the secret's own name attribute is derived from its ARN.
        self._setting("STOCKDAY_OPERATOR_SECRET_NAME", str(settings.operator_secret_name))
        if cdn is not None:
            self._setting("STOCKDAY_LOGO_CDN_BASE_URL", f"https://{cdn_host}")
            CfnOutput(
                self,
                "LogoCdnDomainName",
                description=f"Point {cdn_host} (CNAME or alias) at this CloudFront name.",
                value=cdn.domain_name,
            )
        CfnOutput(self, "ClusterName", description="EKS cluster", value=cluster.cluster.ref)
        CfnOutput(
            self,
            "DlqOperatorPolicyArn",
            description="Attach to whoever runs `stockday dlq` against this stage",
            value=identities.operator_policy.managed_policy_arn,
        )

    def _objective_alarms(self, stage: Stage, monitoring: Monitoring) -> None:
        """The service level objectives' burn-rate alarms (stockday.slo.catalog)."""
        load_balancer = CfnParameter(
            self,
            "SiteLoadBalancer",
            description="The site ALB's CloudWatch dimension (app/<name>/<id>), once the ingress "
            "has made it; empty: no page-view objective alarms yet.",
            default="",
            allowed_pattern=r"^$|^app/[A-Za-z0-9-]+/[0-9a-f]+$",
            constraint_description="app/<name>/<id>, or empty",
        )
        has_load_balancer = CfnCondition(
            self,
            "HasSiteLoadBalancer",
            expression=Fn.condition_not(Fn.condition_equals(load_balancer.value_as_string, "")),
        )
        ObjectiveAlarms(
            self,
            "Objectives",
            topic=monitoring.topic,
            load_balancer=load_balancer.value_as_string,
            has_load_balancer=has_load_balancer,
            namespace=stack_name(stage),
        )

    @property
    def availability_zones(self) -> list[str]:
        # Three zones chosen by CloudFormation at deploy time: no lookup at synth (no account
        # needed) and no zone names in the code.
        return [Fn.select(index, Fn.get_azs()) for index in range(ZONES)]

    def _setting(self, name: str, value: str) -> None:
        output_id = "".join(part.capitalize() for part in name.lower().split("_"))
        CfnOutput(self, output_id, description=name, value=value)


def _relative(stage: Stage) -> str:
    parts = stage.env_file.parts
    return "/".join(parts[parts.index("deploy") :]) if "deploy" in parts else str(stage.env_file)
