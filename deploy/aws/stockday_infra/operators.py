"""The operators' password hash: one Secrets Manager secret per stage, read by the frontend."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from stockday_infra.checkov import skip_checks
from stockday_infra.stages import Stage


def operator_secret(scope: Construct, stage: Stage) -> secretsmanager.Secret:
    """The secret named by STOCKDAY_OPERATOR_SECRET_NAME. It starts as a random string, which is
    no password hash, so nobody can log in until an operator stores the output of
    `stockday operator hash-password` in it (docs/deploy-aws.md)."""
    name = stage.settings.operator_secret_name
    if not name:
        raise ValueError(f"{stage.env_file} must set STOCKDAY_OPERATOR_SECRET_NAME")
    secret = secretsmanager.Secret(
        scope,
        "OperatorPassword",
        secret_name=name,
        description="scrypt hash of the operators' password (stockday operator hash-password)",
        removal_policy=RemovalPolicy.RETAIN,
    )
    skip_checks(
        secret,
        {
            "CKV_AWS_149": "the hash is not readable without the frontend's role; the "
            "AWS-managed key suffices, as for the table",
            "CKV2_AWS_57": "a password hash is rotated by an operator choosing a new password, "
            "not by a rotation function",
        },
    )
    return secret
