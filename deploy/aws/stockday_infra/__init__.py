"""Stock-of-the-Day on AWS (AWS CDK): the image registry and one stack per stage."""

from __future__ import annotations

import os

from aws_cdk import App

from stockday_infra.images import ImagesStack
from stockday_infra.stack import StockdayStack
from stockday_infra.stages import STAGES, load_stage

__all__ = ["build_app"]


def build_app(app: App | None = None) -> App:
    """Add the image registry and one stack per stage (named from its env file) to ``app``."""
    app = app or App()
    stages = [load_stage(name) for name in STAGES]
    production = next(stage for stage in stages if stage.production)
    # The registry sits next to production; every stage pulls the same images from it.
    ImagesStack(
        app,
        account=os.environ.get("CDK_DEFAULT_ACCOUNT"),
        region=production.settings.aws_region,
    )
    for stage in stages:
        StockdayStack(app, stage)
    return app
