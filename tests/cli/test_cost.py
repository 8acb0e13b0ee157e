"""`stockday cost`: the cost model's arithmetic, its agreement with the manifests, and the CLI."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from stockday.cli import app
from stockday.release.cost import WORKLOADS, Assumptions, LineItem, line_items, total

REPO = Path(__file__).resolve().parents[2]
FIXED = (
    "EKS control plane",
    "NAT gateways",
    "ALB hours",
    "EC2 nodes",
    "ElastiCache memcached nodes",
)
REQUEST_PRICED = (
    "DynamoDB reads (on-demand)",
    "DynamoDB writes (on-demand)",
    "SQS requests (incl. idle long polls)",
    "S3 PUT (uploads, logos)",
    "CloudFront HTTPS requests",
    "CloudFront data out",
    "Data out to the internet (pages)",
)


def _by_name(visitors: float) -> dict[str, LineItem]:
    return {item.name: item for item in line_items(Assumptions(daily_visitors=visitors))}


def test_the_total_is_the_sum_of_the_lines() -> None:
    items = line_items(Assumptions(daily_visitors=10_000))
    assert total(items) == pytest.approx(sum(item.monthly for item in items))
    assert len({item.name for item in items}) == len(items)


def test_request_priced_lines_grow_with_visitors_and_fixed_lines_do_not() -> None:
    runs = [_by_name(v) for v in (1_000, 10_000, 100_000)]
    for name in REQUEST_PRICED:
        costs = [run[name].monthly for run in runs]
        assert costs[0] < costs[1] < costs[2], name
    for name in FIXED:
        assert len({run[name].monthly for run in runs}) == 1, name
        assert runs[0][name].fixed
    assert all(not runs[0][name].fixed for name in REQUEST_PRICED)


def test_hand_computed_lines_at_ten_thousand_visitors() -> None:
    lines = _by_name(10_000)
    assert lines["EKS control plane"].monthly == pytest.approx(730 * 0.10)
    assert lines["NAT gateways"].monthly == pytest.approx(3 * 730 * 0.045)  # 98.55
    # Uploads: 10,000 x 0.1 x 730/24 days x 6 requests; idle polls: 2 consumers x 3 replicas
    # x 2,628,000 s / 2 s wait; KEDA: 2 ScaledObjects x 2,628,000 s / 15 s.
    requests = 10_000 * 0.1 * (730 / 24) * 6 + 6 * 2_628_000 / 2 + 2 * 2_628_000 / 15
    assert lines["SQS requests (incl. idle long polls)"].quantity == pytest.approx(requests)
    assert lines["SQS requests (incl. idle long polls)"].monthly == pytest.approx(3.36676)
    assert lines["EC2 nodes"].quantity == 3 * 730


def test_idle_long_polls_cost_requests_with_no_visitors() -> None:
    idle = _by_name(0)["SQS requests (incl. idle long polls)"]
    assert idle.quantity == pytest.approx(6 * 2_628_000 / 2 + 2 * 2_628_000 / 15)
    longer = line_items(Assumptions(daily_visitors=0, queue_wait_seconds=20))
    assert {i.name: i for i in longer}[
        "SQS requests (incl. idle long polls)"
    ].monthly < idle.monthly


def test_invalid_assumptions_are_refused() -> None:
    with pytest.raises(ValueError, match="daily-visitors"):
        line_items(Assumptions(daily_visitors=-1))
    with pytest.raises(ValueError, match="cache-hit-ratio"):
        line_items(Assumptions(daily_visitors=1, cache_hit_ratio=1.5))


def _manifests(path: Path) -> list[dict[str, object]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def test_the_model_s_pods_are_the_production_overlay_s() -> None:
    """Requests from the base workloads, minimum replicas from the production scaling patch."""
    minimums: dict[str, object] = {}
    for doc in _manifests(REPO / "deploy/k8s/overlays/production/scaling.yaml"):
        spec = doc["spec"]
        assert isinstance(spec, dict) and isinstance(doc["metadata"], dict)
        minimums[doc["metadata"]["name"]] = spec.get("minReplicas", spec.get("minReplicaCount"))
    for workload in WORKLOADS:
        (deployment,) = _manifests(REPO / f"deploy/k8s/base/workloads/{workload.name}.yaml")
        container = deployment["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
        requests = container["resources"]["requests"]
        assert requests["cpu"] == f"{workload.cpu_millis}m", workload.name
        assert requests["memory"] == f"{workload.memory_mib}Mi", workload.name
        assert minimums[workload.name] == workload.min_replicas, workload.name


runner = CliRunner()


def test_the_command_prints_every_line_and_the_total() -> None:
    result = runner.invoke(app, ["cost", "--daily-visitors", "10000"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for item in line_items(Assumptions(daily_visitors=10_000)):
        assert item.name in result.output
    figure = total(line_items(Assumptions(daily_visitors=10_000)))
    assert "Total" in result.output and f"{figure:,.2f}" in result.output


def test_json_output_parses_and_adds_up() -> None:
    args = ["cost", "--daily-visitors", "10000", "--set", "cache_nodes=0", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["assumptions"]["cache_nodes"] == 0
    assert document["prices_as_of"]
    lines = {line["item"]: line for line in document["lines"]}
    assert lines["ElastiCache memcached nodes"]["monthly_usd"] == 0
    assert document["total_monthly_usd"] == pytest.approx(
        sum(line["monthly_usd"] for line in document["lines"]), abs=0.01
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--daily-visitors", "-5"], "daily-visitors must be zero or more"),
        (["--daily-visitors", "1", "--set", "nonsense=1"], "--set expects NAME=VALUE"),
        (["--daily-visitors", "1", "--set", "zones=x"], "is not a number"),
    ],
)
def test_invalid_input_exits_2_with_a_message(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["cost", *args], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_assumptions_are_all_numbers() -> None:
    """--set converts by the field's type: a new field of another type would need a converter."""
    assert {f.type for f in dataclasses.fields(Assumptions)} <= {"float", "int"}
