"""Helpers of the CDK tests: one in-process synthesis per session, template resolution, and the
permission table of docs/aws-iam.md read as data."""

from __future__ import annotations

import functools
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CDK_DIR = REPO / "deploy" / "aws"
CDK_CLI = REPO / "deploy" / "tools" / "node_modules" / ".bin" / "cdk"
IAM_DOC = REPO / "docs" / "aws-iam.md"
STAGES = ("staging", "production")
STACK_NAMES = {"staging": "StockdayStaging", "production": "StockdayProduction"}
IMAGES_STACK = "StockdayImages"

Template = dict[str, Any]


def import_infra() -> Any:
    """The stockday_infra package of deploy/aws (an app directory, not an installed package)."""
    if str(CDK_DIR) not in sys.path:
        sys.path.insert(0, str(CDK_DIR))
    import stockday_infra

    return stockday_infra


def cdk_context() -> dict[str, Any]:
    """The feature flags of cdk.json, so that in-process synthesis matches `cdk synth`."""
    context: dict[str, Any] = json.loads((CDK_DIR / "cdk.json").read_text())["context"]
    return context


_outdir = tempfile.TemporaryDirectory(prefix="stockday-cdk-")


@functools.cache
def synthesized() -> dict[str, Template]:
    """The stage stacks and the images stack (key "images"), synthesized once per session
    (jsii starts slowly)."""
    from aws_cdk import App

    infra = import_infra()
    # No account in the environment: the templates must not depend on one.
    saved = {name: os.environ.pop(name, None) for name in ("CDK_DEFAULT_ACCOUNT",)}
    try:
        app = infra.build_app(App(context=cdk_context(), outdir=_outdir.name))
        assembly = app.synth()
    finally:
        os.environ.update({name: value for name, value in saved.items() if value is not None})
    templates = {stage: assembly.get_stack_by_name(STACK_NAMES[stage]).template for stage in STAGES}
    templates["images"] = assembly.get_stack_by_name(IMAGES_STACK).template
    return templates


def resources(template: Template, kind: str) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == kind
    }


def only(template: Template, kind: str) -> tuple[str, dict[str, Any]]:
    found = resources(template, kind)
    assert len(found) == 1, f"expected one {kind}, found {sorted(found)}"
    return next(iter(found.items()))


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


class Names:
    """Symbolic names (as docs/aws-iam.md writes them) of a stage's table, queues and bucket."""

    def __init__(self, template: Template, env: dict[str, str]) -> None:
        wanted = {
            ("AWS::DynamoDB::Table", "TableName", env["STOCKDAY_DYNAMODB_TABLE"]): "TABLE",
            ("AWS::SQS::Queue", "QueueName", env["STOCKDAY_LOGO_JOBS_QUEUE"]): "JOBS",
            ("AWS::SQS::Queue", "QueueName", env["STOCKDAY_LOGO_JOBS_QUEUE"] + "-dlq"): "JOBS-dlq",
            ("AWS::SQS::Queue", "QueueName", env["STOCKDAY_LOGO_EVENTS_QUEUE"]): "EVENTS",
            (
                "AWS::SQS::Queue",
                "QueueName",
                env["STOCKDAY_LOGO_EVENTS_QUEUE"] + "-dlq",
            ): "EVENTS-dlq",
            ("AWS::S3::Bucket", "BucketName", env["STOCKDAY_S3_BUCKET"]): "BUCKET",
            (
                "AWS::SecretsManager::Secret",
                "Name",
                env["STOCKDAY_OPERATOR_SECRET_NAME"],
            ): "OPERATOR_SECRET",
        }
        self.by_id: dict[str, str] = {}
        for logical_id, resource in template["Resources"].items():
            for (kind, prop, value), symbol in wanted.items():
                if resource["Type"] == kind and resource["Properties"].get(prop) == value:
                    self.by_id[logical_id] = symbol
        missing = set(wanted.values()) - set(self.by_id.values())
        assert not missing, f"no resource named as the env file says for {sorted(missing)}"
        self.ids = {symbol: logical_id for logical_id, symbol in self.by_id.items()}

    def arn(self, value: Any) -> str:
        """A policy resource as a symbolic ARN: ``TABLE``, ``BUCKET/uploads/*``, ..."""
        if isinstance(value, str):
            return value
        if "Fn::GetAtt" in value:
            logical_id, attribute = value["Fn::GetAtt"]
            assert attribute == "Arn", value
            return self.by_id.get(logical_id, f"<{logical_id}>")
        if "Ref" in value:  # a secret's Ref is its ARN
            return self.by_id.get(value["Ref"], f"<{value['Ref']}>")
        if "Fn::Join" in value:
            separator, parts = value["Fn::Join"]
            return separator.join(self.arn(part) for part in parts)
        return json.dumps(value)


def policy_grants(document: dict[str, Any], names: Names) -> set[tuple[str, str]]:
    """Every (action, symbolic resource) an Allow policy grants; anything else is refused."""
    grants = set()
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow", statement
        assert "NotAction" not in statement and "NotResource" not in statement, statement
        assert "Condition" not in statement, statement
        for action in as_list(statement["Action"]):
            for resource in as_list(statement["Resource"]):
                grants.add((action, names.arn(resource)))
    return grants


# --- docs/aws-iam.md ----------------------------------------------------------------------

_SERVICES = {
    "DynamoDB": "dynamodb",
    "SQS": "sqs",
    "S3": "s3",
    "Secrets Manager": "secretsmanager",
}


def documented_permissions() -> dict[str, set[tuple[str, str]]]:
    """The table of docs/aws-iam.md: principal -> {(service:Action, symbolic resource)}.

    A cell is "none" or clauses separated by ";", each "<actions> on <targets> (why)" with
    every action and target in backticks. The principal is the row's first word.
    """
    lines = IAM_DOC.read_text().splitlines()
    header_at = next(i for i, line in enumerate(lines) if line.startswith("| service |"))
    columns = [cell.strip() for cell in lines[header_at].strip("|").split("|")]
    table: dict[str, set[tuple[str, str]]] = {}
    for line in _table_rows(lines[header_at + 2 :]):
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        principal = _principal(cells[0])
        grants: set[tuple[str, str]] = set()
        for column, cell in zip(columns[1:], cells[1:], strict=True):
            prefix = _SERVICES[column]
            cell = re.sub(r"\([^)]*\)", "", cell)
            if cell.strip() == "none":
                continue
            for clause in cell.split(";"):
                actions_text, on, targets_text = clause.partition(" on ")
                assert on, f"cannot read {clause!r} in docs/aws-iam.md"
                actions = re.findall(r"`([A-Za-z]+)`", actions_text)
                targets = re.findall(r"`([^`]+)`", targets_text)
                assert actions and targets, f"cannot read {clause!r} in docs/aws-iam.md"
                grants |= {(f"{prefix}:{a}", t) for a in actions for t in targets}
        table[principal] = grants
    return table


def _table_rows(lines: list[str]) -> Iterator[str]:
    for line in lines:
        if not line.startswith("|"):
            return
        yield line


def _principal(cell: str) -> str:
    if cell.startswith("operator"):
        return "operator"
    return cell.split()[0].strip("`")
