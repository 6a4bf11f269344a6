"""How a Kapok process logs: text (the default) or, with ``KAPOK_LOG_FORMAT=json``, one JSON
object a line for a log shipper (Loki, Elasticsearch, CloudWatch) to read without a parser.

A JSON line holds ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, ``service``
and ``instance`` (`Settings.instance`), and where known ``correlation_id`` (the command being
handled: `correlation`, set by the command transport) and any of `CARRIED` a call passed as
``extra``; an exception's traceback as ``exception``. Nothing else of a record is copied:
what a line says is what its message says, and messages name no token and no person (README,
"Personal data").

uvicorn configures its own loggers with text formatters unless told not to: `uvicorn_config`
is what `shared.service.process.http_config` gives it.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

from uvicorn.config import LOGGING_CONFIG

Format = Literal["text", "json"]
TEXT = "%(asctime)s %(name)s %(message)s"

# The correlation id of the command this task handles (shared/service/transport.py sets it;
# a context variable, so each request's task sees its own).
correlation: ContextVar[str | None] = ContextVar("kapok_correlation", default=None)

# What a call may pass as ``extra`` to be kept in a JSON line: identifiers, never content.
CARRIED = ("event_id", "event_ids", "causation_id", "stream", "position", "consumer", "lease")

_configured: Format = "text"


class JsonFormatter(logging.Formatter):
    """A record as one JSON object (one line: newlines in a message are escaped)."""

    def __init__(self, service: str, instance: str) -> None:
        super().__init__()
        self.service, self.instance = service, instance

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "service": self.service,
            "instance": self.instance,
        }
        if (correlation_id := correlation.get()) is not None:
            line["correlation_id"] = correlation_id
        for name in CARRIED:
            if (value := record.__dict__.get(name)) is not None:
                line[name] = value if isinstance(value, int | float | bool) else _text(value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def _text(value: Any) -> Any:
    if isinstance(value, list | tuple | set | frozenset):
        return [str(v) for v in value]
    return str(value)


def configure(service: str, instance: str, fmt: Format, level: int = logging.INFO) -> None:
    """The root logger's one handler, on stderr, in ``fmt``. Called once, before the
    service starts (`kapok serve`)."""
    global _configured
    _configured = fmt
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(service, instance))
    else:
        handler.setFormatter(logging.Formatter(TEXT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def uvicorn_config() -> dict[str, Any] | None:
    """uvicorn's ``log_config``: its own (text) unless this process logs JSON, when its
    loggers pass their records to the root's handler instead."""
    return None if _configured == "json" else LOGGING_CONFIG
