"""What the notification service answers about its documents: notifications and subscriptions as their contracts
say (only the contract's fields)."""
from __future__ import annotations

from contracts import notification as c


def _only(model, doc: dict) -> dict:
    return {k: doc.get(k) for k in model.model_fields if k in doc}


def notification(doc: dict) -> dict:
    content = doc.get("content") or {}
    return _only(c.Notification, {**doc, "id": doc["_id"], "subject": content.get("subject"),
                                  "text": content.get("text")})


def subscription(doc: dict) -> dict:
    return _only(c.Subscription, {**doc, "id": doc["_id"], "digest": bool(doc.get("digest"))})
