"""The price cache: ElastiCache memcached across zones, reachable from the cluster's nodes only,
under the name STOCKDAY_MEMCACHED_SERVERS gives it."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_route53 as route53
from constructs import Construct

from stockday_infra.stages import Stage

ENGINE_VERSION = "1.6.22"


class PriceCache(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: Stage,
        vpc: ec2.IVpc,
        subnet_ids: list[str],
        client_security_group_id: str,
    ) -> None:
        super().__init__(scope, construct_id)
        host, port = stage.memcached_endpoint
        self.port = port
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description=f"memcached of {stage.cluster_name}: port {port} from the cluster only",
            allow_all_outbound=False,
        )
        self.security_group.add_ingress_rule(
            ec2.Peer.security_group_id(client_security_group_id),
            ec2.Port.tcp(port),
            "memcached from the EKS cluster security group (every managed node)",
        )
        subnet_group = elasticache.CfnSubnetGroup(
            self,
            "Subnets",
            description=f"Private subnets of {stage.cluster_name}",
            subnet_ids=subnet_ids,
        )
        self.cluster = elasticache.CfnCacheCluster(
            self,
            "Cluster",
            engine="memcached",
            engine_version=ENGINE_VERSION,
            cache_node_type=stage.sizing.cache_node_type,
            num_cache_nodes=stage.sizing.cache_nodes,
            # One node per zone (as far as the count goes): losing a zone loses part of a cache,
            # never all of it.
            az_mode="cross-az",
            port=port,
            cache_subnet_group_name=subnet_group.ref,
            vpc_security_group_ids=[self.security_group.security_group_id],
            auto_minor_version_upgrade=True,
        )
        zone = route53.PrivateHostedZone(
            self, "Zone", zone_name=stage.memcached_zone, vpc=vpc, comment="Stockday internal names"
        )
        self.record = route53.CnameRecord(
            self,
            "Name",
            zone=zone,
            record_name=host,
            domain_name=self.cluster.attr_configuration_endpoint_address,
            ttl=Duration.minutes(1),
        )
        self.host = host
