"""The monthly AWS cost of the production deployment: assumptions in, priced line items out.

Pure computation, no I/O. What is provisioned is read by hand from deploy/k8s/overlays/production
(replicas, HPA/KEDA minimums), deploy/k8s/base (resource requests) and deploy/aws (the CDK
stack's production sizing); tests/cli/test_cost.py checks the pod figures against the manifests.
Prices are public us-east-1 on-demand list prices as the author knew them at PRICES_AS_OF,
without free tiers, savings plans or taxes: an estimate to compare designs, not an invoice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

PRICES_AS_OF = "2025-01"
PRICE_SOURCE = "AWS public pricing pages, us-east-1, on-demand list prices, no free tier"
HOURS_PER_MONTH = 730.0  # AWS's own monthly convention
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600
DAYS_PER_MONTH = HOURS_PER_MONTH / 24
GB = 1e9


@dataclass(frozen=True)
class Prices:
    """USD, us-east-1, on-demand, as of PRICES_AS_OF."""

    eks_cluster_hour: float = 0.10  # standard support
    t3_large_hour: float = 0.0832  # first of the node group's types (t3a.large: 0.0752)
    ebs_gp3_gb_month: float = 0.08
    nat_gateway_hour: float = 0.045
    nat_gateway_gb: float = 0.045
    public_ipv4_hour: float = 0.005
    alb_hour: float = 0.0225
    alb_lcu_hour: float = 0.008
    interface_endpoint_az_hour: float = 0.01
    internet_out_gb: float = 0.09
    cache_t4g_small_hour: float = 0.032
    dynamodb_read_unit: float = 0.125 / 1e6  # on-demand, after the November 2024 cut
    dynamodb_write_unit: float = 0.625 / 1e6
    sqs_request: float = 0.40 / 1e6  # standard queue, per 64 KB request
    s3_gb_month: float = 0.023
    s3_put: float = 0.005 / 1000
    s3_get: float = 0.0004 / 1000
    cloudfront_https_request: float = 0.01 / 10_000  # United States
    cloudfront_out_gb: float = 0.085  # first 10 TB, North America/Europe
    cloudwatch_alarm_month: float = 0.10
    cloudwatch_dashboard_month: float = 3.00
    cloudwatch_logs_ingest_gb: float = 0.50
    cloudwatch_logs_store_gb_month: float = 0.03
    vended_logs_to_s3_gb: float = 0.25  # VPC flow logs delivered to S3
    kms_key_month: float = 1.00
    route53_zone_month: float = 0.50
    ecr_gb_month: float = 0.10


PRICES = Prices()


@dataclass(frozen=True)
class Workload:
    """One Deployment of the production overlay: requests per pod, minimum replicas."""

    name: str
    cpu_millis: int
    memory_mib: int
    min_replicas: int


# deploy/k8s/base/workloads/*.yaml requests; deploy/k8s/overlays/production/scaling.yaml minimums.
WORKLOADS = (
    Workload("frontend", 100, 128, 3),
    Workload("stock-symbol", 100, 128, 3),
    Workload("stock-price", 50, 128, 3),
    Workload("logo-resizer", 100, 256, 3),
    Workload("queue-worker", 50, 128, 3),
)
CONSUMERS = ("logo-resizer", "queue-worker")


@dataclass(frozen=True)
class Assumptions:
    """Traffic and sizing; the defaults are the production overlay and CDK stack as written."""

    daily_visitors: float
    page_views_per_visitor: float = 10.0
    uploads_per_visitor: float = 0.1
    cache_hit_ratio: float = 0.95  # page views served from the frontend's page cache
    symbol_calls_per_miss: float = 2.0  # frontend -> stock-symbol calls per uncached page
    reads_per_symbol_call: float = 2.0  # strongly consistent reads of items under 4 KB
    reads_per_upload: float = 4.0
    writes_per_upload: float = 6.0  # transactional writes count twice, plus the logo update
    sqs_requests_per_upload: float = 6.0  # send, receive, delete on each of the two queues
    page_bytes: float = 40_000  # HTML and static files through the ALB
    logos_per_page_view: float = 1.0
    logo_bytes: float = 15_000
    upload_bytes: float = 200_000
    cdn_hit_ratio: float = 0.9  # CloudFront hits; misses are S3 GETs
    logo_months_kept: float = 12.0
    zones: int = 3  # network.ZONES
    nat_gateways: int = 3  # stages.SIZING["production"]
    interface_endpoints: int = 1  # SQS
    eks_control_plane: int = 1
    min_nodes: int = 3
    node_hour_usd: float = PRICES.t3_large_hour
    node_cpu_millis: int = 1930  # t3.large allocatable
    node_memory_mib: int = 7100
    node_disk_gb: float = 40.0
    addon_cpu_millis: int = 1000  # CoreDNS, LB controller, KEDA, CNI and kube-proxy per cluster
    addon_memory_mib: int = 1500
    cache_nodes: int = 3
    cache_node_hour_usd: float = PRICES.cache_t4g_small_hour
    pollers_per_replica: int = 1
    queue_wait_seconds: float = 2.0  # Settings default; production's env does not set it
    keda_polling_seconds: float = 15.0
    nat_gb: float = 5.0  # market data API, image pulls
    control_plane_log_gb: float = 10.0  # api, audit, authenticator, controllerManager, scheduler
    log_retention_months: float = 12.0
    flow_log_gb: float = 3.0
    alarms: int = 8
    dashboards: int = 1
    kms_keys: int = 2
    hosted_zones: int = 1
    image_gb: float = 2.0

    def problems(self) -> list[str]:
        """What is wrong with these assumptions, one sentence each; empty when valid."""
        found = [
            f"{f.name.replace('_', '-')} must be zero or more, got {getattr(self, f.name)}"
            for f in fields(self)
            if getattr(self, f.name) < 0
        ]
        for name in ("cache_hit_ratio", "cdn_hit_ratio"):
            if not 0 <= getattr(self, name) <= 1:
                found.append(f"{name.replace('_', '-')} must be between 0 and 1")
        for name in ("queue_wait_seconds", "keda_polling_seconds", "node_cpu_millis"):
            if getattr(self, name) <= 0:
                found.append(f"{name.replace('_', '-')} must be more than zero")
        return found


@dataclass(frozen=True)
class LineItem:
    """One priced line: ``quantity`` ``unit``s a month at ``unit_price`` USD each."""

    name: str
    quantity: float
    unit: str
    unit_price: float
    fixed: bool  # True when it does not depend on traffic

    @property
    def monthly(self) -> float:
        return self.quantity * self.unit_price


@dataclass(frozen=True)
class Traffic:
    """Monthly volumes derived from the visitors."""

    page_views: float
    uploads: float
    symbol_calls: float
    logo_views: float


def traffic(a: Assumptions) -> Traffic:
    page_views = a.daily_visitors * a.page_views_per_visitor * DAYS_PER_MONTH
    return Traffic(
        page_views=page_views,
        uploads=a.daily_visitors * a.uploads_per_visitor * DAYS_PER_MONTH,
        symbol_calls=page_views * (1 - a.cache_hit_ratio) * a.symbol_calls_per_miss,
        logo_views=page_views * a.logos_per_page_view,
    )


def node_count(a: Assumptions) -> int:
    """Nodes for the pods' requests at minimum replicas; one a zone at least, and the min."""
    cpu = sum(w.cpu_millis * w.min_replicas for w in WORKLOADS) + a.addon_cpu_millis
    memory = sum(w.memory_mib * w.min_replicas for w in WORKLOADS) + a.addon_memory_mib
    by_requests = max(math.ceil(cpu / a.node_cpu_millis), math.ceil(memory / a.node_memory_mib))
    return max(a.min_nodes, a.zones, by_requests)


def _fixed(name: str, quantity: float, unit: str, unit_price: float) -> LineItem:
    return LineItem(name, quantity, unit, unit_price, fixed=True)


def _usage(name: str, quantity: float, unit: str, unit_price: float) -> LineItem:
    return LineItem(name, quantity, unit, unit_price, fixed=False)


def _fixed_lines(a: Assumptions, p: Prices) -> list[LineItem]:
    h = HOURS_PER_MONTH
    nodes = node_count(a)
    return [
        _fixed("EKS control plane", a.eks_control_plane * h, "cluster-hour", p.eks_cluster_hour),
        _fixed("EC2 nodes", nodes * h, "node-hour", a.node_hour_usd),
        _fixed("EBS node volumes (gp3)", nodes * a.node_disk_gb, "GB-month", p.ebs_gp3_gb_month),
        _fixed("NAT gateways", a.nat_gateways * h, "gateway-hour", p.nat_gateway_hour),
        _fixed(
            "Public IPv4 (NAT, ALB)",
            (a.nat_gateways + a.zones) * h,
            "address-hour",
            p.public_ipv4_hour,
        ),
        _fixed("ALB hours", h, "ALB-hour", p.alb_hour),
        _fixed(
            "VPC interface endpoints",
            a.interface_endpoints * a.zones * h,
            "endpoint-AZ-hour",
            p.interface_endpoint_az_hour,
        ),
        _fixed(
            "ElastiCache memcached nodes", a.cache_nodes * h, "node-hour", a.cache_node_hour_usd
        ),
        _fixed("CloudWatch alarms", a.alarms, "alarm-month", p.cloudwatch_alarm_month),
        _fixed(
            "CloudWatch dashboard", a.dashboards, "dashboard-month", p.cloudwatch_dashboard_month
        ),
        _fixed(
            "CloudWatch Logs ingestion (EKS control plane)",
            a.control_plane_log_gb,
            "GB",
            p.cloudwatch_logs_ingest_gb,
        ),
        _fixed(
            "CloudWatch Logs storage (at full retention)",
            a.control_plane_log_gb * a.log_retention_months,
            "GB-month",
            p.cloudwatch_logs_store_gb_month,
        ),
        _fixed("VPC flow logs to S3", a.flow_log_gb, "GB", p.vended_logs_to_s3_gb),
        _fixed("KMS keys", a.kms_keys, "key-month", p.kms_key_month),
        _fixed("Route 53 private zone", a.hosted_zones, "zone-month", p.route53_zone_month),
        _fixed("ECR image storage", a.image_gb, "GB-month", p.ecr_gb_month),
    ]


def sqs_requests(a: Assumptions, t: Traffic) -> float:
    """Message requests, idle long polls of every consumer replica, and KEDA's depth checks."""
    replicas = sum(w.min_replicas for w in WORKLOADS if w.name in CONSUMERS)
    idle_polls = replicas * a.pollers_per_replica * SECONDS_PER_MONTH / a.queue_wait_seconds
    keda = len(CONSUMERS) * SECONDS_PER_MONTH / a.keda_polling_seconds
    return t.uploads * a.sqs_requests_per_upload + idle_polls + keda


def _usage_lines(a: Assumptions, p: Prices) -> list[LineItem]:
    t = traffic(a)
    page_gb = t.page_views * a.page_bytes / GB
    lcu = max(t.page_views / SECONDS_PER_MONTH / 25, page_gb / HOURS_PER_MONTH)
    reads = t.symbol_calls * a.reads_per_symbol_call + t.uploads * a.reads_per_upload
    misses = t.logo_views * (1 - a.cdn_hit_ratio)
    stored_gb = t.uploads * a.logo_bytes * a.logo_months_kept / GB
    return [
        _usage("ALB LCUs", lcu * HOURS_PER_MONTH, "LCU-hour", p.alb_lcu_hour),
        _usage("Data out to the internet (pages)", page_gb, "GB", p.internet_out_gb),
        _usage("NAT data processed", a.nat_gb, "GB", p.nat_gateway_gb),
        _usage("DynamoDB reads (on-demand)", reads, "read unit", p.dynamodb_read_unit),
        _usage(
            "DynamoDB writes (on-demand)",
            t.uploads * a.writes_per_upload,
            "write unit",
            p.dynamodb_write_unit,
        ),
        _usage(
            "SQS requests (incl. idle long polls)", sqs_requests(a, t), "request", p.sqs_request
        ),
        _usage("S3 PUT (uploads, logos)", t.uploads * 2, "request", p.s3_put),
        _usage("S3 GET (resizer, CDN misses)", t.uploads + misses, "request", p.s3_get),
        _usage("S3 storage (logos kept)", stored_gb, "GB-month", p.s3_gb_month),
        _usage("CloudFront HTTPS requests", t.logo_views, "request", p.cloudfront_https_request),
        _usage("CloudFront data out", t.logo_views * a.logo_bytes / GB, "GB", p.cloudfront_out_gb),
    ]


def line_items(a: Assumptions, p: Prices = PRICES) -> list[LineItem]:
    """Every priced line of a month; raises ValueError when the assumptions are invalid."""
    problems = a.problems()
    if problems:
        raise ValueError("; ".join(problems))
    return _fixed_lines(a, p) + _usage_lines(a, p)


def total(items: list[LineItem]) -> float:
    return sum(item.monthly for item in items)


ASSUMPTION_NAMES = tuple(f.name for f in fields(Assumptions))
