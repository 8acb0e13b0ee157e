"""The EKS cluster, its managed node group and add-ons, from CloudFormation's own EKS resources.

The L1 resources need no kubectl Lambda layer and no custom resources: everything here is plain
CloudFormation, which deploys, updates and checks like the rest of the stack.
"""

from __future__ import annotations

import json

from aws_cdk import Aws, CfnCondition, Fn, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks as eks
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from stockday_infra.stages import Stage

KUBERNETES_VERSION = "1.35"
# No AMI id anywhere: EKS picks the current AL2023 image of the cluster's version.
NODE_AMI_TYPE = "AL2023_x86_64_STANDARD"
CONTROL_PLANE_LOGS = ("api", "audit", "authenticator", "controllerManager", "scheduler")
# EKS add-ons, at the default version EKS picks for the cluster's Kubernetes version, with
# their configuration. The VPC CNI enforces the NetworkPolicies of deploy/k8s only when told
# to; metrics-server feeds the CPU autoscaling of the web services.
ADDONS: dict[str, dict[str, str]] = {
    "vpc-cni": {"enableNetworkPolicy": "true"},
    "kube-proxy": {},
    "coredns": {},
    "eks-pod-identity-agent": {},
    "metrics-server": {},
}


def _managed_policy(name: str) -> iam.IManagedPolicy:
    return iam.ManagedPolicy.from_aws_managed_policy_name(name)


class KubernetesCluster(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: Stage,
        subnet_ids: list[str],
        api_allowed_cidr: str,
        admin_role_arn: str,
        deploy_role_arn: str,
        log_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self.name = stage.cluster_name
        sizing = stage.sizing

        self.secrets_key = kms.Key(
            self,
            "SecretsKey",
            description=f"Envelope encryption of the Kubernetes secrets of {self.name}",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        role = iam.Role(
            self,
            "ClusterRole",
            assumed_by=iam.ServicePrincipal("eks.amazonaws.com"),
            managed_policies=[_managed_policy("AmazonEKSClusterPolicy")],
            # Inline, so that the role can use the key the moment the cluster is created.
            inline_policies={
                "secrets-key": iam.PolicyDocument(
                    statements=[
                        iam.PolicyStatement(
                            actions=[
                                "kms:Encrypt",
                                "kms:Decrypt",
                                "kms:DescribeKey",
                                "kms:CreateGrant",
                            ],
                            resources=[self.secrets_key.key_arn],
                        )
                    ]
                )
            },
        )
        # Made here (not by EKS on first write) so that it is encrypted and expires.
        log_group = logs.LogGroup(
            self,
            "ControlPlaneLogs",
            log_group_name=f"/aws/eks/{self.name}/cluster",
            retention=sizing.log_retention,
            encryption_key=log_key,
            removal_policy=RemovalPolicy.RETAIN,
        )

        self.cluster = eks.CfnCluster(
            self,
            "Cluster",
            name=self.name,
            version=KUBERNETES_VERSION,
            role_arn=role.role_arn,
            resources_vpc_config=eks.CfnCluster.ResourcesVpcConfigProperty(
                subnet_ids=subnet_ids,
                endpoint_private_access=True,
                # Operators and the pipeline reach the API from the allowed range only; nodes
                # use the private endpoint.
                endpoint_public_access=True,
                public_access_cidrs=[api_allowed_cidr],
            ),
            access_config=eks.CfnCluster.AccessConfigProperty(
                authentication_mode="API",
                # Cluster access is granted by access entries below, never implicitly to
                # whoever ran CloudFormation.
                bootstrap_cluster_creator_admin_permissions=False,
            ),
            encryption_config=[
                eks.CfnCluster.EncryptionConfigProperty(
                    provider=eks.CfnCluster.ProviderProperty(key_arn=self.secrets_key.key_arn),
                    resources=["secrets"],
                )
            ],
            logging=eks.CfnCluster.LoggingProperty(
                cluster_logging=eks.CfnCluster.ClusterLoggingProperty(
                    enabled_types=[
                        eks.CfnCluster.LoggingTypeConfigProperty(type=kind)
                        for kind in CONTROL_PLANE_LOGS
                    ]
                )
            ),
            upgrade_policy=eks.CfnCluster.UpgradePolicyProperty(support_type="STANDARD"),
            deletion_protection=stage.production,
        )
        self.cluster.node.add_dependency(log_group)
        # EKS attaches this group to the control plane and to every managed node; the cache
        # admits it.
        self.security_group_id = self.cluster.attr_cluster_security_group_id
        self.arn = self.cluster.attr_arn

        self._cluster_admin("AdminAccess", admin_role_arn)
        # The pipeline applies namespaces and cluster-wide objects, hence cluster scope too.
        has_deploy_role = CfnCondition(
            self,
            "HasDeployRole",
            expression=Fn.condition_not(Fn.condition_equals(deploy_role_arn, "")),
        )
        self._cluster_admin("DeployAccess", deploy_role_arn).cfn_options.condition = has_deploy_role

        node_role = iam.Role(
            self,
            "NodeRole",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            managed_policies=[
                _managed_policy("AmazonEKSWorkerNodePolicy"),
                _managed_policy("AmazonEC2ContainerRegistryPullOnly"),
                # The VPC CNI runs with the node's role while EKS bootstraps it.
                _managed_policy("AmazonEKS_CNI_Policy"),
            ],
        )
        launch_template = ec2.CfnLaunchTemplate(
            self,
            "NodeLaunchTemplate",
            launch_template_data=ec2.CfnLaunchTemplate.LaunchTemplateDataProperty(
                # IMDSv2 only, one hop: pods (one hop further) cannot borrow the node's role;
                # they get their own through EKS Pod Identity.
                metadata_options=ec2.CfnLaunchTemplate.MetadataOptionsProperty(
                    http_endpoint="enabled",
                    http_tokens="required",
                    http_put_response_hop_limit=1,
                ),
                block_device_mappings=[
                    ec2.CfnLaunchTemplate.BlockDeviceMappingProperty(
                        device_name="/dev/xvda",
                        ebs=ec2.CfnLaunchTemplate.EbsProperty(
                            volume_size=40,
                            volume_type="gp3",
                            encrypted=True,
                            delete_on_termination=True,
                        ),
                    )
                ],
            ),
        )
        self.nodes = eks.CfnNodegroup(
            self,
            "Nodes",
            cluster_name=self.cluster.ref,
            node_role=node_role.role_arn,
            # One subnet per zone: the group's Auto Scaling group balances nodes across them.
            subnets=subnet_ids,
            ami_type=NODE_AMI_TYPE,
            capacity_type="ON_DEMAND",
            instance_types=list(sizing.node_instance_types),
            scaling_config=eks.CfnNodegroup.ScalingConfigProperty(
                min_size=sizing.nodes_min,
                desired_size=sizing.nodes_min,
                max_size=sizing.nodes_max,
            ),
            update_config=eks.CfnNodegroup.UpdateConfigProperty(max_unavailable=1),
            launch_template=eks.CfnNodegroup.LaunchTemplateSpecificationProperty(
                id=launch_template.ref, version=launch_template.attr_latest_version_number
            ),
            labels={"stockday.example/pool": "general"},
        )

        for addon, configuration in ADDONS.items():
            resource = eks.CfnAddon(
                self,
                f"Addon-{addon}",
                cluster_name=self.cluster.ref,
                addon_name=addon,
                configuration_values=json.dumps(configuration) if configuration else None,
                # Take over the copies EKS installed itself at creation.
                resolve_conflicts="OVERWRITE",
            )
            # Add-ons schedule pods: they become active once there are nodes.
            resource.add_resource_dependency(self.nodes)

    def _cluster_admin(self, construct_id: str, principal_arn: str) -> eks.CfnAccessEntry:
        return eks.CfnAccessEntry(
            self,
            construct_id,
            cluster_name=self.cluster.ref,
            principal_arn=principal_arn,
            type="STANDARD",
            access_policies=[
                eks.CfnAccessEntry.AccessPolicyProperty(
                    policy_arn=(
                        f"arn:{Aws.PARTITION}:eks::aws:cluster-access-policy/"
                        "AmazonEKSClusterAdminPolicy"
                    ),
                    access_scope=eks.CfnAccessEntry.AccessScopeProperty(type="cluster"),
                )
            ],
        )
