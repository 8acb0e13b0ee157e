"""The service level objectives' PrometheusRule in every overlay: the Prometheus operator's
documented fields only (its CRD is not in the Kubernetes schemas), in the stage's namespace,
and exactly the rules the catalogue generates, which promtool tests (tests/slo)."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest
import yaml

from stockday.slo import prometheus
from tests.deploy.overlays import render

OVERLAYS = {"staging": "staging", "production": "production", "production-canary": "production"}

_STRING = {"type": "string", "minLength": 1}
_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
_DURATION = {"type": "string", "pattern": r"^([0-9]+(ms|s|m|h|d|w|y))+$"}


def _closed(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": required,
        "properties": properties,
    }


_RULE_FIELDS = {"expr": _STRING, "labels": _STRINGS, "annotations": _STRINGS, "for": _DURATION}
_RULE = {
    "oneOf": [
        _closed({"record": _STRING, **_RULE_FIELDS}, ["record", "expr"]),
        _closed({"alert": _STRING, **_RULE_FIELDS}, ["alert", "expr"]),
    ]
}
_GROUP = _closed(
    {
        "name": _STRING,
        "interval": _DURATION,
        "rules": {"type": "array", "minItems": 1, "items": _RULE},
    },
    ["name", "rules"],
)
# The fields of monitoring.coreos.com/v1 PrometheusRule that the operator documents and these
# rules use; any other is a mistake.
PROMETHEUS_RULE_SCHEMA = _closed(
    {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": _closed(
            {"name": _STRING, "namespace": _STRING, "labels": _STRINGS}, ["name", "namespace"]
        ),
        "spec": _closed({"groups": {"type": "array", "minItems": 1, "items": _GROUP}}, ["groups"]),
    },
    ["apiVersion", "kind", "metadata", "spec"],
)


def rule_objects(overlay: str) -> list[dict[str, Any]]:
    docs = [doc for doc in yaml.safe_load_all(render(overlay)) if doc]
    return [doc for doc in docs if doc["kind"] == "PrometheusRule"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_ships_the_generated_rules_in_its_namespace(overlay: str) -> None:
    (rule,) = rule_objects(overlay)
    jsonschema.validate(rule, PROMETHEUS_RULE_SCHEMA)
    assert rule["metadata"]["namespace"] == f"stockday-{OVERLAYS[overlay]}"
    assert rule["spec"]["groups"] == prometheus.rule_groups()


def test_the_schema_rejects_a_misspelt_rule_field() -> None:
    (rule,) = rule_objects("staging")
    broken = copy.deepcopy(rule)
    broken["spec"]["groups"][0]["rules"][-1]["annotation"] = {"summary": "typo"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, PROMETHEUS_RULE_SCHEMA)
