"""The Kubernetes manifests (deploy/k8s), checked offline.

Every overlay is rendered once with `kubectl kustomize`, validated against the Kubernetes API
schemas (kubernetes-validate, strict) and KEDA's documented fields, scanned with checkov, and
held to what the design relies on: probes, security, spread, budgets, autoscaling, settings
from the stage's env file, network policies that allow exactly the calls the services make,
and the canary's 70/30 split.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from stockday.runtime import catalog
from stockday.runtime.settings import Settings, variable_name
from tests.deploy.overlays import env_file, render

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES_VERSION = "1.35"  # the EKS clusters (deploy/aws)

STAGES = {"staging": 2, "production": 3}  # stage -> pods per service
OVERLAYS = {"staging": "staging", "production": "production", "production-canary": "production"}
SERVICES = catalog.SERVICE_NAMES
HTTP_SERVICES = tuple(service.name for service in catalog.HTTP_SERVICES)
CONSUMER_QUEUES = {
    service.name: variable_name(queue)
    for service in catalog.CONSUMERS
    for queue in service.consumes
}
HOSTS = {"staging": "staging.stockday.example", "production": "stockday.example"}
PORT = 8080

# The only service-to-service calls (on the pods' port 8080) the policies may allow.
CALLS = {
    ("frontend", "stock-symbol"),
    ("stock-symbol", "stock-price"),
    ("queue-worker", "stock-symbol"),
}
# Checks skipped on purpose, with the resources they may be skipped on (reasons in the
# annotations, see test_checkov_skips_carry_reasons).
ALLOWED_SKIPS = {
    "CKV_K8S_43": re.compile(r"Deployment\.[\w-]+\.[\w-]+"),
    "CKV_K8S_35": re.compile(r"Deployment\.[\w-]+\.stock-price(-canary)?"),
}

Manifest = dict[str, Any]


def stage_settings(stage: str) -> Settings:
    """The settings a pod of this stage gets: its env file, nothing else."""
    env = env_file(stage)
    fields = {name.removeprefix("STOCKDAY_").lower(): value for name, value in env.items()}
    assert set(fields) <= set(Settings.model_fields), "unknown STOCKDAY_* key"
    return Settings(**fields)


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    return {overlay: render(overlay) for overlay in OVERLAYS}


@pytest.fixture(scope="module")
def manifests(rendered: dict[str, str]) -> dict[str, list[Manifest]]:
    return {
        overlay: [doc for doc in yaml.safe_load_all(text) if doc]
        for overlay, text in rendered.items()
    }


def objects(docs: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def container(deployment: Manifest) -> Manifest:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


ALL = list(OVERLAYS)
STAGE_OVERLAYS = list(STAGES)


# --- Rendering and schemas ---------------------------------------------------------------


@pytest.mark.parametrize("overlay", ALL)
def test_overlay_renders_every_service_into_its_namespace(
    manifests: dict[str, list[Manifest]], overlay: str
) -> None:
    docs = manifests[overlay]
    namespace = f"stockday-{OVERLAYS[overlay]}"
    assert set(objects(docs, "Namespace")) == {namespace}
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == namespace, doc["metadata"]["name"]
    assert set(SERVICES) <= set(objects(docs, "Deployment"))
    assert set(objects(docs, "ServiceAccount")) == set(SERVICES)


@pytest.mark.parametrize("overlay", ALL)
def test_overlay_validates_against_the_kubernetes_schemas(
    manifests: dict[str, list[Manifest]], overlay: str
) -> None:
    errors = []
    for doc in manifests[overlay]:
        if doc["apiVersion"].startswith("keda.sh/"):
            continue  # CRDs: test_keda_objects_match_keda_documented_fields
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # the operator's CRD: tests/deploy/test_slo_rules.py
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(part) for part in error.path)
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {path}: {error.message}")
    assert not errors, "\n".join(errors)


def test_schema_validation_rejects_unknown_fields(manifests: dict[str, list[Manifest]]) -> None:
    deployment = copy.deepcopy(objects(manifests["staging"], "Deployment")["frontend"])
    container(deployment)["livenesProbe"] = container(deployment)["livenessProbe"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


# KEDA's CRDs are not in kubernetes-validate; these schemas hold the fields KEDA documents
# (ScaledObject spec, aws-sqs-queue trigger, TriggerAuthentication pod identity) and reject
# any other, as the strict Kubernetes schemas do.
_STRING = {"type": "string", "minLength": 1}
_METADATA = {
    "type": "object",
    "required": ["name", "namespace"],
    "properties": {"name": _STRING, "namespace": _STRING},
}


def _closed_object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    """An object schema that rejects any property but these; further keywords go on with `|`."""
    schema: dict[str, Any] = {"type": "object", "additionalProperties": False}
    if required is not None:
        schema["required"] = required
    return schema | {"properties": properties}


def _keda_schema(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    """The schema of a whole KEDA object of this kind: its metadata and this spec."""
    return _closed_object(
        {
            "apiVersion": {"const": "keda.sh/v1alpha1"},
            "kind": {"const": kind},
            "metadata": _METADATA,
            "spec": spec,
        },
        required=["apiVersion", "kind", "metadata", "spec"],
    )


_AWS_SQS_METADATA = _closed_object(
    {
        "queueURL": _STRING,
        "queueURLFromEnv": _STRING,
        "queueLength": {"type": "string", "pattern": "^[1-9][0-9]*$"},
        "activationQueueLength": {"type": "string", "pattern": "^[0-9]+$"},
        "awsRegion": {"type": "string", "pattern": "^[a-z]{2}(-[a-z]+)+-[0-9]$"},
        "awsEndpoint": {"type": "string"},
        "scaleOnInFlight": {"enum": ["true", "false"]},
        "scaleOnDelayed": {"enum": ["true", "false"]},
        "identityOwner": {"enum": ["pod", "operator"]},
    },
    required=["awsRegion"],
) | {"oneOf": [{"required": ["queueURL"]}, {"required": ["queueURLFromEnv"]}]}
_TRIGGER = _closed_object(
    {
        "type": _STRING,
        "name": _STRING,
        "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
        "useCachedMetrics": {"type": "boolean"},
        "authenticationRef": _closed_object(
            {
                "name": _STRING,
                "kind": {"enum": ["TriggerAuthentication", "ClusterTriggerAuthentication"]},
            },
            required=["name"],
        ),
        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    required=["type", "metadata"],
) | {
    "if": {"properties": {"type": {"const": "aws-sqs-queue"}}},
    "then": {"properties": {"metadata": _AWS_SQS_METADATA}},
}
SCALED_OBJECT_SCHEMA = _keda_schema(
    "ScaledObject",
    _closed_object(
        {
            "scaleTargetRef": _closed_object(
                {
                    "apiVersion": _STRING,
                    "kind": _STRING,
                    "name": _STRING,
                    "envSourceContainerName": _STRING,
                },
                required=["name"],
            ),
            "pollingInterval": {"type": "integer", "minimum": 1},
            "cooldownPeriod": {"type": "integer", "minimum": 0},
            "initialCooldownPeriod": {"type": "integer", "minimum": 0},
            "idleReplicaCount": {"type": "integer", "minimum": 0},
            "minReplicaCount": {"type": "integer", "minimum": 0},
            "maxReplicaCount": {"type": "integer", "minimum": 1},
            "fallback": _closed_object(
                {
                    "failureThreshold": {"type": "integer", "minimum": 1},
                    "replicas": {"type": "integer", "minimum": 0},
                    "behavior": _STRING,
                },
                required=["failureThreshold", "replicas"],
            ),
            "advanced": _closed_object(
                {
                    "restoreToOriginalReplicaCount": {"type": "boolean"},
                    "horizontalPodAutoscalerConfig": _closed_object(
                        {"name": _STRING, "behavior": {"type": "object"}}
                    ),
                    "scalingModifiers": {"type": "object"},
                }
            ),
            "triggers": {"type": "array", "minItems": 1, "items": _TRIGGER},
        },
        required=["scaleTargetRef", "triggers"],
    ),
)
TRIGGER_AUTHENTICATION_SCHEMA = _keda_schema(
    "TriggerAuthentication",
    _closed_object(
        {
            "podIdentity": _closed_object(
                {
                    "provider": {"enum": ["none", "aws", "aws-eks", "azure-workload", "gcp"]},
                    "roleArn": _STRING,
                    "identityOwner": {"enum": ["keda", "workload"]},
                    "identityId": _STRING,
                },
                required=["provider"],
            )
            # KEDA: roleArn and identityOwner are mutually exclusive.
            | {"not": {"required": ["roleArn", "identityOwner"]}},
            "secretTargetRef": {"type": "array"},
            "env": {"type": "array"},
            "configMapTargetRef": {"type": "array"},
        }
    )
    | {"minProperties": 1},
)
KEDA_SCHEMAS = {
    "ScaledObject": SCALED_OBJECT_SCHEMA,
    "TriggerAuthentication": TRIGGER_AUTHENTICATION_SCHEMA,
}


@pytest.mark.parametrize("overlay", ALL)
def test_keda_objects_match_keda_documented_fields(
    manifests: dict[str, list[Manifest]], overlay: str
) -> None:
    keda = [doc for doc in manifests[overlay] if doc["apiVersion"].startswith("keda.sh/")]
    assert {doc["kind"] for doc in keda} == set(KEDA_SCHEMAS)
    for doc in keda:
        jsonschema.validate(doc, KEDA_SCHEMAS[doc["kind"]])


def test_keda_schema_rejects_a_misspelt_trigger_field(
    manifests: dict[str, list[Manifest]],
) -> None:
    scaled = copy.deepcopy(objects(manifests["staging"], "ScaledObject")["logo-resizer"])
    scaled["spec"]["triggers"][0]["metadata"]["queueUrl"] = "oops"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, SCALED_OBJECT_SCHEMA)


# --- checkov -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkov_reports(rendered: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("rendered")
    for overlay, text in rendered.items():
        (folder / f"{overlay}.yaml").write_text(text)
    uv = os.environ.get("UV") or shutil.which("uv") or str(Path.home() / ".local/bin/uv")
    result = subprocess.run(
        [
            *(uv, "run", "--frozen", "--quiet", "--project", str(ROOT / "deploy" / "tools")),
            *("checkov", "--directory", str(folder), "--framework", "kubernetes"),
            *("--skip-download", "--output", "json"),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.stdout.strip(), f"checkov printed no report (make deploy-tools?)\n{result.stderr}"
    reports = json.loads(result.stdout)
    return reports if isinstance(reports, list) else [reports]


def test_checkov_passes_on_every_overlay(checkov_reports: Any) -> None:
    (report,) = checkov_reports
    assert report["check_type"] == "kubernetes"
    summary = report["summary"]
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 0
    failed = [
        f"{check['check_id']} {check['resource']} ({check['file_path']})"
        for check in report["results"]["failed_checks"]
    ]
    assert not failed, "\n".join(failed)
    scanned = {check["file_path"].lstrip("/") for check in report["results"]["passed_checks"]}
    assert scanned == {f"{overlay}.yaml" for overlay in OVERLAYS}


def test_checkov_skips_only_the_justified_checks(checkov_reports: Any) -> None:
    (report,) = checkov_reports
    for check in report["results"]["skipped_checks"]:
        allowed = ALLOWED_SKIPS.get(check["check_id"])
        assert allowed and allowed.fullmatch(check["resource"]), check["check_id"]


@pytest.mark.parametrize("overlay", ALL)
def test_checkov_skips_carry_reasons(manifests: dict[str, list[Manifest]], overlay: str) -> None:
    for doc in manifests[overlay]:
        for key, value in doc["metadata"].get("annotations", {}).items():
            if key.startswith("checkov.io/skip"):
                check, _, reason = value.partition("=")
                assert check in ALLOWED_SKIPS, value
                assert len(reason.split()) >= 5, f"{key} needs a one-line reason: {value}"


# --- Workloads ---------------------------------------------------------------------------


def resolve_port(container_spec: Manifest, port: int | str) -> int:
    if isinstance(port, int):
        return port
    (match,) = [p for p in container_spec["ports"] if p["name"] == port]
    return int(match["containerPort"])


@pytest.mark.parametrize("overlay", ALL)
def test_every_deployment_probes_ping_and_ready_on_8080(
    manifests: dict[str, list[Manifest]], overlay: str
) -> None:
    for name, deployment in objects(manifests[overlay], "Deployment").items():
        spec = container(deployment)
        assert [(p["containerPort"], p.get("protocol")) for p in spec["ports"]] == [(PORT, "TCP")]
        probes = {
            kind: (spec[kind]["httpGet"]["path"], resolve_port(spec, spec[kind]["httpGet"]["port"]))
            for kind in ("startupProbe", "livenessProbe", "readinessProbe")
        }
        assert probes == {
            "startupProbe": ("/api/ping", PORT),
            "livenessProbe": ("/api/ping", PORT),
            "readinessProbe": ("/api/ready", PORT),
        }, name
        # /api/ready may take up to readiness_timeout_seconds to answer.
        timeout = stage_settings(OVERLAYS[overlay]).readiness_timeout_seconds
        assert spec["readinessProbe"]["timeoutSeconds"] > timeout


@pytest.mark.parametrize("overlay", ALL)
def test_every_deployment_runs_its_service_from_the_one_image(
    manifests: dict[str, list[Manifest]], overlay: str
) -> None:
    for name, deployment in objects(manifests[overlay], "Deployment").items():
        service = name.removesuffix("-canary")
        spec = container(deployment)
        assert spec["args"] == [service]
        assert "command" not in spec  # the image's entrypoint takes the service name
        # REGISTRY/stockday:<git sha> as committed (REGISTRY/stockday-canary for the canary
        # track); deploy/release.sh sets the real registry and each track's release.
        repository = "stockday-canary" if name.endswith("-canary") else "stockday"
        assert re.fullmatch(rf"REGISTRY/{repository}:[0-9a-f]{{40}}", spec["image"]), spec["image"]
        pod = deployment["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == service
        assert pod["automountServiceAccountToken"] is False


@pytest.mark.parametrize("overlay", ALL)
def test_every_deployment_is_locked_down(
    manifests: dict[str, list[Manifest]], overlay: str
) -> None:
    for name, deployment in objects(manifests[overlay], "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        spec = container(deployment)
        for context in (pod["securityContext"], spec["securityContext"]):
            assert context["runAsNonRoot"] is True, name
            assert context["runAsUser"] == 10001, name
            assert context["runAsGroup"] == 10001, name
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["securityContext"]["readOnlyRootFilesystem"] is True
        assert spec["securityContext"]["allowPrivilegeEscalation"] is False
        assert spec["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        # The only writable path is /tmp, an emptyDir.
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        mounts = {mount["mountPath"]: mount["name"] for mount in spec["volumeMounts"]}
        assert set(mounts) == {"/tmp"}
        assert "emptyDir" in volumes[mounts["/tmp"]]


@pytest.mark.parametrize("overlay", ALL)
def test_every_deployment_has_requests_and_limits(
    manifests: dict[str, list[Manifest]], overlay: str
) -> None:
    for name, deployment in objects(manifests[overlay], "Deployment").items():
        resources = container(deployment)["resources"]
        for kind in ("requests", "limits"):
            assert set(resources[kind]) == {"cpu", "memory"}, name
        memory_limit = resources["limits"]["memory"]
        expected = "512Mi" if name.startswith("logo-resizer") else "256Mi"
        assert memory_limit == expected, name


@pytest.mark.parametrize("overlay", ALL)
def test_deployments_update_without_downtime_and_drain(
    manifests: dict[str, list[Manifest]], overlay: str
) -> None:
    for name, deployment in objects(manifests[overlay], "Deployment").items():
        spec = deployment["spec"]
        assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0, name
        pod = spec["template"]["spec"]
        assert pod["terminationGracePeriodSeconds"] == 30
        pause = container(deployment).get("lifecycle", {}).get("preStop", {}).get("sleep")
        if name.removesuffix("-canary") in HTTP_SERVICES:
            # Endpoints and the load balancer stop sending first; then ~10 s of draining fits.
            assert pause and 0 < pause["seconds"] <= 10, name
        else:
            assert pause is None, name


def selects(selector: Manifest | None, labels: dict[str, str]) -> bool:
    """Whether a Kubernetes label selector matches these labels (None matches nothing)."""
    if selector is None:
        return False
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values")
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def pod_labels(deployment: Manifest) -> dict[str, str]:
    return dict(deployment["spec"]["template"]["metadata"]["labels"])


@pytest.mark.parametrize("overlay", ALL)
def test_every_workload_has_a_disruption_budget_and_spreads_over_zones(
    manifests: dict[str, list[Manifest]], overlay: str
) -> None:
    docs = manifests[overlay]
    budgets = objects(docs, "PodDisruptionBudget").values()
    for name, deployment in objects(docs, "Deployment").items():
        labels = pod_labels(deployment)
        covering = [b for b in budgets if selects(b["spec"]["selector"], labels)]
        assert len(covering) == 1, name
        assert covering[0]["spec"]["maxUnavailable"] == 1, name
        spread = {
            c["topologyKey"]: c
            for c in deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
        }
        zone = spread["topology.kubernetes.io/zone"]
        assert zone["whenUnsatisfiable"] == "DoNotSchedule"
        assert "kubernetes.io/hostname" in spread
        for constraint in spread.values():
            assert constraint["maxSkew"] == 1
            assert selects(constraint["labelSelector"], labels), name
            assert {"app.kubernetes.io/name", "pod-template-hash"} <= set(
                constraint["matchLabelKeys"]
            )


@pytest.mark.parametrize("overlay", ALL)
def test_every_pod_is_labelled_for_its_service_and_track(
    manifests: dict[str, list[Manifest]], overlay: str
) -> None:
    for name, deployment in objects(manifests[overlay], "Deployment").items():
        track = "canary" if name.endswith("-canary") else "stable"
        expected = {
            "app.kubernetes.io/name": name.removesuffix("-canary"),
            "app.kubernetes.io/part-of": "stockday",
            "track": track,
        }
        assert pod_labels(deployment) == expected
        assert deployment["spec"]["selector"]["matchLabels"]["track"] == track
        assert deployment["metadata"]["labels"]["track"] == track


@pytest.mark.parametrize("overlay", ALL)
def test_http_services_listen_on_80_for_their_pods_http_port(
    manifests: dict[str, list[Manifest]], overlay: str
) -> None:
    services = objects(manifests[overlay], "Service")
    deployments = objects(manifests[overlay], "Deployment")
    for name in HTTP_SERVICES:
        spec = services[name]["spec"]
        assert spec["type"] == "ClusterIP"
        assert spec["ports"] == [
            {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
        ]
        # The internal Services reach both tracks; the frontend's is the stable target group.
        reached = {
            d
            for d, dep in deployments.items()
            if selects({"matchLabels": spec["selector"]}, pod_labels(dep))
        }
        if name == "frontend":
            assert reached == {"frontend"}
        else:
            assert reached == {name, f"{name}-canary"} & set(deployments)


@pytest.mark.parametrize("overlay", ALL)
def test_only_stock_price_gets_the_market_data_key_and_only_optionally(
    manifests: dict[str, list[Manifest]], overlay: str
) -> None:
    assert not objects(manifests[overlay], "Secret")  # no secret values in git
    for name, deployment in objects(manifests[overlay], "Deployment").items():
        env = {e["name"]: e for e in container(deployment).get("env", [])}
        if name.removesuffix("-canary") == "stock-price":
            ref = env["STOCKDAY_ALPHA_VANTAGE_API_KEY"]["valueFrom"]["secretKeyRef"]
            assert ref == {
                "name": "stockday-market-data",
                "key": "STOCKDAY_ALPHA_VANTAGE_API_KEY",
                "optional": True,
            }
        else:
            assert env == {}, name


# --- Settings ----------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", ALL)
def test_configmap_is_the_env_file_and_every_deployment_reads_it(
    manifests: dict[str, list[Manifest]], overlay: str
) -> None:
    docs = manifests[overlay]
    (configmap,) = objects(docs, "ConfigMap").values()
    assert configmap["metadata"]["name"].startswith("stockday-config-")  # content-hashed
    assert configmap["data"] == env_file(OVERLAYS[overlay])
    for name, deployment in objects(docs, "Deployment").items():
        sources = container(deployment)["envFrom"]
        assert sources == [{"configMapRef": {"name": configmap["metadata"]["name"]}}], name


@pytest.mark.parametrize("stage", STAGE_OVERLAYS)
def test_env_file_is_a_valid_aws_configuration(stage: str) -> None:
    settings = stage_settings(stage)
    assert settings.backend == "aws"
    # The Services are port 80, so the URLs need no port.
    assert settings.symbol_url == "http://stock-symbol"
    assert settings.price_url == "http://stock-price"


# --- Autoscaling and replicas ------------------------------------------------------------


@pytest.mark.parametrize("overlay", ALL)
def test_http_services_scale_on_cpu_from_the_stage_floor(
    manifests: dict[str, list[Manifest]], overlay: str
) -> None:
    docs = manifests[overlay]
    floor = STAGES[OVERLAYS[overlay]]
    autoscalers = objects(docs, "HorizontalPodAutoscaler")
    assert set(autoscalers) == set(HTTP_SERVICES)
    deployments = objects(docs, "Deployment")
    for name, hpa in autoscalers.items():
        spec = hpa["spec"]
        assert spec["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        assert spec["minReplicas"] == floor == deployments[name]["spec"]["replicas"]
        assert spec["maxReplicas"] > floor
        (metric,) = spec["metrics"]
        assert metric["type"] == "Resource"
        assert metric["resource"]["name"] == "cpu"
        assert metric["resource"]["target"]["type"] == "Utilization"


@pytest.mark.parametrize("overlay", ALL)
def test_consumers_scale_on_the_queue_named_in_the_configmap(
    manifests: dict[str, list[Manifest]], overlay: str
) -> None:
    docs = manifests[overlay]
    floor = STAGES[OVERLAYS[overlay]]
    (configmap,) = objects(docs, "ConfigMap").values()
    deployments = objects(docs, "Deployment")
    authentications = objects(docs, "TriggerAuthentication")
    scaled_objects = objects(docs, "ScaledObject")
    assert set(scaled_objects) == set(CONSUMER_QUEUES)
    for name, queue_key in CONSUMER_QUEUES.items():
        spec = scaled_objects[name]["spec"]
        assert spec["scaleTargetRef"]["name"] == name
        assert spec["minReplicaCount"] == floor == deployments[name]["spec"]["replicas"]
        assert spec["maxReplicaCount"] > floor
        (trigger,) = spec["triggers"]
        assert trigger["type"] == "aws-sqs-queue"
        assert trigger["metadata"]["queueURL"] == configmap["data"][queue_key]
        assert trigger["metadata"]["awsRegion"] == configmap["data"]["STOCKDAY_AWS_REGION"]
        auth = authentications[trigger["authenticationRef"]["name"]]
        assert auth["spec"]["podIdentity"] == {"provider": "aws", "identityOwner": "keda"}


@pytest.mark.parametrize("overlay", ALL)
def test_stable_replicas_are_the_stage_floor(
    manifests: dict[str, list[Manifest]], overlay: str
) -> None:
    for name, deployment in objects(manifests[overlay], "Deployment").items():
        expected = 1 if name.endswith("-canary") else STAGES[OVERLAYS[overlay]]
        assert deployment["spec"]["replicas"] == expected, name


# --- Network policies --------------------------------------------------------------------


class Network:
    """Evaluates a namespace's NetworkPolicies for one connection.

    An address block (ipBlock) may cover pod addresses too (the VPC CNI gives pods VPC
    addresses), so by default it counts as matching any pod; with ``blocks_cover_pods=False``
    only pod and namespace selectors match pods, which isolates the pod-to-pod rules.
    """

    def __init__(self, docs: list[Manifest], *, blocks_cover_pods: bool = True) -> None:
        self.policies = list(objects(docs, "NetworkPolicy").values())
        (self.namespace,) = objects(docs, "Namespace")
        self.blocks_cover_pods = blocks_cover_pods

    def _namespace_labels(self, namespace: str) -> dict[str, str]:
        return {"kubernetes.io/metadata.name": namespace}

    def _peer_matches(self, peer: Manifest, endpoint: Manifest, home: str) -> bool:
        if "ipBlock" in peer:
            block = peer["ipBlock"]
            if "ip" not in endpoint:
                return self.blocks_cover_pods
            address = ipaddress.ip_address(endpoint["ip"])
            excepted = any(address in ipaddress.ip_network(e) for e in block.get("except", []))
            return address in ipaddress.ip_network(block["cidr"]) and not excepted
        if "ip" in endpoint:
            return False
        if "namespaceSelector" in peer:
            namespace_ok = selects(
                peer["namespaceSelector"], self._namespace_labels(endpoint["ns"])
            )
        else:
            namespace_ok = endpoint["ns"] == home
        pod_ok = selects(peer.get("podSelector", {}), endpoint["labels"])
        return namespace_ok and pod_ok

    def side_allows(
        self, direction: str, subject: Manifest, other: Manifest, port: int, protocol: str = "TCP"
    ) -> bool:
        """Whether the policies of `subject` let it send to (Egress) or receive from (Ingress)
        `other`."""
        if "ip" in subject or subject["ns"] != self.namespace:
            return True  # outside this namespace: not governed by these policies
        key, peers_key = ("egress", "to") if direction == "Egress" else ("ingress", "from")
        governing = [
            p
            for p in self.policies
            if direction in p["spec"]["policyTypes"]
            and selects(p["spec"]["podSelector"], subject["labels"])
        ]
        if not governing:
            return True
        for policy in governing:
            for rule in policy["spec"].get(key, []):
                ports = rule.get("ports")
                if ports and not any(
                    p.get("port") == port and p.get("protocol", "TCP") == protocol for p in ports
                ):
                    continue
                peers = rule.get(peers_key)
                if not peers or any(
                    self._peer_matches(peer, other, self.namespace) for peer in peers
                ):
                    return True
        return False

    def allows(
        self, source: Manifest, destination: Manifest, port: int, protocol: str = "TCP"
    ) -> bool:
        return self.side_allows("Egress", source, destination, port, protocol) and self.side_allows(
            "Ingress", destination, source, port, protocol
        )

    def pod(self, service: str, track: str = "stable") -> Manifest:
        labels = {
            "app.kubernetes.io/name": service,
            "app.kubernetes.io/part-of": "stockday",
            "track": track,
        }
        return {"ns": self.namespace, "labels": labels}


def network_pods(network: Network, docs: list[Manifest]) -> dict[str, Manifest]:
    return {
        name: {"ns": network.namespace, "labels": pod_labels(deployment)}
        for name, deployment in objects(docs, "Deployment").items()
    }


@pytest.mark.parametrize("overlay", ALL)
def test_network_policies_allow_exactly_the_service_calls(
    manifests: dict[str, list[Manifest]], overlay: str
) -> None:
    docs = manifests[overlay]
    network = Network(docs)
    pods = network_pods(network, docs)
    assert any(
        p["spec"]["podSelector"] == {}
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
        for p in network.policies
    ), "a default-deny policy for the whole namespace"
    allowed = {
        (source.removesuffix("-canary"), destination.removesuffix("-canary"))
        for source, source_pod in pods.items()
        for destination, destination_pod in pods.items()
        if source != destination and network.allows(source_pod, destination_pod, PORT)
    }
    assert allowed == CALLS
    # Each side on its own, too: the senders' egress rules and the receivers' ingress rules.
    pod_rules = Network(docs, blocks_cover_pods=False)
    for direction in ("Egress", "Ingress"):
        one_side = {
            (source.removesuffix("-canary"), destination.removesuffix("-canary"))
            for source, source_pod in pods.items()
            for destination, destination_pod in pods.items()
            if source != destination
            and (
                pod_rules.side_allows(direction, source_pod, destination_pod, PORT)
                if direction == "Egress"
                else pod_rules.side_allows(direction, destination_pod, source_pod, PORT)
            )
        }
        assert one_side == CALLS, direction
    # The calls no service makes, spelt out.
    assert not network.allows(network.pod("logo-resizer"), network.pod("stock-symbol"), PORT)
    assert not network.allows(network.pod("frontend"), network.pod("stock-price"), PORT)
    assert not network.allows(network.pod("queue-worker"), network.pod("stock-price"), PORT)


@pytest.mark.parametrize("overlay", ALL)
def test_network_policies_open_dns_metrics_aws_and_the_load_balancer(
    manifests: dict[str, list[Manifest]], overlay: str
) -> None:
    network = Network(manifests[overlay])
    kube_dns = {"ns": "kube-system", "labels": {"k8s-app": "kube-dns"}}
    prometheus = {"ns": "monitoring", "labels": {"app.kubernetes.io/name": "prometheus"}}
    stranger = {"ns": "default", "labels": {"app": "other"}}
    aws_api = {"ip": "52.94.133.131"}  # any public address: a regional endpoint
    pod_identity_agent = {"ip": "169.254.170.23"}
    memcached = {"ip": "10.0.42.7"}
    load_balancer = {"ip": "10.0.3.17"}
    aws_users = {"frontend", "stock-symbol", "logo-resizer", "queue-worker"}
    for service in SERVICES:
        pod = network.pod(service)
        assert network.allows(pod, kube_dns, 53, "UDP")
        assert network.allows(pod, kube_dns, 53, "TCP")
        assert not network.allows(pod, stranger, 53, "UDP")
        assert network.allows(prometheus, pod, PORT)
        # The ALB's private source range covers other pods' addresses too: the public frontend
        # is the one pod they may reach.
        assert network.allows(stranger, pod, PORT) == (service == "frontend")
        assert network.allows(pod, aws_api, 443) == (service in aws_users | {"stock-price"})
        assert network.allows(pod, aws_api, 80) is False
        assert network.allows(pod, pod_identity_agent, 80) == (service in aws_users)
        assert network.allows(pod, memcached, 11211) == (service == "stock-symbol")
        assert network.allows(load_balancer, pod, PORT) == (service == "frontend")


# --- Namespace and Ingress ---------------------------------------------------------------


@pytest.mark.parametrize("overlay", ALL)
def test_namespace_enforces_restricted_pods_and_readiness_gates(
    manifests: dict[str, list[Manifest]], overlay: str
) -> None:
    (namespace,) = objects(manifests[overlay], "Namespace").values()
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["elbv2.k8s.aws/pod-readiness-gate-inject"] == "enabled"


@pytest.mark.parametrize("overlay", ALL)
def test_ingress_is_a_public_https_alb_checking_readiness(
    manifests: dict[str, list[Manifest]], overlay: str
) -> None:
    (ingress,) = objects(manifests[overlay], "Ingress").values()
    annotations = ingress["metadata"]["annotations"]
    prefix = "alb.ingress.kubernetes.io/"
    expected = {
        "scheme": "internet-facing",
        "target-type": "ip",
        "ssl-redirect": "443",
        "healthcheck-path": "/api/ready",
    }
    assert {key: annotations[prefix + key] for key in expected} == expected
    assert json.loads(annotations[prefix + "listen-ports"]) == [{"HTTP": 80}, {"HTTPS": 443}]
    for key in ("healthcheck-interval-seconds", "healthy-threshold-count"):
        assert int(annotations[prefix + key]) >= 1
    assert int(annotations[prefix + "unhealthy-threshold-count"]) == 2
    assert ingress["spec"]["ingressClassName"] == "alb"
    host = HOSTS[OVERLAYS[overlay]]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == host
    assert ingress["spec"]["tls"] == [{"hosts": [host]}]
    internal, path = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/", "Prefix")
    if overlay != "production-canary":
        assert path["backend"] == {"service": {"name": "frontend", "port": {"name": "http"}}}
    # /metrics goes to a fixed 404 of the ALB's, never to a pod: before "/", and longer.
    assert (internal["path"], internal["pathType"]) == ("/metrics", "Prefix")
    action = internal["backend"]["service"]
    assert action["port"] == {"name": "use-annotation"}
    refusal = json.loads(annotations[f"{prefix}actions.{action['name']}"])
    assert refusal["type"] == "fixed-response"
    assert refusal["fixedResponseConfig"]["statusCode"] == "404"


# --- Canary ------------------------------------------------------------------------------


def test_canary_splits_user_traffic_70_30(manifests: dict[str, list[Manifest]]) -> None:
    docs = manifests["production-canary"]
    (ingress,) = objects(docs, "Ingress").values()
    (path,) = [p for p in ingress["spec"]["rules"][0]["http"]["paths"] if p["path"] == "/"]
    action = path["backend"]["service"]
    assert action["port"] == {"name": "use-annotation"}
    config = json.loads(
        ingress["metadata"]["annotations"][f"alb.ingress.kubernetes.io/actions.{action['name']}"]
    )
    assert config["type"] == "forward"
    weights = {
        group["serviceName"]: (group["servicePort"], group["weight"])
        for group in config["forwardConfig"]["targetGroups"]
    }
    assert weights == {"frontend": ("http", 70), "frontend-canary": ("http", 30)}
    services = objects(docs, "Service")
    deployments = objects(docs, "Deployment")
    for service, deployment in (("frontend", "frontend"), ("frontend-canary", "frontend-canary")):
        selector = {"matchLabels": services[service]["spec"]["selector"]}
        reached = {d for d, dep in deployments.items() if selects(selector, pod_labels(dep))}
        assert reached == {deployment}
        assert services[service]["spec"]["ports"][0]["targetPort"] == "http"


def test_canary_is_one_pod_per_service_identical_but_for_image_and_track(
    manifests: dict[str, list[Manifest]],
) -> None:
    docs = manifests["production-canary"]
    deployments = objects(docs, "Deployment")
    assert set(deployments) == set(SERVICES) | {f"{s}-canary" for s in SERVICES}
    production = objects(manifests["production"], "Deployment")
    for service in SERVICES:
        stable, canary = deployments[service], deployments[f"{service}-canary"]
        assert stable == production[service]  # the canary overlay leaves stable alone
        assert canary["spec"]["replicas"] == 1
        assert pod_labels(canary)["track"] == "canary"
        stable_pod = copy.deepcopy(stable["spec"]["template"]["spec"])
        canary_pod = copy.deepcopy(canary["spec"]["template"]["spec"])
        for pod in (stable_pod, canary_pod):
            pod["containers"][0].pop("image")
            pod.pop("topologySpreadConstraints")
        assert canary_pod == stable_pod, service


def test_canary_leaves_stable_autoscaling_and_budgets_in_place(
    manifests: dict[str, list[Manifest]],
) -> None:
    canary_docs, production_docs = manifests["production-canary"], manifests["production"]
    for kind in ("HorizontalPodAutoscaler", "ScaledObject", "PodDisruptionBudget", "NetworkPolicy"):
        assert objects(canary_docs, kind) == objects(production_docs, kind), kind
    canary_only = {
        (doc["kind"], doc["metadata"]["name"])
        for doc in canary_docs
        if doc["metadata"].get("labels", {}).get("track") == "canary"
    }
    # What `kubectl delete -l track=canary` removes after a promotion or a rollback.
    assert canary_only == {("Deployment", f"{s}-canary") for s in SERVICES} | {
        ("Service", "frontend-canary")
    }
