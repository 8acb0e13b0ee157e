"""Process-wide logging for every service, configured once from the settings."""

from __future__ import annotations

import logging

from stockday.settings import Settings

_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"


def configure_logging(settings: Settings) -> None:
    """Log to stderr at ``STOCKDAY_LOG_LEVEL``; idempotent, so every entry point may call it."""
    root = logging.getLogger()
    if not getattr(root, "_stockday_configured", False):
        logging.basicConfig(level=settings.log_level.upper(), format=_FORMAT)
        root._stockday_configured = True  # type: ignore[attr-defined]
    # One line per outgoing request is noise; failures are logged by the callers.
    logging.getLogger("httpx").setLevel(logging.WARNING)
