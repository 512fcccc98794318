"""What the satisfaction service answers about its documents: sites, kiosks and alerts as their contracts say."""
from __future__ import annotations

from services.satisfaction import domain

KIOSK_FIELDS = ("name", "question", "scale", "follow_up", "comments", "opening_hours", "repeat_seconds", "battery",
                "queue_length", "app_version")


def site_view(doc: dict) -> dict:
    return {"id": doc["_id"], "name": doc["name"], "commune": doc["commune"], "competence": doc["competence"],
            "alerts": doc.get("alerts") or {}, "open_alert_id": doc.get("open_alert_id")}


def kiosk_view(doc: dict, site_name: str) -> dict:
    out = {k: doc.get(k) for k in KIOSK_FIELDS if doc.get(k) is not None}
    out.update(id=doc["_id"], site_id=doc["site_id"], site_name=site_name,
               revoked=doc.get("revoked_ts") is not None, offline=doc.get("offline_ts") is not None,
               last_seen_at=domain.from_ts(doc.get("last_seen_ts")))
    return out


def alert_view(doc: dict) -> dict:
    return {"id": doc["_id"], "resolved_at": domain.from_ts(doc.get("resolved_ts")),
            **{k: doc.get(k) for k in ("site_id", "site_name", "kiosk_id", "rule", "counts", "raised_at")}}


def heartbeat_reply(kiosk: dict, site: dict, now) -> dict:
    return {"id": kiosk["_id"], "name": kiosk["name"], "site_name": site["name"], "question": kiosk["question"],
            "scale": kiosk.get("scale", 4), "follow_up": kiosk.get("follow_up"),
            "comments": bool(kiosk.get("comments")), "server_time": now}
