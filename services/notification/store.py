"""MongoDB access of the notification service (database parvis_notification)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from services.common.mongo import Repository, utcnow
from services.notification import domain

DUPLICATE_KEY = 11000
# A worker that died mid-batch: its claims are picked up again after this long (the crash test shortens it).


class NotificationStore(Repository):
    indexes = {
        "revoked_tokens": [IndexModel([("expires_at", ASCENDING)])],
        "citizens": [IndexModel([("email", ASCENDING)], unique=True)],
        "accounts": [IndexModel([("role", ASCENDING)])],
        "sessions": [IndexModel([("email", ASCENDING)]), IndexModel([("expires_ts", ASCENDING)])],
        "subscriptions": [IndexModel([("topic", ASCENDING)]),  # nx-27017: no _id in a compound index
                          IndexModel([("recipient", ASCENDING)])],
        # `due` exists only while a notification waits to be sent (created, retry, claimed): the
        # dispatcher's poll reads this small index instead of scanning every notification ever sent.
        "notifications": [IndexModel([("due", ASCENDING)], sparse=True),
                          IndexModel([("claim", ASCENDING)]),
                          IndexModel([("status", ASCENDING)]),
                          IndexModel([("recipient", ASCENDING), ("channel", ASCENDING), ("created_at", DESCENDING)]),
                          IndexModel([("event_id", ASCENDING)]),
                          # Receipts waiting for the partners' webhooks (only while webhooks are registered).
                          IndexModel([("callback_due", ASCENDING)], sparse=True)],
        "rate_limits": [IndexModel([("expires_at", ASCENDING)])],
        "webhooks": [IndexModel([("partner", ASCENDING)])],
        # Other services' events for partners' webhooks (payments of their régies), one per event, until sent.
        "webhook_events": [IndexModel([("callback_due", ASCENDING)], sparse=True)],
        # The daily digest: one small document per published event (its topics), read by publication time.
        "digest_items": [IndexModel([("ts", ASCENDING)])],
    }
    outbox_collections = ("notifications",)

    # -- token revocations (used by the gateway) -----------------------------------------------
    def revoke(self, token_id: str, expires_at, reason: str) -> dict:
        doc = {"_id": token_id, "expires_at": expires_at, "reason": reason, "revoked_at": utcnow()}
        # replace_one, not $set: nx-27017 reads back a datetime written by $set as a string.
        self.db.revoked_tokens.replace_one({"_id": token_id}, doc, upsert=True)
        self.db.sessions.delete_one({"_id": token_id})  # a signed-in person's session ends with its token
        return {"token_id": token_id, "expires_at": expires_at}

    def revoked(self) -> list[dict]:
        docs = self.db.revoked_tokens.find({"expires_at": {"$gt": utcnow()}})
        return [{"token_id": d["_id"], "expires_at": d["expires_at"]} for d in docs]

    # -- accounts (roles granted to addresses) and the sessions they open -------------------------
    def account(self, email: str) -> dict | None:
        return self.db.accounts.find_one({"_id": email})

    def save_account(self, doc: dict) -> dict:
        # replace_one, not $set: nx-27017 reads back a datetime written by $set as a string.
        self.db.accounts.replace_one({"_id": doc["_id"]}, doc, upsert=True)
        return doc

    def delete_account(self, email: str) -> dict | None:
        return self.db.accounts.find_one_and_delete({"_id": email})

    def accounts(self, role: str | None, org: str | None) -> list[dict]:
        query = {k: v for k, v in (("role", role), ("org", org)) if v}
        return list(self.db.accounts.find(query).sort("_id", ASCENDING))

    def open_session(self, doc: dict) -> None:
        """Times as datetimes for reading, `expires_ts` as epoch seconds for the queries (see claim_due)."""
        self.db.sessions.insert_one({**doc, "expires_ts": doc["expires_at"].timestamp()})

    def live_sessions(self, now: datetime, email: str | None = None, limit: int = 1000) -> list[dict]:
        query: dict = {"expires_ts": {"$gt": now.timestamp()}}
        if email:
            query["email"] = email
        return list(self.db.sessions.find(query).sort("created_at", DESCENDING).limit(limit))

    # -- organisations' contacts (from agenda.organization_upserted) ---------------------------
    def save_organization_contact(self, org: dict, event_id: str, occurred_at) -> bool:
        """Keep the newest version only: an older event arriving late does not overwrite a newer one."""
        # Ordered on epoch seconds: nx-27017 turns a datetime written by $set into a string.
        fields = {"name": org["name"], "contact_email": org.get("contact_email"), "kind": org.get("kind"),
                  "commune": org.get("commune"), "occurred_ts": occurred_at.timestamp(), "event_id": event_id}
        result = self.db.organization_contacts.update_one(
            {"_id": org["id"], "occurred_ts": {"$lt": fields["occurred_ts"]}},
            {"$set": fields, "$inc": {"applied": 1}},
        )
        if result.matched_count:
            return True
        if self.db.organization_contacts.find_one({"_id": org["id"]}, {"_id": 1}) is None:
            self.db.organization_contacts.insert_one({"_id": org["id"], **fields, "applied": 1})
            return True
        return False

    def organization_contact(self, org_id: str) -> dict | None:
        return self.db.organization_contacts.find_one({"_id": org_id})

    def commune_name(self, slug: str) -> str:
        doc = self.db.organization_contacts.find_one({"kind": "commune", "commune": slug}, {"name": 1})
        if doc and doc.get("name"):
            name = doc["name"]
            for prefix in ("Mairie de ", "Mairie d'", "Mairie d’"):
                name = name.removeprefix(prefix)
            return name
        return "-".join(part.capitalize() for part in slug.split("-"))

    # -- citizens and sign-in codes ------------------------------------------------------------
    def citizen(self, citizen_id: str) -> dict | None:
        return self.db.citizens.find_one({"_id": citizen_id})

    def ensure_citizen(self, citizen_id: str, email: str) -> dict:
        now = utcnow()
        try:
            return self.db.citizens.find_one_and_update(
                {"_id": citizen_id}, {"$set": {"email": email, "last_sign_in_at": now},
                                      "$setOnInsert": {"created_at": now}},
                upsert=True, return_document=ReturnDocument.AFTER)
        except DuplicateKeyError:  # two verifications at once
            return self.db.citizens.find_one({"_id": citizen_id})

    def set_citizen_phone(self, citizen_id: str, phone: str) -> None:
        self.db.citizens.update_one({"_id": citizen_id}, {"$set": {"phone": phone}})

    def hit_rate_limit(self, key: str, window: timedelta, now: datetime) -> int:
        """Count one hit in the current fixed window of `key`; returns the hits so far."""
        start = int(now.timestamp() // window.total_seconds())
        doc = self.db.rate_limits.find_one_and_update(
            {"_id": f"{key}:{start}"}, {"$inc": {"hits": 1}, "$set": {"expires_at": now + window}},
            upsert=True, return_document=ReturnDocument.AFTER)
        return int(doc["hits"])

    def save_login_code(self, email: str, digest: str, expires_at: datetime) -> None:
        # Epoch seconds: a datetime written by $set comes back from nx-27017 as a string (see claim_due).
        self.db.login_codes.update_one({"_id": email}, {"$set": {
            "digest": digest, "expires": expires_at.timestamp(), "attempts": 0}}, upsert=True)

    def take_login_attempt(self, email: str, now: datetime, max_attempts: int) -> dict | None:
        """Count one attempt against the live code; None when there is none, it expired or is locked."""
        return self.db.login_codes.find_one_and_update(
            {"_id": email, "expires": {"$gt": now.timestamp()}, "attempts": {"$lt": max_attempts}},
            {"$inc": {"attempts": 1}}, return_document=ReturnDocument.AFTER)

    def delete_login_code(self, email: str) -> None:
        self.db.login_codes.delete_one({"_id": email})

    # -- subscriptions ---------------------------------------------------------------------------
    def subscribe(self, doc: dict) -> dict:
        fields = {k: v for k, v in doc.items() if k != "_id"}  # nx-27017 refuses $set of _id, even unchanged
        self.db.subscriptions.update_one({"_id": doc["_id"]}, {"$set": fields}, upsert=True)
        return doc

    def unsubscribe(self, subscription_id: str, recipient: str | None = None) -> bool:
        query = {"_id": subscription_id}
        if recipient is not None:
            query["recipient"] = recipient
        return self.db.subscriptions.delete_one(query).deleted_count == 1

    def subscriptions_of(self, recipient: str) -> list[dict]:
        return list(self.db.subscriptions.find({"recipient": recipient}).sort("_id", ASCENDING))

    def subscribers(self, topic: str, batch: int = 1000):
        """Subscriptions of `topic` told of each event (not those with a digest), in pages by _id (a stable
        order that survives concurrent writes)."""
        last = None
        while True:
            query = {"topic": topic, "digest": {"$ne": True}}  # matches subscriptions from before digests too
            if last is not None:
                query["_id"] = {"$gt": last}
            page = list(self.db.subscriptions.find(query).sort("_id", ASCENDING).limit(batch))
            if not page:
                return
            yield page
            if len(page) < batch:
                return
            last = page[-1]["_id"]

    def digest_subscribers(self, topics: list[str]):
        """Digest subscriptions of any of `topics`: one cursor, unsorted (on nx-27017, pages sorted by _id
        cost ten times as much; a subscription seen twice is grouped with itself by the caller)."""
        return self.db.subscriptions.find(
            {"topic": {"$in": topics}, "digest": True},
            {"recipient": 1, "topic": 1, "channel": 1, "address": 1, "quiet_from": 1, "quiet_to": 1}, batch_size=2000)

    def unsubscribe_digests(self, recipient: str, channel: str) -> list[str]:
        """The one-click link of a digest: every digest subscription of `recipient` on `channel`; their topics."""
        subs = list(self.db.subscriptions.find({"recipient": recipient, "channel": channel, "digest": True},
                                               {"topic": 1}))
        if subs:
            self.db.subscriptions.delete_many({"_id": {"$in": [s["_id"] for s in subs]}})
        return sorted(s["topic"] for s in subs)

    # -- the daily digest --------------------------------------------------------------------------
    def save_digest_item(self, item: dict) -> bool:
        """One document per published event (its id as _id: a redelivered event is not stored twice)."""
        try:
            self.db.digest_items.insert_one(item)
            return True
        except DuplicateKeyError:
            return False

    def refresh_digest_item(self, event_id: str, fields: dict) -> None:
        """A corrected event not yet in a digest is listed as it is now (no document: nothing to do)."""
        self.db.digest_items.update_one({"_id": event_id}, {"$set": fields})

    def drop_digest_item(self, event_id: str) -> None:
        """A cancelled or withdrawn event is no longer listed in the digests still to come."""
        self.db.digest_items.delete_one({"_id": event_id})

    def digest_items(self, start: float, cutoff: float) -> list[dict]:
        return list(self.db.digest_items.find({"ts": {"$gte": start, "$lt": cutoff}}))

    def digest_run(self, day: str, now: float, first_window: float, max_window: float) -> dict:
        """The window [start, cutoff) of epoch seconds of `day`'s digest, fixed by the first run of that day.

        Every run of the day (another instance, a restart, send_digests again) reads the same window,
        so each renders the same digest and the unique notification id leaves one. A window starts where
        the previous day's ended (nothing lost or listed twice), at most `max_window` before its cutoff;
        the first ever covers `first_window`.
        """
        doc = self.db.digest_runs.find_one({"_id": day})
        if doc is not None:
            return doc
        prev = self.db.digest_runs.find_one({"_id": {"$lt": day}}, sort=[("_id", DESCENDING)])
        nxt = self.db.digest_runs.find_one({"_id": {"$gt": day}}, sort=[("_id", ASCENDING)])
        cutoff = now if nxt is None else min(now, float(nxt["start"]))
        start = max(float(prev["cutoff"]), cutoff - max_window) if prev else cutoff - first_window
        doc = {"_id": day, "start": min(start, cutoff), "cutoff": cutoff, "done": False}
        try:
            self.db.digest_runs.insert_one(doc)
        except DuplicateKeyError:  # another instance fixed it first: theirs
            return self.db.digest_runs.find_one({"_id": day})
        return doc

    def digest_done(self, day: str) -> bool:
        doc = self.db.digest_runs.find_one({"_id": day}, {"done": 1})
        return bool(doc and doc.get("done"))

    def finish_digest_run(self, day: str, created: int, older_than: float) -> None:
        self.db.digest_runs.update_one({"_id": day}, {"$set": {"done": True}, "$inc": {"created": created}})
        self.db.digest_items.delete_many({"ts": {"$lt": older_than}})

    # -- notifications ---------------------------------------------------------------------------
    def insert_notifications(self, docs: list[dict]) -> int:
        """Insert new notifications; those already there (same event, recipient, channel) are left as they are."""
        return _insert_new(self.db.notifications, docs)

    def get_notification(self, notification_id: str) -> dict | None:
        return _with_dates(self.public(self.db.notifications.find_one({"_id": notification_id})))

    def claim_due(self, now: datetime, limit: int, claim: str, stale_after: float = 300.0) -> list[dict]:
        """Mark up to `limit` due notifications as sending under `claim`, and return them.

        Two dispatchers never get the same notification: the update only matches those still due.
        A claim pushes `due` `stale_after` seconds ahead (PARVIS_NOTIFY_STALE_SENDING), so a dispatcher that died mid-batch leaves its
        notifications due again later. Due times are epoch seconds: nx-27017 gives back a datetime
        written by `$set` as a string, which no longer compares with a datetime; numbers do.
        """
        ts = now.timestamp()
        fields = {"status": domain.SENDING, "claim": claim, "due": ts + stale_after}
        for _ in range(3):  # another dispatcher took all of those read: read the next ones
            due = list(self.db.notifications.find({"due": {"$lte": ts}}).sort("due", ASCENDING).limit(limit))
            if not due:
                return []
            won = self.db.notifications.update_many({"_id": {"$in": [d["_id"] for d in due]}, "due": {"$lte": ts}},
                                                    {"$set": fields}).modified_count
            if won == len(due):  # none taken by another dispatcher meanwhile: the documents read are ours
                return [{**d, **fields} for d in due]
            if won:  # among the documents just read, by id (as claim_callbacks: no query over the collection)
                return list(self.db.notifications.find({"_id": {"$in": [d["_id"] for d in due]}, "claim": claim,
                                                        "status": domain.SENDING}))
        return []

    def record_outcomes(self, claim: str, outcomes: list[tuple[str, dict, list[dict]]]) -> None:
        """One single-document update per notification, carrying its delivered/failed event (outbox).
        A `due` of None in the fields means done: the field is removed (out of the dispatcher's index)."""
        if not outcomes:
            return
        ops = []
        for nid, fields, events in outcomes:
            update: dict = {"$set": {k: v for k, v in fields.items() if not (k == "due" and v is None)},
                            "$inc": {"attempts": 1}}
            if "due" in fields and fields["due"] is None:
                update["$unset"] = {"due": ""}
            ops.append(UpdateOne({"_id": nid, "claim": claim}, self.with_events(update, events)))
        self.db.notifications.bulk_write(ops, ordered=False)

    def claim_callbacks(self, now: float, limit: int, claim: str, lease: float,
                        collection: str = "notifications") -> list[dict]:
        """Receipts (`notifications`) or other services' events (`webhook_events`) due for the webhooks, claimed
        for `lease` seconds (a process that dies mid-way leaves them due again after it); times are epoch
        seconds."""
        coll = self.db[collection]
        ids = [d["_id"] for d in coll.find({"callback_due": {"$lte": now}}, {"_id": 1}).sort(
            "callback_due", ASCENDING).limit(limit)]
        if not ids:
            return []
        coll.update_many({"_id": {"$in": ids}, "callback_due": {"$lte": now}},
                         {"$set": {"callback_due": now + lease, "callback_claim": claim}})
        # Read back by id (those of `ids` that our claim won): without the ids, nx-27017 answered the query (no index
        # on callback_claim) by reading the whole collection, which keeps every payment's webhook event (13 ms at
        # 10,000 documents, measured).
        return list(coll.find({"_id": {"$in": ids}, "callback_claim": claim, "callback_due": {"$gt": now}},
                              {"receipt": 1, "callback_attempts": 1, "callback_claim": 1, "partner": 1, "regie_id": 1}))

    def record_callbacks(self, claim: str, done: list[str], retries: list[tuple[str, float, str, bool]],
                         abandoned: list[tuple[str, str]], collection: str = "notifications") -> None:
        """Called back: the receipt is dropped; failed (or not tried, after another failed): due again at
        the given time; given up: kept with its error."""
        ops = [UpdateOne({"_id": nid, "callback_claim": claim},
                         {"$unset": {"callback_due": "", "callback_claim": "", "receipt": "", "callback_error": ""}})
               for nid in done]
        ops += [UpdateOne({"_id": nid, "callback_claim": claim},
                          {"$set": {"callback_due": at, "callback_error": error[:500]},
                           **({"$inc": {"callback_attempts": 1}} if tried else {})})
                for nid, at, error, tried in retries]
        ops += [UpdateOne({"_id": nid, "callback_claim": claim},
                          {"$set": {"callback_error": error[:500]}, "$unset": {"callback_due": "", "callback_claim": ""},
                           "$inc": {"callback_attempts": 1}}) for nid, error in abandoned]
        if ops:
            self.db[collection].bulk_write(ops, ordered=False)

    def add_webhook_events(self, docs: list[dict]) -> int:
        """Events for the webhooks, one per event id: one already there (an event delivered twice) is left alone."""
        return _insert_new(self.db.webhook_events, docs)

    def notifications_for(self, recipient: str, channel: str | None, limit: int, unread_only: bool) -> list[dict]:
        query: dict = {"recipient": recipient}
        if channel:
            query["channel"] = channel
        if unread_only:
            query["read_at"] = None
        return [_with_dates(self.public(d))
                for d in self.db.notifications.find(query).sort("created_at", DESCENDING).limit(limit)]

    def mark_read(self, recipient: str, ids: list[str], now: datetime) -> int:
        return self.db.notifications.update_many(
            {"_id": {"$in": ids}, "recipient": recipient, "channel": "in_app", "read_at": None},
            {"$set": {"read_at": now}}).modified_count

    def deliveries(self, query: dict, limit: int) -> list[dict]:
        return [_with_dates(self.public(d)) for d in self.db.notifications.find(query, {"content": 0}).sort(
            "created_at", DESCENDING).limit(limit)]

    def backlog(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for d in self.db.notifications.find({"due": {"$exists": True}}, {"channel": 1}):
            counts[d["channel"]] = counts.get(d["channel"], 0) + 1
        return counts

    # -- dev SMS provider and webhooks -------------------------------------------------------------
    def save_dev_sms(self, to: str, text: str, reference: str) -> None:
        self.db.dev_sms.update_one({"_id": reference}, {"$set": {"to": to, "text": text, "sent_at": utcnow()}},
                                   upsert=True)

    def add_webhook(self, doc: dict) -> dict:
        self.db.webhooks.insert_one(doc)
        return doc

    def remove_webhook(self, hook_id: str) -> dict | None:
        return self.db.webhooks.find_one_and_delete({"_id": hook_id})

    def webhooks(self) -> list[dict]:
        return list(self.db.webhooks.find({}))


def _insert_new(collection, docs: list[dict]) -> int:
    """Insert documents; those already there (same _id) are left as they are. Returns how many were new."""
    if not docs:
        return 0
    try:
        return len(collection.insert_many(docs, ordered=False).inserted_ids)
    except BulkWriteError as exc:
        if [e for e in exc.details.get("writeErrors", []) if e.get("code") != DUPLICATE_KEY]:
            raise
        return exc.details.get("nInserted", 0)


def _with_dates(doc: dict | None) -> dict | None:
    """A notification with its times as UTC datetimes: nx-27017 gives back a datetime written by `$set` (delivered,
    failed, read, next attempt) as a naive 'YYYY-MM-DD HH:MM:SS' string, MongoDB as a datetime."""
    if doc is not None:
        for key, value in doc.items():
            if key.endswith("_at") and isinstance(value, str):
                doc[key] = datetime.fromisoformat(value).replace(tzinfo=timezone.utc)
    return doc
