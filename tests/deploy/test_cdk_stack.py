"""The CDK stacks of deploy/aws, synthesized in-process once: the properties that keep data
safe, private and least-privileged, and the names the services' settings expect."""

from __future__ import annotations

import fnmatch
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match
from aws_cdk.assertions import Template as Assertions
from botocore.exceptions import ClientError

from stockday.aws.provision import create_table
from stockday.runtime.settings import Settings
from tests.deploy.cdk_support import (
    STAGES,
    Names,
    Template,
    as_list,
    documented_permissions,
    import_infra,
    only,
    policy_grants,
    resources,
    synthesized,
)
from tests.deploy.overlays import env_file

stages = pytest.mark.parametrize("stage", STAGES)


def template(stage: str) -> Template:
    return synthesized()[stage]


def assertions(stage: str) -> Assertions:
    return Assertions.from_json(template(stage))


def setting(stage: str, name: str) -> Any:
    """What the services of ``stage`` run with: the env file's value, else the code's default."""
    value = env_file(stage).get(f"STOCKDAY_{name.upper()}")
    default = Settings.model_fields[name].default
    return type(default)(value) if value is not None else default


def queue_id(stage: str, name: str) -> str:
    found = [
        logical_id
        for logical_id, queue in resources(template(stage), "AWS::SQS::Queue").items()
        if queue["Properties"]["QueueName"] == name
    ]
    assert len(found) == 1, f"one queue named {name}: {found}"
    return found[0]


# --- DynamoDB -----------------------------------------------------------------------------


class _RecordingDynamoDb:
    """Stands in for a boto3 client: the table does not exist, and create_table's call is kept."""

    def __init__(self) -> None:
        self.created: dict[str, Any] = {}

    def describe_table(self, **_: Any) -> None:
        raise ClientError({"Error": {"Code": "ResourceNotFoundException"}}, "DescribeTable")

    def create_table(self, **kwargs: Any) -> None:
        self.created = kwargs

    def get_waiter(self, _: str) -> Any:
        return type("Waiter", (), {"wait": lambda *_, **__: None})()


@stages
def test_table_has_the_schema_provisioning_creates(stage: str) -> None:
    client = _RecordingDynamoDb()
    create_table(client, "expected")  # type: ignore[arg-type]
    expected = client.created
    _, table = only(template(stage), "AWS::DynamoDB::Table")
    props = table["Properties"]

    assert props["TableName"] == env_file(stage)["STOCKDAY_DYNAMODB_TABLE"]
    assert props["KeySchema"] == expected["KeySchema"]
    assert sorted(props["AttributeDefinitions"], key=str) == sorted(
        expected["AttributeDefinitions"], key=str
    )
    assert props["GlobalSecondaryIndexes"] == expected["GlobalSecondaryIndexes"]
    assert props["BillingMode"] == expected["BillingMode"] == "PAY_PER_REQUEST"


@stages
def test_table_is_encrypted_recoverable_and_retained(stage: str) -> None:
    _, table = only(template(stage), "AWS::DynamoDB::Table")
    props = table["Properties"]
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props.get("DeletionProtectionEnabled", False) is (stage == "production")
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"


# --- SQS ----------------------------------------------------------------------------------


@stages
@pytest.mark.parametrize("queue_setting", ["logo_jobs_queue", "logo_events_queue"])
def test_each_queue_redrives_to_its_dead_letter_queue(stage: str, queue_setting: str) -> None:
    name = setting(stage, queue_setting)
    queues = template(stage)["Resources"]
    queue = queues[queue_id(stage, name)]["Properties"]
    dead_id = queue_id(stage, f"{name}-dlq")

    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dead_id, "Arn"]},
        "maxReceiveCount": setting(stage, "queue_max_receives"),
    }
    assert queue["VisibilityTimeout"] == math.ceil(setting(stage, "queue_visibility_seconds"))
    for props in (queue, queues[dead_id]["Properties"]):
        assert props["SqsManagedSseEnabled"] is True
    assert "RedrivePolicy" not in queues[dead_id]["Properties"]


@stages
def test_every_queue_refuses_unencrypted_transport(stage: str) -> None:
    t = template(stage)
    protected = set()
    for policy in resources(t, "AWS::SQS::QueuePolicy").values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        if any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in statements
        ):
            protected |= {q["Ref"] for q in policy["Properties"]["Queues"]}
    assert protected == set(resources(t, "AWS::SQS::Queue"))


@stages
def test_a_single_dead_letter_raises_an_alarm_to_the_encrypted_topic(stage: str) -> None:
    t = template(stage)
    topic_id, topic = only(t, "AWS::SNS::Topic")
    assert "KmsMasterKeyId" in topic["Properties"]
    for name in (setting(stage, "logo_jobs_queue"), setting(stage, "logo_events_queue")):
        Assertions.from_json(t).has_resource_properties(
            "AWS::CloudWatch::Alarm",
            {
                "Namespace": "AWS/SQS",
                "MetricName": "ApproximateNumberOfMessagesVisible",
                "Dimensions": [
                    {
                        "Name": "QueueName",
                        "Value": {"Fn::GetAtt": [queue_id(stage, f"{name}-dlq"), "QueueName"]},
                    }
                ],
                "Threshold": 1,
                "ComparisonOperator": "GreaterThanOrEqualToThreshold",
                "EvaluationPeriods": 1,
                "AlarmActions": [{"Ref": topic_id}],
            },
        )


@stages
def test_cloudwatch_may_publish_to_the_encrypted_alarm_topic(stage: str) -> None:
    t = template(stage)
    topic_id, topic = only(t, "AWS::SNS::Topic")
    [(_, policy)] = [
        (i, p)
        for i, p in resources(t, "AWS::SNS::TopicPolicy").items()
        if p["Properties"]["Topics"] == [{"Ref": topic_id}]
    ]
    publishers = [
        s
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Allow" and s["Action"] == "sns:Publish"
    ]
    assert [s["Principal"] for s in publishers] == [{"Service": "cloudwatch.amazonaws.com"}]
    key_id, _ = topic["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"]
    key_statements = t["Resources"][key_id]["Properties"]["KeyPolicy"]["Statement"]
    assert any(
        s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
        and {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(as_list(s["Action"]))
        for s in key_statements
    ), "CloudWatch cannot publish to a topic whose key it may not use"


@stages
def test_alarms_watch_the_table_the_jobs_and_the_cache(stage: str) -> None:
    alarms = resources(template(stage), "AWS::CloudWatch::Alarm")
    composites = json.dumps(resources(template(stage), "AWS::CloudWatch::CompositeAlarm"))
    watched = set()
    for logical, alarm in alarms.items():
        props = alarm["Properties"]
        metrics = [props] + [
            m["MetricStat"]["Metric"] for m in props.get("Metrics", []) if "MetricStat" in m
        ]
        watched |= {(m.get("Namespace"), m.get("MetricName")) for m in metrics}
        # An objective's window alarm notifies through its composite (test_cdk_objectives).
        notifies = props.get("AlarmActions") or f'"{logical}"' in composites
        assert notifies, f"alarm without action: {props}"
    assert {
        ("AWS/SQS", "ApproximateAgeOfOldestMessage"),
        ("AWS/DynamoDB", "ThrottledRequests"),
        ("AWS/DynamoDB", "SystemErrors"),
        ("AWS/ElastiCache", "CPUUtilization"),
        ("AWS/ElastiCache", "Evictions"),
    } <= watched
    only(template(stage), "AWS::CloudWatch::Dashboard")


# --- S3 and CloudFront --------------------------------------------------------------------


def objects_bucket(stage: str) -> tuple[str, dict[str, Any]]:
    names = Names(template(stage), env_file(stage))
    bucket_id = names.ids["BUCKET"]
    return bucket_id, template(stage)["Resources"][bucket_id]


@stages
def test_bucket_is_private_encrypted_versioned_and_logged(stage: str) -> None:
    bucket_id, bucket = objects_bucket(stage)
    props = bucket["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    ]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    assert "AccessControl" not in props
    log_bucket = props["LoggingConfiguration"]["DestinationBucketName"]["Ref"]
    assert log_bucket != bucket_id
    assert bucket["DeletionPolicy"] == "Retain"


@stages
def test_raw_uploads_expire_after_the_services_retention(stage: str) -> None:
    _, bucket = objects_bucket(stage)
    rules = bucket["Properties"]["LifecycleConfiguration"]["Rules"]
    uploads = [rule for rule in rules if rule.get("Prefix") == "uploads/"]
    days = math.ceil(setting(stage, "linked_upload_retention_seconds") / 86_400)
    assert [(r["Status"], r["ExpirationInDays"]) for r in uploads] == [("Enabled", days)]
    # Nothing else expires current objects: logos stay.
    assert all("ExpirationInDays" not in rule for rule in rules if rule not in uploads)


@stages
def test_no_bucket_is_public(stage: str) -> None:
    t = template(stage)
    for bucket in resources(t, "AWS::S3::Bucket").values():
        assert bucket["Properties"]["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        assert "AccessControl" not in bucket["Properties"]
    for policy in resources(t, "AWS::S3::BucketPolicy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Allow":
                assert "Service" in statement["Principal"], statement
                assert "Condition" in statement, statement


@stages
def test_cdn_reads_only_logos_through_an_origin_access_control(stage: str) -> None:
    t = template(stage)
    bucket_id, _ = objects_bucket(stage)
    oac_id, oac = only(t, "AWS::CloudFront::OriginAccessControl")
    assert oac["Properties"]["OriginAccessControlConfig"]["OriginAccessControlOriginType"] == "s3"
    assert oac["Properties"]["OriginAccessControlConfig"]["SigningBehavior"] == "always"
    distribution_id, distribution = only(t, "AWS::CloudFront::Distribution")
    config = distribution["Properties"]["DistributionConfig"]
    [origin] = config["Origins"]
    assert origin["DomainName"] == {"Fn::GetAtt": [bucket_id, "RegionalDomainName"]}
    assert origin["OriginAccessControlId"] == {"Fn::GetAtt": [oac_id, "Id"]}
    assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}

    host = env_file(stage)["STOCKDAY_LOGO_CDN_BASE_URL"].removeprefix("https://")
    assert config["Aliases"] == [host]
    assert config["ViewerCertificate"]["AcmCertificateArn"] == {"Ref": "LogoCdnCertificateArn"}
    assert config["ViewerCertificate"]["MinimumProtocolVersion"].startswith("TLSv1.2")
    assert config["DefaultCacheBehavior"]["ViewerProtocolPolicy"] == "https-only"
    assert config["DefaultCacheBehavior"]["AllowedMethods"] == ["GET", "HEAD"]
    assert "Bucket" in config["Logging"]
    headers_id = config["DefaultCacheBehavior"]["ResponseHeadersPolicyId"]["Ref"]
    security = t["Resources"][headers_id]["Properties"]["ResponseHeadersPolicyConfig"][
        "SecurityHeadersConfig"
    ]
    assert {"StrictTransportSecurity", "ContentTypeOptions", "FrameOptions"} <= set(security)

    [policy] = [
        p
        for p in resources(t, "AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": bucket_id}
    ]
    allows = [
        s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"
    ]
    assert allows == [
        {
            "Sid": "CdnReadsLogos",
            "Effect": "Allow",
            "Principal": {"Service": "cloudfront.amazonaws.com"},
            "Action": "s3:GetObject",
            "Resource": {"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, "/logos/*"]]},
            "Condition": {
                "StringEquals": {
                    "AWS:SourceArn": {
                        "Fn::Join": [
                            "",
                            [
                                "arn:aws:cloudfront::",
                                {"Ref": "AWS::AccountId"},
                                ":distribution/",
                                {"Ref": distribution_id},
                            ],
                        ]
                    }
                }
            },
        }
    ]


# --- IAM ----------------------------------------------------------------------------------


def pod_identities(stage: str) -> dict[tuple[str, str], str]:
    """(namespace, service account) -> logical id of the role Pod Identity gives it."""
    bound = {}
    for association in resources(template(stage), "AWS::EKS::PodIdentityAssociation").values():
        props = association["Properties"]
        role_id, attribute = props["RoleArn"]["Fn::GetAtt"]
        assert attribute == "Arn"
        bound[(props["Namespace"], props["ServiceAccount"])] = role_id
    return bound


@stages
def test_only_workloads_that_call_aws_get_a_role(stage: str) -> None:
    assert set(pod_identities(stage)) == {
        (f"stockday-{stage}", "frontend"),
        (f"stockday-{stage}", "stock-symbol"),
        (f"stockday-{stage}", "logo-resizer"),
        (f"stockday-{stage}", "queue-worker"),
        ("keda", "keda-operator"),
    }


@stages
def test_roles_grant_exactly_what_docs_aws_iam_md_lists(stage: str) -> None:
    t = template(stage)
    names = Names(t, env_file(stage))
    documented = documented_permissions()
    assert documented["stock-price"] == set()
    assert documented["frontend"] == {("secretsmanager:GetSecretValue", "OPERATOR_SECRET")}

    for (_, account), role_id in pod_identities(stage).items():
        role = t["Resources"][role_id]["Properties"]
        [inline] = role["Policies"]
        assert "ManagedPolicyArns" not in role
        granted = policy_grants(inline["PolicyDocument"], names)
        assert granted == documented[account], (
            f"{account}: granted beyond the doc {sorted(granted - documented[account])}, "
            f"documented but missing {sorted(documented[account] - granted)}"
        )

    _, operator = only(t, "AWS::IAM::ManagedPolicy")
    assert policy_grants(operator["Properties"]["PolicyDocument"], names) == documented["operator"]
    # Roles get their permissions inline only: no stray policy attaches more.
    assert resources(t, "AWS::IAM::Policy") == {}


@stages
def test_pod_identity_roles_trust_only_pod_identity_of_this_cluster(stage: str) -> None:
    t = template(stage)
    cluster_id, _ = only(t, "AWS::EKS::Cluster")
    for role_id in pod_identities(stage).values():
        [statement] = t["Resources"][role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert statement["Principal"] == {"Service": "pods.eks.amazonaws.com"}
        assert sorted(as_list(statement["Action"])) == ["sts:AssumeRole", "sts:TagSession"]
        assert statement["Condition"] == {
            "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
            "ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": [cluster_id, "Arn"]}},
        }


@stages
def test_no_wildcard_in_any_workload_permission(stage: str) -> None:
    t = template(stage)
    roles = [t["Resources"][role_id]["Properties"] for role_id in pod_identities(stage).values()]
    documents = [p["PolicyDocument"] for role in roles for p in role["Policies"]]
    documents += [
        p["Properties"]["PolicyDocument"] for p in resources(t, "AWS::IAM::ManagedPolicy").values()
    ]
    for document in documents:
        for statement in document["Statement"]:
            for action in as_list(statement["Action"]):
                assert "*" not in action, statement
            for resource in as_list(statement["Resource"]):
                assert resource != "*", statement


# --- hygiene ------------------------------------------------------------------------------


@stages
def test_no_account_ids_ami_ids_zone_names_or_group_ids(stage: str) -> None:
    text = json.dumps([template(stage), template("images")])
    assert not re.search(r"(?<!\d)\d{12}(?!\d)", text), "an account id in the template"
    assert not re.search(r"\bami-[0-9a-f]{8,17}\b", text), "an AMI id in the template"
    assert not re.search(r"\b[a-z]{2}(-[a-z]+)+-\d[a-z]\b", text), "a zone name in the template"
    assert not re.search(r"\bsg-[0-9a-f]{8,17}\b", text), "a security group id in the template"


@stages
def test_no_custom_resources_or_lambda_functions(stage: str) -> None:
    kinds = {resource["Type"] for resource in template(stage)["Resources"].values()}
    assert not {k for k in kinds if k.startswith("Custom::") or k.startswith("AWS::Lambda::")}
    assert "AWS::CloudFormation::CustomResource" not in kinds


# --- network, cluster, cache, registry ----------------------------------------------------


@stages
def test_vpc_spans_three_zones_with_endpoints_and_flow_logs(stage: str) -> None:
    t = template(stage)
    subnets = resources(t, "AWS::EC2::Subnet").values()
    zones = [s["Properties"]["AvailabilityZone"] for s in subnets]
    assert sorted({json.dumps(z) for z in zones}) == sorted(
        json.dumps({"Fn::Select": [i, {"Fn::GetAZs": ""}]}) for i in range(3)
    )
    assert all(s["Properties"]["MapPublicIpOnLaunch"] is False for s in subnets)
    assert len(resources(t, "AWS::EC2::NatGateway")) == (3 if stage == "production" else 1)
    only(t, "AWS::EC2::FlowLog")
    kinds = []
    for endpoint in resources(t, "AWS::EC2::VPCEndpoint").values():
        service = endpoint["Properties"]["ServiceName"]
        # com.amazonaws.<region>.<service>, the region a Ref when not literal.
        text = service if isinstance(service, str) else service["Fn::Join"][1][-1]
        kind = endpoint["Properties"].get("VpcEndpointType", "Gateway")
        kinds.append((kind, text.rsplit(".", 1)[-1]))
    kinds.sort()
    assert kinds == [("Gateway", "dynamodb"), ("Gateway", "s3"), ("Interface", "sqs")]


def private_subnet_refs(t: Template) -> list[dict[str, str]]:
    return [
        {"Ref": logical_id}
        for logical_id, subnet in resources(t, "AWS::EC2::Subnet").items()
        if subnet["Properties"]["MapPublicIpOnLaunch"] is False
        and any(
            tag == {"Key": "aws-cdk:subnet-type", "Value": "Private"}
            for tag in subnet["Properties"]["Tags"]
        )
    ]


@stages
def test_cluster_is_encrypted_logged_and_reachable_from_the_allowed_range(stage: str) -> None:
    t = template(stage)
    _, cluster = only(t, "AWS::EKS::Cluster")
    props = cluster["Properties"]
    assert props["Name"] == f"stockday-{stage}"
    [encryption] = props["EncryptionConfig"]
    assert encryption["Resources"] == ["secrets"]
    key_id, _ = encryption["Provider"]["KeyArn"]["Fn::GetAtt"]
    assert t["Resources"][key_id]["Properties"]["EnableKeyRotation"] is True
    vpc = props["ResourcesVpcConfig"]
    assert vpc["EndpointPrivateAccess"] is True
    assert vpc["PublicAccessCidrs"] == [{"Ref": "ApiAllowedCidr"}]
    assert sorted(vpc["SubnetIds"], key=str) == sorted(private_subnet_refs(t), key=str)
    assert len(vpc["SubnetIds"]) == 3
    enabled = {entry["Type"] for entry in props["Logging"]["ClusterLogging"]["EnabledTypes"]}
    assert enabled == {"api", "audit", "authenticator", "controllerManager", "scheduler"}
    assert props["AccessConfig"] == {
        "AuthenticationMode": "API",
        "BootstrapClusterCreatorAdminPermissions": False,
    }
    entries = {
        json.dumps(e["Properties"]["PrincipalArn"]): e.get("Condition")
        for e in resources(t, "AWS::EKS::AccessEntry").values()
    }
    # The operators' role always; the pipeline's only when given.
    admin, deploy = json.dumps({"Ref": "ClusterAdminRoleArn"}), json.dumps({"Ref": "DeployRoleArn"})
    assert set(entries) == {admin, deploy}
    assert entries[admin] is None
    assert t["Conditions"][entries[deploy]] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "DeployRoleArn"}, ""]}]
    }
    addons = {
        a["Properties"]["AddonName"]: a["Properties"].get("ConfigurationValues")
        for a in resources(t, "AWS::EKS::Addon").values()
    }
    assert {"eks-pod-identity-agent", "metrics-server", "coredns", "kube-proxy"} <= set(addons)
    # deploy/k8s relies on NetworkPolicies, which the VPC CNI enforces only when enabled.
    assert json.loads(addons["vpc-cni"])["enableNetworkPolicy"] == "true"


def _pattern(value: Any) -> str:
    """An ARN pattern of the template as text, pseudo parameters spelt out."""
    if isinstance(value, str):
        return value
    if value == {"Ref": "AWS::AccountId"}:
        return "111111111111"
    separator, parts = value["Fn::Join"]
    return str(separator).join(_pattern(part) for part in parts)


@stages
def test_control_plane_logs_are_encrypted_with_a_key_logs_may_use(stage: str) -> None:
    t = template(stage)
    [group] = [
        g["Properties"]
        for g in resources(t, "AWS::Logs::LogGroup").values()
        if g["Properties"]["LogGroupName"] == f"/aws/eks/stockday-{stage}/cluster"
    ]
    assert "RetentionInDays" in group
    key_id, _ = group["KmsKeyId"]["Fn::GetAtt"]
    region = env_file(stage)["STOCKDAY_AWS_REGION"]
    group_arn = f"arn:aws:logs:{region}:111111111111:log-group:{group['LogGroupName']}"
    allowed = [
        _pattern(s["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"])
        for s in t["Resources"][key_id]["Properties"]["KeyPolicy"]["Statement"]
        if s["Principal"] == {"Service": f"logs.{region}.amazonaws.com"}
    ]
    assert any(fnmatch.fnmatchcase(group_arn, pattern) for pattern in allowed), allowed


@stages
def test_nodes_spread_over_the_private_subnets_with_imdsv2_only(stage: str) -> None:
    t = template(stage)
    _, nodes = only(t, "AWS::EKS::Nodegroup")
    props = nodes["Properties"]
    assert sorted(props["Subnets"], key=str) == sorted(private_subnet_refs(t), key=str)
    assert props["ScalingConfig"]["MinSize"] >= 3
    assert props["AmiType"].startswith("AL2023_")
    template_id = props["LaunchTemplate"]["Id"]["Ref"]
    data = t["Resources"][template_id]["Properties"]["LaunchTemplateData"]
    assert "ImageId" not in data
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert data["MetadataOptions"]["HttpPutResponseHopLimit"] == 1
    assert all(m["Ebs"]["Encrypted"] for m in data["BlockDeviceMappings"])


@stages
def test_memcached_is_cross_zone_private_and_named_as_the_services_expect(stage: str) -> None:
    t = template(stage)
    host, port = env_file(stage)["STOCKDAY_MEMCACHED_SERVERS"].rsplit(":", 1)
    cache_id, cache = only(t, "AWS::ElastiCache::CacheCluster")
    props = cache["Properties"]
    assert props["Engine"] == "memcached"
    assert props["AZMode"] == "cross-az"
    assert props["NumCacheNodes"] >= 2
    assert props["Port"] == int(port)
    subnet_group = t["Resources"][props["CacheSubnetGroupName"]["Ref"]]["Properties"]
    assert sorted(subnet_group["SubnetIds"], key=str) == sorted(private_subnet_refs(t), key=str)

    [group_ref] = props["VpcSecurityGroupIds"]
    group = t["Resources"][group_ref["Fn::GetAtt"][0]]["Properties"]
    cluster_id, _ = only(t, "AWS::EKS::Cluster")
    [ingress] = group["SecurityGroupIngress"]
    ingress.pop("Description", None)
    assert ingress == {
        "FromPort": int(port),
        "ToPort": int(port),
        "IpProtocol": "tcp",
        "SourceSecurityGroupId": {"Fn::GetAtt": [cluster_id, "ClusterSecurityGroupId"]},
    }
    assert resources(t, "AWS::EC2::SecurityGroupIngress") == {}

    _, record = only(t, "AWS::Route53::RecordSet")
    assert record["Properties"]["Name"] == f"{host}."
    assert record["Properties"]["Type"] == "CNAME"
    assert record["Properties"]["ResourceRecords"] == [
        {"Fn::GetAtt": [cache_id, "ConfigurationEndpoint.Address"]}
    ]
    zone = t["Resources"][record["Properties"]["HostedZoneId"]["Ref"]]["Properties"]
    assert zone["Name"] == host.partition(".")[2] + "."
    assert zone["VPCs"], "the zone must be private to the VPC"


def test_one_image_repository_for_all_stages_immutable_scanned_encrypted_pruned() -> None:
    for stage in STAGES:
        assert resources(template(stage), "AWS::ECR::Repository") == {}
    images = Assertions.from_json(template("images"))
    images.resource_count_is("AWS::ECR::Repository", 1)
    images.has_resource_properties(
        "AWS::ECR::Repository",
        {
            "RepositoryName": "stockday",
            "ImageTagMutability": "IMMUTABLE",
            "ImageScanningConfiguration": {"ScanOnPush": True},
            "EncryptionConfiguration": {"EncryptionType": "KMS"},
            "LifecyclePolicy": {
                "LifecyclePolicyText": Match.string_like_regexp("imageCountMoreThan")
            },
        },
    )


def test_image_publisher_may_push_to_the_repository_only() -> None:
    t = template("images")
    repository_id, _ = only(t, "AWS::ECR::Repository")
    _, policy = only(t, "AWS::IAM::ManagedPolicy")
    grants = {
        (action, json.dumps(resource))
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        for action in as_list(statement["Action"])
        for resource in as_list(statement["Resource"])
    }
    repository = json.dumps({"Fn::GetAtt": [repository_id, "Arn"]})
    push = {
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:CompleteLayerUpload",
        "ecr:GetDownloadUrlForLayer",
        "ecr:InitiateLayerUpload",
        "ecr:PutImage",
        "ecr:UploadLayerPart",
    }
    # GetAuthorizationToken names no resource: the one "*" AWS requires.
    assert grants == {("ecr:GetAuthorizationToken", '"*"')} | {(a, repository) for a in push}


# --- the contract with the services' settings ---------------------------------------------

# Settings naming AWS resources; each is an output of the stack.
RESOURCE_SETTINGS = (
    "STOCKDAY_AWS_REGION",
    "STOCKDAY_DYNAMODB_TABLE",
    "STOCKDAY_LOGO_JOBS_QUEUE",
    "STOCKDAY_LOGO_EVENTS_QUEUE",
    "STOCKDAY_S3_BUCKET",
    "STOCKDAY_LOGO_CDN_BASE_URL",
    "STOCKDAY_MEMCACHED_SERVERS",
    "STOCKDAY_OPERATOR_SECRET_NAME",
)
_NAME_PROPERTIES = {
    "AWS::DynamoDB::Table": "TableName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::SQS::Queue": "QueueName",
}


def _resolve(t: Template, value: Any) -> str:
    """An output's value as deployed: a resource's Ref or name attribute is its given name."""
    if isinstance(value, str):
        return value
    if "Ref" in value:
        resource = t["Resources"][value["Ref"]]
        return str(resource["Properties"][_NAME_PROPERTIES[resource["Type"]]])
    if "Fn::GetAtt" in value:
        logical_id, attribute = value["Fn::GetAtt"]
        resource = t["Resources"][logical_id]
        assert attribute == _NAME_PROPERTIES[resource["Type"]], value
        return str(resource["Properties"][attribute])
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(_resolve(t, part) for part in parts)
    raise AssertionError(f"cannot resolve {value}")


@stages
def test_outputs_give_every_resource_setting_as_the_env_file_has_it(stage: str) -> None:
    t = template(stage)
    env = env_file(stage)
    outputs = {
        o["Description"]: _resolve(t, o["Value"])
        for o in t["Outputs"].values()
        if o.get("Description", "").startswith("STOCKDAY_")
    }
    assert outputs == {name: env[name] for name in RESOURCE_SETTINGS}
    assert t["Description"].endswith(f"deploy/k8s/overlays/{stage}/stockday.env")


def test_stage_names_come_from_the_env_file_never_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import_infra()
    from stockday_infra.stages import load_stage

    monkeypatch.setenv("STOCKDAY_DYNAMODB_TABLE", "from-the-shell")
    monkeypatch.setenv("STOCKDAY_QUEUE_MAX_RECEIVES", "99")
    stage = load_stage("staging")
    assert stage.settings.dynamodb_table == env_file("staging")["STOCKDAY_DYNAMODB_TABLE"]
    assert stage.settings.queue_max_receives == Settings.model_fields["queue_max_receives"].default


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("STOCKDAY_MEMCACHED_SERVERS=a.internal:11211,b.internal:11211", "one host:port"),
        ("STOCKDAY_LOGO_CDN_BASE_URL=http://logos.example", "https://<host>"),
        ("STOCKDAY_QUEUE_MAX_RECEIVES=0", "queue_max_receives"),
    ],
)
def test_a_bad_env_file_is_refused_naming_the_file(tmp_path: Path, line: str, error: str) -> None:
    import_infra()
    from stockday_infra.stages import StageError, load_stage

    key = line.partition("=")[0]
    kept = [f"{name}={value}" for name, value in env_file("staging").items() if name != key]
    overlay = tmp_path / "staging"
    overlay.mkdir()
    (overlay / "stockday.env").write_text("\n".join([*kept, line]) + "\n")
    with pytest.raises(StageError, match=re.escape(error)) as raised:
        stage = load_stage("staging", overlays_dir=tmp_path)
        _ = stage.memcached_endpoint, stage.cdn_host
    assert str(overlay / "stockday.env") in str(raised.value)


def test_a_missing_setting_is_refused(tmp_path: Path) -> None:
    import_infra()
    from stockday_infra.stages import StageError, load_stage

    overlay = tmp_path / "production"
    overlay.mkdir()
    (overlay / "stockday.env").write_text("STOCKDAY_BACKEND=aws\n")
    with pytest.raises(StageError, match="missing STOCKDAY_AWS_REGION"):
        load_stage("production", overlays_dir=tmp_path)
