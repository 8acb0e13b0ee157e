"""Checkov skips written into the template beside the resource they concern, with reasons."""

from __future__ import annotations

from aws_cdk import CfnResource
from constructs import IConstruct


def skip_checks(construct: IConstruct, reasons: dict[str, str]) -> None:
    """Skip the checkov checks ``reasons`` names on ``construct``'s CloudFormation resource."""
    resource = construct if isinstance(construct, CfnResource) else construct.node.default_child
    if not isinstance(resource, CfnResource):
        raise TypeError(f"{construct.node.path} has no CloudFormation resource to annotate")
    metadata = resource.get_metadata("checkov") or {"skip": []}
    metadata["skip"] = [
        *metadata["skip"],
        *({"id": check, "comment": reason} for check, reason in reasons.items()),
    ]
    resource.add_metadata("checkov", metadata)
