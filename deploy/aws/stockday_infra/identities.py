"""One IAM role per workload, bound to its Kubernetes ServiceAccount by EKS Pod Identity."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from aws_cdk import Aws
from aws_cdk import aws_eks as eks
from aws_cdk import aws_iam as iam
from constructs import Construct

from stockday_infra.permissions import (
    KEDA_GRANTS,
    KEDA_NAMESPACE,
    KEDA_SERVICE_ACCOUNT,
    OPERATOR_GRANTS,
    SERVICE_GRANTS,
    Grant,
    Target,
)


def policy_document(grants: Iterable[Grant], arns: Mapping[Target, str]) -> iam.PolicyDocument:
    """One statement per grant, its targets resolved to the stage's ARNs."""
    return iam.PolicyDocument(
        statements=[
            iam.PolicyStatement(
                actions=list(grant.actions),
                resources=[arns[target] for target in grant.targets],
            )
            for grant in grants
        ]
    )


class WorkloadIdentities(Construct):
    """The roles of stock-symbol, logo-resizer, queue-worker and KEDA, and the operator policy."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cluster: eks.CfnCluster,
        namespace: str,
        arns: Mapping[Target, str],
    ) -> None:
        super().__init__(scope, construct_id)
        self.roles: dict[str, iam.Role] = {}
        for service, grants in SERVICE_GRANTS.items():
            self.roles[service] = self._bind(
                service, cluster, namespace, service, policy_document(grants, arns)
            )
        self.roles[KEDA_SERVICE_ACCOUNT] = self._bind(
            "keda",
            cluster,
            KEDA_NAMESPACE,
            KEDA_SERVICE_ACCOUNT,
            policy_document(KEDA_GRANTS, arns),
        )
        self.operator_policy = iam.ManagedPolicy(
            self,
            "DlqOperator",
            description="stockday dlq: inspect and redrive the dead letters of this stage",
            document=policy_document(OPERATOR_GRANTS, arns),
        )

    def _bind(
        self,
        construct_id: str,
        cluster: eks.CfnCluster,
        namespace: str,
        service_account: str,
        document: iam.PolicyDocument,
    ) -> iam.Role:
        role = iam.Role(
            self,
            construct_id,
            description=f"EKS Pod Identity of {namespace}/{service_account}",
            assumed_by=iam.ServicePrincipal("pods.eks.amazonaws.com")
            .with_session_tags()
            .with_conditions(
                {
                    # Only Pod Identity acting for this account's cluster may assume it.
                    "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                    "ArnEquals": {"aws:SourceArn": cluster.attr_arn},
                }
            ),
            inline_policies={"access": document},
        )
        eks.CfnPodIdentityAssociation(
            self,
            f"{construct_id}-association",
            cluster_name=cluster.ref,
            namespace=namespace,
            service_account=service_account,
            role_arn=role.role_arn,
        )
        return role
