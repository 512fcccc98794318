"""Fan-out benchmark: one published agenda event with N subscribers (10,000) → every email accepted by a
local SMTP server, through the real notification service; against a bare smtplib loop sending the same
rendered messages over one connection, in the same run.

Run from the repository root: `.venv/bin/python bench/notify_fanout.py [-n 10000]` (`make bench`). It
starts its own nx-27017, a throw-away RabbitMQ vhost, one `notification` service and an aiosmtpd
server in this process; prints emails/s, the time to the last email, duplicates, the ratio to the bare
loop and the targets (printed, never asserted: exit 0 on MISS), and removes everything it created.
It runs with 1 and then 2 replicas of the notification service (`--replicas 1,2`, a fresh stack each) and
compares them at the end: the replicas claim messages from the same store, so the second may share the sending
(on 2 cores it competes for the same CPU); no email may go twice.
"""
from __future__ import annotations

import argparse
import os
import smtplib
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aiosmtpd.controller import Controller  # noqa: E402

TARGET_RATE = 200.0  # emails/s (GOV.UK Notify allows 50/s per key)
TARGET_RATIO = 0.50  # of the bare smtplib loop


class Counting:
    """Accepts everything; counts messages per recipient and remembers when the last one arrived."""

    def __init__(self):
        self.lock = threading.Lock()
        self.by_rcpt: dict[str, int] = {}
        self.total = 0
        self.last = 0.0

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.by_rcpt[rcpt] = self.by_rcpt.get(rcpt, 0) + 1
            self.total += 1
            self.last = time.perf_counter()
        return "250 OK"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=10_000, help="subscribers")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--replicas", default="1,2", help="replica counts of the notification service, in turn")
    args = parser.parse_args()
    results = {}
    for replicas in (int(n) for n in args.replicas.split(",")):
        print(f"== {replicas} replica(s) of the notification service", flush=True)
        results[replicas] = measure(args, replicas)
    print("== replicas compared (one stack each, same parameters)")
    for replicas, r in results.items():
        print(f"{replicas} replica(s): {r['rate']:.0f} emails/s (last email after {r['elapsed']:.1f}s; bare loop "
              f"{r['bare']:.0f}/s), sent per replica {r['per_replica']}, duplicates {r['duplicates']}")
    return 0


def measure(args, replicas: int) -> dict:
    from datetime import datetime, timezone

    from contracts import build_envelope
    from services.notification.channels import build_email
    from tests.support import Broker, Mongo, Platform, free_port, wait_until

    counting = Counting()
    smtp = Controller(counting, hostname="127.0.0.1", port=free_port())
    smtp.start()
    mongo, broker, platform = Mongo(), Broker(), None
    try:
        mongo.start()
        broker.start()
        platform = Platform(mongo, broker, SMTP_URL=f"smtp://127.0.0.1:{smtp.port}", PARVIS_NOTIFY_INTERVAL="0.2",
                            PARVIS_NOTIFY_BATCH="250", PARVIS_LOG_LEVEL=os.environ.get("PARVIS_LOG_LEVEL", "WARNING"))
        mongo.drop_all()
        for r in range(1, replicas + 1):
            platform.service("notification", PARVIS_METRICS_PORT=str(platform.metrics_port("notification", r)))
        db = mongo.client().parvis_notification
        now = datetime.now(timezone.utc)
        subs = [{"_id": f"cit-{i:06d}|agenda:commune:labege|email", "recipient": f"cit-{i:06d}",
                 "topic": "agenda:commune:labege", "channel": "email", "address": f"sub{i:06d}@bench.example",
                 "created_at": now} for i in range(args.n)]
        for i in range(0, len(subs), 5000):
            db.subscriptions.insert_many(subs[i:i + 5000], ordered=False)
        print(f"{args.n} subscribers of agenda:commune:labege")

        envelope = build_envelope("agenda.event_published", {
            "id": "evt-bench", "title": "Concert du marché", "organizer": "org-unknown", "commune": "labege",
            "category": "concert", "starts_at": "2026-12-05T17:30:00Z", "ends_at": "2026-12-05T19:00:00Z",
            "moderation_state": "published"}, "agenda")
        from kombu import Connection, Exchange, Producer

        started = time.perf_counter()
        with Connection(broker.url) as conn:
            exchange = Exchange("agenda.events", type="topic", durable=True)
            Producer(conn).publish(envelope, exchange=exchange, routing_key=envelope["type"], serializer="json",
                                   declare=[exchange], delivery_mode=2)
        created_at = [None]

        def all_created():
            # Polled cheaply, and only until they are all there: on nx-27017 a count_documents over 10,000
            # documents costs ~0.3 s of the database's time, which polling it every 0.5 s took from the
            # service being measured. The collection is empty before the event (drop_all), so the
            # collection's count says when to confirm with the exact count, once.
            if (created_at[0] is None and db.notifications.estimated_document_count() >= args.n
                    and db.notifications.count_documents({"event_id": envelope["event_id"]}) >= args.n):
                created_at[0] = time.perf_counter()
            return counting.total >= args.n

        wait_until(all_created, args.timeout, 0.5, f"{args.n} emails accepted")
        elapsed = counting.last - started
        duplicates = counting.total - len(counting.by_rcpt)
        rate = args.n / elapsed

        # The service idle again (receipts published) before the bare loop, so that neither run shares the CPU.
        print(f"all {args.n} emails accepted after {counting.last - started:.1f}s", flush=True)

        def drained_now():
            left = db.notifications.count_documents({"_outbox_n": {"$gt": 0}})
            print(f"  receipts still in the outbox: {left}", flush=True)
            return left == 0

        wait_until(drained_now, 300, 5.0, "receipts out")
        drained = time.perf_counter() - started
        # The bare loop: the same rendered messages, one connection, nothing else.
        docs = list(db.notifications.find({"event_id": envelope["event_id"]}))
        messages = [build_email("ne-pas-repondre@parvis.localhost", d["address"], d["content"], d["unsubscribe_url"],
                                d["_id"]) for d in docs]
        bare = Counting()
        bare_smtp = Controller(bare, hostname="127.0.0.1", port=free_port())
        bare_smtp.start()
        t0 = time.perf_counter()
        with smtplib.SMTP("127.0.0.1", bare_smtp.port) as conn:
            for doc, msg in zip(docs, messages):
                conn.sendmail("ne-pas-repondre@parvis.localhost", [doc["address"]], msg)
        bare_elapsed = time.perf_counter() - t0
        bare_smtp.stop()
        bare_rate = len(messages) / bare_elapsed

        statuses = {s: db.notifications.count_documents({"event_id": envelope["event_id"], "status": s})
                    for s in ("created", "sending", "delivered", "temporary-failure", "permanent-failure")}
        print(f"notifications created by the service: {len(docs)}"
              + (f" in {created_at[0] - started:.1f}s" if created_at[0] else ""))
        print(f"service   : {args.n} emails accepted in {elapsed:.1f}s (time to the last one) = {rate:.0f} emails/s; "
              f"duplicates {duplicates}; statuses {statuses}")
        print(f"receipts  : every notification.delivered event published {drained:.1f}s after the event")
        print(f"bare loop : {len(messages)} emails in {bare_elapsed:.1f}s = {bare_rate:.0f} emails/s (smtplib, one connection)")
        print(f"targets   : ≥ {TARGET_RATE:.0f} emails/s: {'OK' if rate >= TARGET_RATE else 'MISS'}; "
              f"≥ {TARGET_RATIO:.0%} of bare ({rate / bare_rate:.0%}): {'OK' if rate >= TARGET_RATIO * bare_rate else 'MISS'}; "
              f"zero duplicates: {'OK' if duplicates == 0 else 'MISS'}")
        per_replica = [int(platform.metric("notification", "parvis_notifications_total", replica=r, channel="email",
                                           status="delivered") or 0) for r in range(1, replicas + 1)]
        return {"rate": rate, "elapsed": elapsed, "bare": bare_rate, "duplicates": duplicates,
                "per_replica": per_replica}
    finally:
        if platform is not None:
            if os.environ.get("NOTIFY_BENCH_LOG") and platform.procs:
                Path(os.environ["NOTIFY_BENCH_LOG"]).write_text(platform.procs[0].output())
            platform.stop()
        broker.stop()
        mongo.stop()
        smtp.stop()


if __name__ == "__main__":
    raise SystemExit(main())
