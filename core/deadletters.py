"""The dead-letter queue as operators read it: list its messages and send them back to their handler (`parvis dlq`,
and the operators' `deadLetters` / `replayDeadLetters` in GraphQL). Blocking (kombu): the gateway runs it in a
thread."""
from __future__ import annotations

import json

from kombu import Connection, Queue

DEAD_LETTER_QUEUE = "parvis.dead-letters"


def _messages(conn: Connection):
    channel = conn.channel()
    Queue(DEAD_LETTER_QUEUE, durable=True, channel=channel).declare()
    taken = []
    while True:
        message = channel.basic_get(DEAD_LETTER_QUEUE, no_ack=False)
        if message is None:
            break
        taken.append(message)
    return channel, taken


def describe(message) -> dict:
    headers = message.headers or {}
    try:
        body = json.loads(message.body)
    except (ValueError, TypeError):
        body = {}
    event_id = body.get("event_id") if isinstance(body, dict) else None
    return {
        "id": f"{event_id or message.delivery_tag}@{headers.get('x-parvis-handler', '?')}",
        "event_id": event_id,
        "type": body.get("type") if isinstance(body, dict) else None,
        "queue": headers.get("x-parvis-original-queue"),
        "handler": headers.get("x-parvis-handler"),
        "attempts": headers.get("x-parvis-attempts"),
        "dead_lettered_at": headers.get("x-parvis-dead-lettered-at"),
        "error": headers.get("x-parvis-error"),
    }


def list_dead_letters(amqp_url: str) -> list[dict]:
    """Every dead letter, left in the queue (taken unacknowledged, given back on close)."""
    with Connection(amqp_url) as conn:
        channel, taken = _messages(conn)
        rows = [describe(m) for m in taken]
        channel.close()  # unacknowledged: the broker puts them back
    return rows


def replay(amqp_url: str, ids: set[str] | None = None) -> list[dict]:
    """Send the chosen dead letters (all when `ids` is None) back to their queue, attempts reset."""
    replayed = []
    with Connection(amqp_url, transport_options={"confirm_publish": True}) as conn:
        channel, taken = _messages(conn)
        producer = conn.Producer(channel=conn.channel())
        for message in taken:
            row = describe(message)
            chosen = ids is None or row["id"] in ids or (row["event_id"] in ids if row["event_id"] else False)
            if not chosen or not row["queue"]:
                continue  # left unacknowledged: back in the queue when the channel closes
            headers = {k: v for k, v in (message.headers or {}).items() if not k.startswith("x-parvis-")}
            producer.publish(message.body, exchange="", routing_key=row["queue"], headers=headers,
                             content_type=message.content_type or "application/json",
                             content_encoding=message.content_encoding or "utf-8", delivery_mode=2)
            channel.basic_ack(message.delivery_tag)
            replayed.append(row)
        channel.close()  # the ones not chosen go back to the queue
    return replayed
