"""The logo CDN: CloudFront in front of the bucket's ``logos/`` prefix, through an origin access
control, under the host name of STOCKDAY_LOGO_CDN_BASE_URL."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stockday_infra.checkov import skip_checks
from stockday_infra.storage import CDN_LOGS_PREFIX, LOGOS_PREFIX


class LogoCdn(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        host: str,
        certificate_arn: str,
        bucket: s3.Bucket,
        log_bucket: s3.IBucket,
    ) -> None:
        super().__init__(scope, construct_id)
        access_control = cloudfront.S3OriginAccessControl(
            self, "OriginAccess", signing=cloudfront.Signing.SIGV4_ALWAYS
        )
        headers = cloudfront.ResponseHeadersPolicy(
            self,
            "SecurityHeaders",
            comment=f"Security headers of {host}",
            security_headers_behavior=cloudfront.ResponseSecurityHeadersBehavior(
                strict_transport_security=cloudfront.ResponseHeadersStrictTransportSecurity(
                    access_control_max_age=Duration.days(730),
                    include_subdomains=True,
                    override=True,
                ),
                content_type_options=cloudfront.ResponseHeadersContentTypeOptions(override=True),
                frame_options=cloudfront.ResponseHeadersFrameOptions(
                    frame_option=cloudfront.HeadersFrameOption.DENY, override=True
                ),
                referrer_policy=cloudfront.ResponseHeadersReferrerPolicy(
                    referrer_policy=cloudfront.HeadersReferrerPolicy.NO_REFERRER, override=True
                ),
                # Images only: nothing on this host may run script or be framed.
                content_security_policy=cloudfront.ResponseHeadersContentSecurityPolicy(
                    content_security_policy="default-src 'none'; frame-ancestors 'none'",
                    override=True,
                ),
                xss_protection=cloudfront.ResponseHeadersXSSProtection(
                    protection=False, override=True
                ),
            ),
            custom_headers_behavior=cloudfront.ResponseCustomHeadersBehavior(
                custom_headers=[
                    # The site embeds logos from this other origin.
                    cloudfront.ResponseCustomHeader(
                        header="Cross-Origin-Resource-Policy", value="cross-origin", override=True
                    )
                ]
            ),
        )
        self.distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment=f"Stock logos ({host})",
            # The bucket's default origin settings; the origin access control is attached
            # below, so that the bucket policy can be written for logos/* alone (CDK's OAC
            # origin grants the whole bucket).
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_bucket_defaults(bucket),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
                cached_methods=cloudfront.CachedMethods.CACHE_GET_HEAD,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
                response_headers_policy=headers,
                compress=True,
            ),
            domain_names=[host],
            certificate=acm.Certificate.from_certificate_arn(self, "Certificate", certificate_arn),
            minimum_protocol_version=cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021,
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
            enable_logging=True,
            log_bucket=log_bucket,
            log_file_prefix=f"{CDN_LOGS_PREFIX}{host}/",
        )
        distribution = self.distribution.node.default_child
        assert isinstance(distribution, cloudfront.CfnDistribution)
        distribution.add_property_override(
            "DistributionConfig.Origins.0.OriginAccessControlId",
            access_control.origin_access_control_id,
        )
        bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CdnReadsLogos",
                principals=[iam.ServicePrincipal("cloudfront.amazonaws.com")],
                actions=["s3:GetObject"],
                resources=[bucket.arn_for_objects(f"{LOGOS_PREFIX}*")],
                conditions={"StringEquals": {"AWS:SourceArn": self.distribution.distribution_arn}},
            )
        )
        skip_checks(
            self.distribution,
            {
                "CKV_AWS_68": "Serves immutable public logos from S3, read-only (GET/HEAD): a "
                "WAF has no request body or query to inspect here.",
            },
        )
        self.domain_name = self.distribution.distribution_domain_name
