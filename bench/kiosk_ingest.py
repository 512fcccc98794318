"""Kiosk ingest benchmark: simulated kiosks send 100-vote batches through the gateway (GraphQL over HTTP).

Run from the repository root: `.venv/bin/python bench/kiosk_ingest.py [--votes 30000] [--runs 3] [--kiosks 20]`.
It starts its own nx-27017, a throw-away RabbitMQ vhost, the satisfaction service and the gateway, then
measures two paths in `--runs` alternating runs each (end to end then raw, raw then end to end, ...), so that
drift on the machine (the database growing, other load) falls on both alike; each path's rate is its votes
over its runs' time taken together:
1. end to end: every kiosk sends its batches one after the other (accept latency per batch); a run ends when
   every accepted vote is visible in `satisfaction(...)`; sustained votes/s = votes / (first send -> all visible);
   ingest lag from the service's histograms (pressed -> counted, received -> counted);
2. the raw path: the same batches published straight to RabbitMQ with kombu and bulk-inserted
   (insert_many ordered=False) into the same MongoDB by a bare consumer;
3. then single-vote submits (one vote a call, as many calls in flight as kiosks): votes/s.
Figures and targets are printed, never asserted (exit 0 on MISS).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.httpload import Connection  # noqa: E402

from services.satisfaction.settings import SatisfactionSettings  # noqa: E402
from tests.support import Broker, Mongo, Platform, token, wait_until  # noqa: E402

SUBMIT = "mutation($v: [KioskVoteInput!]!) { submitKioskVotes(votes: $v) { accepted duplicates rejected { id } } }"
TARGETS = {"votes_per_s": 3000, "ratio_raw": 0.60, "lag_p99_s": 2.0, "single_per_s": 300}


def log(msg: str) -> None:
    print(f"bench | {msg}", flush=True)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def make_votes(n: int, start: datetime) -> list[dict]:
    return [{"id": str(uuid.uuid4()), "rating": (i % 4) + 1, "pressedAt": (start + timedelta(milliseconds=i)).isoformat()}
            for i in range(n)]


def histogram(url: str, name: str, label: str) -> list[tuple[float, float]]:
    """Cumulative buckets (le, count) of one labelled histogram from a /metrics page."""
    out = []
    for line in httpx.get(url, timeout=5).text.splitlines():
        if line.startswith(name + "_bucket{") and label in line:
            le = line.split('le="')[1].split('"')[0]
            out.append((float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
    return sorted(out)


def quantile_from_buckets(before, after, q: float) -> float:
    counts = [(le, a - b) for (le, a), (_, b) in zip(after, before)]
    total = counts[-1][1] if counts else 0
    for le, c in counts:
        if total and c >= q * total:
            return le
    return float("nan")


async def end_to_end(platform, tokens: list[str], votes_per_kiosk: int, batch: int) -> dict:
    latencies: list[float] = []
    accepted = 0
    start_press = datetime.now(timezone.utc) - timedelta(minutes=1)

    # One keep-alive connection per kiosk with bench/httpload.py (as in the single-vote phase): httpx's async
    # client costs this 2-core machine about a sixth of a core at these rates, CPU taken from the platform.
    parts = urlsplit(platform.url)

    async def kiosk(tok: str):
        nonlocal accepted
        conn = Connection(parts.hostname, parts.port)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {tok}"}
        try:
            for b in range(votes_per_kiosk // batch):
                votes = make_votes(batch, datetime.now(timezone.utc) - timedelta(seconds=1))
                body = json.dumps({"query": SUBMIT, "variables": {"v": votes}}).encode()
                while True:
                    t0 = time.perf_counter()
                    try:
                        r = await conn.request("POST", "/graphql", body, headers)
                        report = r.json()["data"]["submitKioskVotes"]
                    except Exception as exc:  # noqa: BLE001 - a kiosk retries (on a new connection)
                        log(f"retry after {exc!r}")
                        conn.close()
                        conn = Connection(parts.hostname, parts.port)
                        continue
                    latencies.append(time.perf_counter() - t0)
                    accepted += len(report["accepted"])
                    break
        finally:
            conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(kiosk(t) for t in tokens))
    sent = time.perf_counter()
    return {"latencies": latencies, "accepted": accepted, "t0": t0, "sent": sent, "start_press": start_press}


async def singles(platform, tokens: list[str], calls_per_kiosk: int) -> tuple[float, list[float]]:
    latencies = []

    # One keep-alive connection per kiosk with bench/httpload.py: httpx's async client tops out near
    # 200 requests/s on this machine, which is what this phase measured before.
    parts = urlsplit(platform.url)

    async def kiosk(tok):
        conn = Connection(parts.hostname, parts.port)
        try:
            for _ in range(calls_per_kiosk):
                t = time.perf_counter()
                body = json.dumps({"query": SUBMIT, "variables": {"v": make_votes(1, datetime.now(timezone.utc))}})
                r = await conn.request("POST", "/graphql", body.encode(), {"Content-Type": "application/json",
                                                                           "Authorization": f"Bearer {tok}"})
                assert len(r.json()["data"]["submitKioskVotes"]["accepted"]) == 1, r.body[:300]
                latencies.append(time.perf_counter() - t)
        finally:
            conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(kiosk(t) for t in tokens))
    return len(tokens) * calls_per_kiosk / (time.perf_counter() - t0), latencies


def raw_path(amqp_url: str, mongo_url: str, total: int, batch: int) -> tuple[int, float]:
    """Publish the batches with kombu; a bare consumer bulk-inserts them. (votes inserted, seconds from the first
    publish to the last insert)."""
    from kombu import Connection, Queue
    from pymongo import MongoClient
    from pymongo.errors import BulkWriteError

    queue = Queue(f"bench-raw-{uuid.uuid4().hex[:6]}", durable=True)
    coll = MongoClient(mongo_url)["parvis_bench_raw"]["votes"]
    done = threading.Event()
    inserted = [0]

    def consume():
        with Connection(amqp_url) as conn:
            def on_message(body, message):
                docs = [{"_id": v["id"], "rating": v["rating"], "pressed_at": v["pressedAt"],
                         "received_at": datetime.now(timezone.utc)} for v in body]
                try:
                    coll.insert_many(docs, ordered=False)
                    inserted[0] += len(docs)
                except BulkWriteError as exc:
                    inserted[0] += exc.details["nInserted"]
                message.ack()
                if inserted[0] >= total:
                    done.set()
            with conn.Consumer(queue, callbacks=[on_message], prefetch_count=10):
                while not done.is_set():
                    try:
                        conn.drain_events(timeout=1)
                    except TimeoutError:
                        pass

    with Connection(amqp_url) as conn:
        queue(conn.default_channel).declare()
    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    batches = [make_votes(batch, datetime.now(timezone.utc)) for _ in range(total // batch)]
    t0 = time.perf_counter()
    with Connection(amqp_url) as conn:
        producer = conn.Producer(serializer="json")
        for votes in batches:
            producer.publish(votes, routing_key=queue.name, delivery_mode=2, declare=[queue])
    done.wait(300)
    elapsed = time.perf_counter() - t0
    with Connection(amqp_url) as conn:
        queue(conn.default_channel).delete()
    return inserted[0], elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=int, default=30000, help="votes a run (end to end, and raw)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each path, alternating")
    parser.add_argument("--kiosks", type=int, default=20)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--singles", type=int, default=2000, help="single-vote submits")
    parser.add_argument("--max-workers", type=int, default=None,
                        help="PARVIS_MAX_WORKERS of the service (default: the service's own, see parvis/runner.py)")
    args = parser.parse_args()

    mongo, broker = Mongo().start(), Broker().start()
    env = {} if args.max_workers is None else {"PARVIS_MAX_WORKERS": str(args.max_workers)}
    platform = Platform(mongo, broker, **env)
    try:
        platform.service("satisfaction")
        platform.service("notification")  # the revocation list: without it, the gateway refuses every token
        platform.gateway()
        agent = token("agent", subject="agent:bench")

        def gql(query, variables):
            return httpx.post(f"{platform.url}/graphql", json={"query": query, "variables": variables},
                              headers={"Authorization": f"Bearer {agent}"}, timeout=30).json()["data"]

        site = gql("mutation($s: SiteInput!) { saveSite(site: $s) { id } }",
                   {"s": {"name": "Bench", "commune": "labege", "competence": "Accueil"}})["saveSite"]["id"]
        tokens = [gql("mutation($k: KioskInput!) { registerKiosk(kiosk: $k) { token } }",
                      {"k": {"siteId": site, "name": f"Borne {i}", "repeatSeconds": 0}})["registerKiosk"]["token"]
                  for i in range(args.kiosks)]
        metrics_url = f"http://127.0.0.1:{platform.metrics_base + 2}/metrics"
        lag = "parvis_satisfaction_ingest_lag_seconds"
        before = {s: histogram(metrics_url, lag, f'since="{s}"') or [] for s in ("pressed", "received")}

        def counted() -> int:
            now = datetime.now(timezone.utc)
            return gql("query($s: ID, $f: DateTime!, $t: DateTime!) { satisfaction(siteId: $s, from: $f, to: $t, "
                       "granularity: HOUR) { total { total } } }",
                       {"s": site, "f": (now - timedelta(days=1)).isoformat(),
                        "t": (now + timedelta(hours=1)).isoformat()})["satisfaction"]["total"]["total"]

        workers = SatisfactionSettings().max_workers if args.max_workers is None else args.max_workers
        log(f"{args.runs} runs of each path, alternating (e2e-raw, raw-e2e, ...), {args.votes} votes a run; end to end: "
            f"{args.kiosks} kiosks, batches of {args.batch}, max_workers={workers}")
        e2e_runs, raw_runs, lat = [], [], []
        accepted_total = 0
        lost = False
        for run in range(args.runs):
            for path in (("e2e", "raw") if run % 2 == 0 else ("raw", "e2e")):
                if path == "raw":
                    raw_runs.append(raw_path(broker.url, mongo.url, args.votes, args.batch))
                    n, secs = raw_runs[-1]
                    log(f"run {run + 1} raw path (kombu publish -> bare consumer insert_many): {n / secs:,.0f} votes/s")
                    continue
                e2e = asyncio.run(end_to_end(platform, tokens, args.votes // args.kiosks, args.batch))
                accepted_total += e2e["accepted"]
                wait_until(lambda: counted() >= accepted_total, 300, 0.05, "all accepted votes visible")
                visible = time.perf_counter()
                now_counted = counted()
                lost = lost or now_counted != accepted_total
                e2e_runs.append((e2e["accepted"], visible - e2e["t0"]))
                lat += e2e["latencies"]
                log(f"run {run + 1} end to end: {e2e['accepted'] / (visible - e2e['t0']):,.0f} votes/s "
                    f"({e2e['accepted']} accepted, {now_counted} counted in all so far, "
                    f"{visible - e2e['t0']:.1f}s; accepted-only rate {e2e['accepted'] / (e2e['sent'] - e2e['t0']):,.0f} votes/s)")
        counted_e2e = counted()  # before the single-vote phase adds its own votes to the same site
        rate = sum(n for n, _ in e2e_runs) / sum(t for _, t in e2e_runs)
        raw = sum(n for n, _ in raw_runs) / sum(t for _, t in raw_runs)
        after = {s: histogram(metrics_url, lag, f'since="{s}"') for s in ("pressed", "received")}
        log(f"sustained: {rate:,.0f} votes/s end to end over {len(e2e_runs)} runs ({accepted_total} accepted, "
            f"{counted_e2e} counted); raw path {raw:,.0f} votes/s over {len(raw_runs)} runs: {rate / raw:.0%}")
        log(f"accept latency per 100-vote batch: p50 {pct(lat, .5) * 1000:.0f} ms, p95 {pct(lat, .95) * 1000:.0f} ms, "
            f"p99 {pct(lat, .99) * 1000:.0f} ms (mean {statistics.mean(lat) * 1000:.0f} ms)")
        for s in ("received", "pressed"):
            b = before[s] or [(le, 0.0) for le, _ in after[s]]
            log(f"ingest lag {s} -> counted (bucket upper bounds): p50 <= {quantile_from_buckets(b, after[s], .5)} s, "
                f"p95 <= {quantile_from_buckets(b, after[s], .95)} s, p99 <= {quantile_from_buckets(b, after[s], .99)} s")

        per_kiosk = max(1, args.singles // args.kiosks)
        single_rate, single_lat = asyncio.run(singles(platform, tokens, per_kiosk))
        log(f"single-vote submits: {single_rate:,.0f}/s ({per_kiosk * args.kiosks} calls, {args.kiosks} in flight; "
            f"p50 {pct(single_lat, .5) * 1000:.0f} ms, p99 {pct(single_lat, .99) * 1000:.0f} ms)")

        lag_p99 = quantile_from_buckets(before["received"] or [(le, 0.0) for le, _ in after["received"]],
                                        after["received"], .99)
        checks = [
            ("sustained >= 3,000 votes/s with zero loss",
             rate >= TARGETS["votes_per_s"] and counted_e2e == accepted_total and not lost),
            (f">= 60 % of the raw path ({rate / raw:.0%})", rate / raw >= TARGETS["ratio_raw"]),
            ("ingest lag p99 <= 2 s", lag_p99 <= TARGETS["lag_p99_s"]),
            ("single-vote submits >= 300/s", single_rate >= TARGETS["single_per_s"]),
        ]
        for label, good in checks:
            log(f"{'OK  ' if good else 'MISS'} {label}")
    finally:
        platform.stop()
        broker.stop()
        mongo.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
