"""The image registry: one ECR repository for the one image, built once and promoted through
the stages, so it lives in a stack of its own rather than in a stage's."""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Environment, RemovalPolicy, Stack, Tags
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from constructs import Construct

STACK_NAME = "StockdayImages"
REPOSITORY_NAME = "stockday"
# Enough for rollbacks and for a release to reach production weeks after staging.
IMAGES_KEPT = 200
PUSH_ACTIONS = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:CompleteLayerUpload",
    "ecr:GetDownloadUrlForLayer",
    "ecr:InitiateLayerUpload",
    "ecr:PutImage",
    "ecr:UploadLayerPart",
)


class ImagesStack(Stack):
    def __init__(self, scope: Construct, *, account: str | None, region: str) -> None:
        super().__init__(
            scope,
            STACK_NAME,
            env=Environment(account=account, region=region),
            description="Stock-of-the-Day image registry, shared by every stage",
            termination_protection=True,
        )
        Tags.of(self).add("project", "stockday")
        self.repository = ecr.Repository(
            self,
            "Images",
            repository_name=REPOSITORY_NAME,
            # A tag names one build for ever: promotion deploys the same image again.
            image_tag_mutability=ecr.TagMutability.IMMUTABLE,
            image_scan_on_push=True,
            encryption=ecr.RepositoryEncryption.KMS,
            removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[
                ecr.LifecycleRule(
                    description="Drop untagged layers of failed pushes",
                    tag_status=ecr.TagStatus.UNTAGGED,
                    max_image_age=Duration.days(7),
                    rule_priority=1,
                ),
                ecr.LifecycleRule(
                    description="Keep the most recent images (rollback and promotion)",
                    tag_status=ecr.TagStatus.ANY,
                    max_image_count=IMAGES_KEPT,
                    rule_priority=2,
                ),
            ],
        )
        publisher = iam.ManagedPolicy(
            self,
            "Publisher",
            description="Push the stockday image: attach to the pipeline's publish role",
            statements=[
                # Registry log-in has no resource to name: AWS requires "*" for this action.
                iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]),
                iam.PolicyStatement(
                    actions=list(PUSH_ACTIONS), resources=[self.repository.repository_arn]
                ),
            ],
        )
        CfnOutput(
            self,
            "ImageRepositoryUri",
            description="ECR repository of the one stockday image (REGISTRY/stockday)",
            value=self.repository.repository_uri,
        )
        CfnOutput(
            self,
            "PublisherPolicyArn",
            description="Attach to the role that pushes images (AWS_PUBLISH_ROLE_ARN)",
            value=publisher.managed_policy_arn,
        )
