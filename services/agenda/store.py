"""MongoDB access of the agenda service (database parvis_agenda)."""
from __future__ import annotations

from pymongo import ASCENDING, IndexModel, UpdateOne

from services.common.mongo import Repository, utcnow


class AgendaStore(Repository):
    indexes = {
        "organizations": [IndexModel([("slug", ASCENDING)], unique=True), IndexModel([("kind", ASCENDING)])],
    }
    outbox_collections = ("organizations",)

    def upsert_reference(self, collection: str, items: list[dict]) -> int:
        if not items:
            return 0
        self.db[collection].bulk_write(
            [UpdateOne({"_id": it["slug"]}, {"$set": it}, upsert=True) for it in items], ordered=False
        )
        return len(items)

    def list_reference(self, collection: str) -> list[dict]:
        return [self.public(d) for d in self.db[collection].find({}, {"_id": 0}).sort("name", ASCENDING)]

    def get_organization(self, org_id: str) -> dict | None:
        return self.public(self.db.organizations.find_one({"_id": org_id}))

    def save_organization(self, org: dict, event: dict) -> None:
        """Create or update an organisation, with the event announcing it, in one document write."""
        update = self.with_events({"$set": {**org, "updated_at": utcnow()}}, [event])
        self.db.organizations.update_one({"_id": org["id"]}, update, upsert=True)

    def list_organizations(self, kind: str | None) -> list[dict]:
        query = {"kind": kind} if kind else {}
        docs = self.db.organizations.find(query).sort("name", ASCENDING)
        return [{k: d.get(k) for k in ("id", "slug", "name", "kind", "commune", "contact_email")} for d in docs]
