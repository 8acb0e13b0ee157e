"""The contract between the services, the infrastructure and the manifests.

Every table, queue and bucket the services name through their settings exists, under the
stage's name, in the synthesized template and in the stage's ConfigMap; every setting an AWS
deployment needs is in the ConfigMap and in the template's outputs; and the probe paths and
ports of the manifests are the ones the services serve, started as their containers start them.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from stockday.runtime import catalog
from stockday.runtime.container import DEFAULT_PORT
from stockday.runtime.settings import Settings
from tests.deploy.cdk_support import Template, import_infra, resources, synthesized
from tests.deploy.overlays import env_file, render
from tests.support.ports import free_port
from tests.support.servers import container_service, local_service_env

STAGES = ("staging", "production")

# The settings that name AWS resources, found by what they are called, so that a new one
# (another queue, say) fails here until the template and the ConfigMaps have it too.
RESOURCE_KINDS = {
    "_table": ("AWS::DynamoDB::Table", "TableName"),
    "_queue": ("AWS::SQS::Queue", "QueueName"),
    "_bucket": ("AWS::S3::Bucket", "BucketName"),
}
RESOURCE_SETTINGS = sorted(
    name for name in Settings.model_fields if name.endswith(tuple(RESOURCE_KINDS))
)
# What an AWS deployment must set besides those; the rest has working defaults.
DEPLOYMENT_SETTINGS = [
    "backend",
    "aws_region",
    "memcached_servers",
    "logo_cdn_base_url",
    "symbol_url",
    "price_url",
    *RESOURCE_SETTINGS,
]


def variable(setting: str) -> str:
    return f"STOCKDAY_{setting.upper()}"


def test_the_resource_settings_are_the_expected_ones() -> None:
    # A guard on the discovery above: these four are what the services read today.
    assert RESOURCE_SETTINGS == [
        "dynamodb_table",
        "logo_events_queue",
        "logo_jobs_queue",
        "s3_bucket",
    ]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {
        overlay: [doc for doc in yaml.safe_load_all(render(overlay)) if doc]
        for overlay in (*STAGES, "production-canary")
    }


def config_map(documents: list[dict[str, Any]]) -> dict[str, str]:
    [found] = [d for d in documents if d["kind"] == "ConfigMap"]
    data: dict[str, str] = found["data"]
    return data


def names_in(template: Template, kind: str, prop: str) -> set[str]:
    return {r["Properties"].get(prop) for r in resources(template, kind).values()}


@pytest.mark.parametrize("stage", STAGES)
def test_every_resource_setting_names_a_resource_of_the_template_and_the_configmap(
    stage: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    template = synthesized()[stage]
    configmap = config_map(rendered[stage])
    for setting in RESOURCE_SETTINGS:
        kind, prop = next(v for suffix, v in RESOURCE_KINDS.items() if setting.endswith(suffix))
        name = configmap[variable(setting)]
        assert name == env_file(stage)[variable(setting)]
        assert name in names_in(template, kind, prop), (setting, name)
        if kind == "AWS::SQS::Queue":
            # The services look their dead letters up by this name (stockday.queues.sqs).
            assert f"{name}-dlq" in names_in(template, kind, prop)


def resolve(value: Any, template: Template) -> str:
    """An output's value: a literal, a Ref to a named resource, or a join of those."""
    if isinstance(value, str):
        return value
    if "Ref" in value:
        if value["Ref"] == "AWS::Region":
            return "<region>"
        resource = template["Resources"][value["Ref"]]
        for prop in ("TableName", "QueueName", "BucketName"):
            if prop in resource["Properties"]:
                return str(resource["Properties"][prop])
        return f"<{value['Ref']}>"
    if "Fn::GetAtt" in value:
        logical_id, attribute = value["Fn::GetAtt"]
        resource = template["Resources"][logical_id]
        if attribute == "QueueName":
            return str(resource["Properties"]["QueueName"])
        return f"<{logical_id}.{attribute}>"
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(resolve(part, template) for part in parts)
    return str(value)


@pytest.mark.parametrize("stage", STAGES)
def test_template_outputs_give_every_deployment_setting(
    stage: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    template = synthesized()[stage]
    configmap = config_map(rendered[stage])
    by_setting = {
        output["Description"].split()[0]: output["Value"]
        for output in template["Outputs"].values()
        if output.get("Description", "").startswith("STOCKDAY_")
    }
    for setting in DEPLOYMENT_SETTINGS:
        assert variable(setting) in configmap, f"{variable(setting)} missing from the ConfigMap"
    aws_settings = [
        s for s in DEPLOYMENT_SETTINGS if s not in ("backend", "symbol_url", "price_url")
    ]
    for setting in aws_settings:
        assert variable(setting) in by_setting, f"no output for {variable(setting)}"
        value = resolve(by_setting[variable(setting)], template)
        assert value == configmap[variable(setting)], setting
    assert configmap["STOCKDAY_BACKEND"] == "aws"


@pytest.mark.parametrize("stage", STAGES)
def test_service_urls_name_the_services_and_their_ports(
    stage: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    configmap = config_map(rendered[stage])
    services = {d["metadata"]["name"]: d for d in rendered[stage] if d["kind"] == "Service"}
    for setting, service in (("symbol_url", "stock-symbol"), ("price_url", "stock-price")):
        url = httpx.URL(configmap[variable(setting)])
        assert url.host == service
        [port] = services[service]["spec"]["ports"]
        assert port["port"] == (url.port or 80)
        assert port["targetPort"] in (DEFAULT_PORT, "http")


def deployments(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in documents if d["kind"] == "Deployment"}


def probe_paths(container: dict[str, Any]) -> dict[str, tuple[str, int | str]]:
    return {
        kind: (container[kind]["httpGet"]["path"], container[kind]["httpGet"]["port"])
        for kind in ("startupProbe", "livenessProbe", "readinessProbe")
        if kind in container
    }


@pytest.mark.parametrize("overlay", [*STAGES, "production-canary"])
def test_manifests_probe_and_scrape_the_port_the_entry_point_listens_on(
    overlay: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    ingress = next(d for d in rendered[overlay] if d["kind"] == "Ingress")
    assert ingress["metadata"]["annotations"]["alb.ingress.kubernetes.io/healthcheck-path"] == (
        catalog.service("frontend").health.readiness
    )
    for name, deployment in deployments(rendered[overlay]).items():
        pod = deployment["spec"]["template"]
        [container] = pod["spec"]["containers"]
        ports = {p.get("name"): p["containerPort"] for p in container["ports"]}
        assert set(ports.values()) == {DEFAULT_PORT}, name
        for path, port in probe_paths(container).values():
            assert ports.get(port, port) == DEFAULT_PORT, (name, path, port)
        annotations = pod["metadata"].get("annotations", {})
        assert annotations.get("prometheus.io/port") == str(DEFAULT_PORT), name
        health = catalog.service(name.removesuffix("-canary")).health
        assert annotations.get("prometheus.io/path") == health.metrics, name
        assert "PORT" not in {e["name"] for e in container.get("env", [])}, name


def test_every_probe_path_is_served_by_its_service(
    rendered: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """Each service started with its manifest's args answers its manifest's probe paths."""
    symbol_port = free_port()
    env = local_service_env(tmp_path / "data")
    env["STOCKDAY_SYMBOL_URL"] = f"http://127.0.0.1:{symbol_port}"
    stable = deployments(rendered["production"])
    # Called services first: each one's readiness needs those it calls.
    order = [service.name for service in reversed(catalog.SERVICES)]
    assert sorted(order) == sorted(stable)
    with_ports = {name: symbol_port if name == "stock-symbol" else free_port() for name in order}
    with ExitStack() as running:
        for name in order:
            [container] = stable[name]["spec"]["template"]["spec"]["containers"]
            log = tmp_path / f"{name}.log"
            running.enter_context(
                container_service(sys.executable, container["args"], with_ports[name], env, log)
            )
            base = f"http://127.0.0.1:{with_ports[name]}"
            health = catalog.service(name).health
            paths = {path for path, _ in probe_paths(container).values()} | {health.metrics}
            assert {health.liveness, health.readiness} <= paths
            for path in sorted(paths):
                response = httpx.get(base + path, timeout=10)
                # Served: ping and metrics answer 200, readiness 200 with every dependency up
                # (stock-symbol runs before the services that call it).
                assert response.status_code == 200, (name, path, response.text)


@pytest.mark.parametrize("stage", STAGES)
def test_the_frontend_believes_forwarded_headers_from_its_vpc_only(stage: str) -> None:
    # The ALB ends TLS and reaches the frontend pods (target type ip) from its nodes' addresses
    # inside the stage's VPC: its X-Forwarded-Proto says https, which the CSRF origin check
    # needs. Peers outside the VPC are not believed.
    sizing = import_infra().stages.SIZING[stage]
    assert env_file(stage)[variable("trusted_proxies")] == sizing.vpc_cidr
