"""JSON-lines log formatting shared by the services, the gateway and the supervisor (no nameko import here)."""
from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

# Histogram buckets shared by every process; they include the SLO bounds the dashboards use:
# 5 ms (cached reads), 50 ms (public queries), 250 ms (writes), 1 s (readiness), 5 s (slow handlers).
SLO_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, service, logger, msg, plus what `context()` adds."""

    extra_keys = ("event_id", "event_type", "queue", "attempt", "correlation_id")

    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def context(self) -> dict:
        return {}

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update(self.context())
        for key in self.extra_keys:
            if key not in line and hasattr(record, key):
                line[key] = getattr(record, key)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure(formatter: logging.Formatter, level: str = "INFO", quiet: tuple[str, ...] = ()) -> None:
    import sys

    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in quiet:
        logging.getLogger(name).setLevel(logging.WARNING)
