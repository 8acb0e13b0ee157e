"""The VPC: three zones, public and private subnets, flow logs, endpoints for the data path."""

from __future__ import annotations

from aws_cdk import Tags
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stockday_infra.stages import Sizing

ZONES = 3


class Network(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, sizing: Sizing, log_bucket: s3.IBucket
    ) -> None:
        super().__init__(scope, construct_id)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(sizing.vpc_cidr),
            max_azs=ZONES,
            nat_gateways=sizing.nat_gateways,
            subnet_configuration=[
                # Public subnets hold only the NAT gateways and the ALB: nothing gets a public IP
                # by default.
                ec2.SubnetConfiguration(
                    name="public",
                    subnet_type=ec2.SubnetType.PUBLIC,
                    cidr_mask=22,
                    map_public_ip_on_launch=False,
                ),
                # Large private subnets: the VPC CNI gives every pod an address of its node's
                # subnet.
                ec2.SubnetConfiguration(
                    name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=19
                ),
            ],
            # Restricting the default group takes a custom-resource Lambda; nothing here uses
            # the default group (every resource gets its own).
            restrict_default_security_group=False,
            flow_logs={
                "all": ec2.FlowLogOptions(
                    destination=ec2.FlowLogDestination.to_s3(log_bucket, "vpc-flow-logs/"),
                    traffic_type=ec2.FlowLogTrafficType.ALL,
                )
            },
            gateway_endpoints={
                "DynamoDb": ec2.GatewayVpcEndpointOptions(
                    service=ec2.GatewayVpcEndpointAwsService.DYNAMODB
                ),
                "S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3),
            },
        )
        # The consumers long-poll SQS all day: keep that traffic off the NAT gateways.
        self.vpc.add_interface_endpoint(
            "Sqs",
            service=ec2.InterfaceVpcEndpointAwsService.SQS,
            private_dns_enabled=True,
            subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
        )
        # How the AWS Load Balancer Controller finds the subnets for internet-facing and
        # internal load balancers.
        for subnet in self.vpc.public_subnets:
            Tags.of(subnet).add("kubernetes.io/role/elb", "1")
        for subnet in self.vpc.private_subnets:
            Tags.of(subnet).add("kubernetes.io/role/internal-elb", "1")

    @property
    def private_subnet_ids(self) -> list[str]:
        return [subnet.subnet_id for subnet in self.vpc.private_subnets]
