"""CDK entry point: `cdk synth` / `cdk deploy` from deploy/aws (see docs/deploy-aws.md)."""

from stockday_infra import build_app

build_app().synth()
