"""MongoDB access of the notification service (database parvis_notification)."""
from __future__ import annotations

from pymongo import ASCENDING, IndexModel

from services.common.mongo import Repository, utcnow


class NotificationStore(Repository):
    indexes = {
        "revoked_tokens": [IndexModel([("expires_at", ASCENDING)])],
    }

    def revoke(self, token_id: str, expires_at, reason: str) -> dict:
        doc = {"_id": token_id, "expires_at": expires_at, "reason": reason, "revoked_at": utcnow()}
        self.db.revoked_tokens.update_one({"_id": token_id}, {"$set": doc}, upsert=True)
        return {"token_id": token_id, "expires_at": expires_at}

    def revoked(self) -> list[dict]:
        docs = self.db.revoked_tokens.find({"expires_at": {"$gt": utcnow()}})
        return [{"token_id": d["_id"], "expires_at": d["expires_at"]} for d in docs]

    def save_organization_contact(self, org: dict, event_id: str, occurred_at) -> bool:
        """Keep the newest version only: an older event arriving late does not overwrite a newer one."""
        result = self.db.organization_contacts.update_one(
            {"_id": org["id"], "$or": [{"occurred_at": {"$lt": occurred_at}}, {"occurred_at": {"$exists": False}}]},
            {"$set": {"name": org["name"], "contact_email": org.get("contact_email"), "occurred_at": occurred_at,
                      "event_id": event_id},
             "$inc": {"applied": 1}},
        )
        if result.matched_count:
            return True
        if self.db.organization_contacts.find_one({"_id": org["id"]}, {"_id": 1}) is None:
            self.db.organization_contacts.insert_one({
                "_id": org["id"], "name": org["name"], "contact_email": org.get("contact_email"),
                "occurred_at": occurred_at, "event_id": event_id, "applied": 1})
            return True
        return False

    def organization_contact(self, org_id: str) -> dict | None:
        return self.db.organization_contacts.find_one({"_id": org_id})
