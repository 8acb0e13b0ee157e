"""Process-wide logging for every service, configured once from the settings.

JSON lines by default (one object per line: time, level, logger, message, service, pid, and the
request id and trace id of the request or message being handled), so that a log pipeline can
index them; ``STOCKDAY_LOG_FORMAT=text`` gives plain lines for reading in a terminal.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime

from stockday.runtime.settings import Settings
from stockday.runtime.tracing import current_trace_id

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


class JsonFormatter(logging.Formatter):
    """One JSON object per record; exceptions as one escaped string, never several lines."""

    def __init__(self, service: str | None) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        if self.service:
            entry["service"] = self.service
        if (rid := request_id.get()) is not None:
            entry["request_id"] = rid
        if (tid := current_trace_id()) is not None:
            entry["trace_id"] = tid
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(settings: Settings, service: str | None = None) -> None:
    """Log to stderr at ``STOCKDAY_LOG_LEVEL``; idempotent, so every entry point may call it."""
    root = logging.getLogger()
    if not getattr(root, "_stockday_configured", False):
        handler = logging.StreamHandler()
        if settings.log_format == "json":
            handler.setFormatter(JsonFormatter(service))
        else:
            handler.setFormatter(logging.Formatter(_TEXT_FORMAT))
        root.handlers[:] = [handler]
        root.setLevel(settings.log_level.upper())
        root._stockday_configured = True  # type: ignore[attr-defined]
    # One line per outgoing request is noise; failures are logged by the callers.
    logging.getLogger("httpx").setLevel(logging.WARNING)
