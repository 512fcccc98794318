"""The agenda service's business metrics: moderation and status transitions, the moderation queue, the time an
agent takes to decide."""
from __future__ import annotations

from datetime import datetime

from prometheus_client import Counter, Gauge, Histogram

from core.logjson import SLO_BUCKETS

TRANSITIONS = Counter("parvis_agenda_transitions_total", "Agenda moderation and status transitions",
                      ["action", "outcome"])
QUEUE_SIZE = Gauge("parvis_agenda_moderation_queue", "Events and revisions waiting for moderation", ["kind"])
TIME_TO_DECISION = Histogram("parvis_agenda_time_to_decision_seconds", "From submission to an agent's decision",
                             ["decision"], buckets=SLO_BUCKETS + (3600.0, 86400.0, 7 * 86400.0))


def queue_size(counts: dict) -> None:
    QUEUE_SIZE.labels("event").set(counts["submitted"])
    QUEUE_SIZE.labels("revision").set(counts["revisions"])


def decided(decision: str, outcome: tuple[str, str], queued_at: datetime | None, now: datetime) -> None:
    """An agent's decision: the transition (action, resulting state) and, when known, how long it waited."""
    TRANSITIONS.labels(*outcome).inc()
    if queued_at is not None:
        TIME_TO_DECISION.labels(decision).observe(max(0.0, (now - queued_at).total_seconds()))
