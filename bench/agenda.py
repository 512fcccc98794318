"""Agenda benchmark: the public `events` query through the gateway against a bare Starlette endpoint that filters
and serialises the same events held in memory (the floor of any Python server on this data), in alternating runs;
then the text+commune+range search p95.

Run from the repository root: `.venv/bin/python bench/agenda.py [--seconds 10] [--events 10000]`. It uses
MONGO_URL when set (else starts nx-27017 like the tests), a throw-away RabbitMQ vhost, the agenda service
and the gateway as real processes, seeds N published events straight into parvis_agenda (documents built by
the agenda's own domain code, with insert_many: seeding through RPC would measure the seed, not the read),
and prints figures and targets (never asserts: exit 0 on MISS).
"""
from __future__ import annotations

import argparse
import asyncio
import random
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.httpload import ceiling, closed_loop  # noqa: E402

QUERY = """query($f: EventFilter, $n: Int!) { events(filter: $f, first: $n) { totalCount
  edges { node { id title startsAt endsAt commune { slug name } category moderationState status organizer { id name } } } } }"""


def log(msg: str) -> None:
    print(f"bench | {msg}", flush=True)


def seed(mongo_url: str, n: int) -> list[str]:
    from pymongo import MongoClient

    from contracts.agenda import EventInput
    from parvis.seed import demo_data
    from services.agenda import domain

    data = demo_data()
    ref = domain.Reference({c["slug"]: c["name"] for c in data["communes"]},
                           {c["slug"]: c["name"] for c in data["categories"]}, {t["slug"]: t["name"] for t in data["themes"]})
    orgs = [o for o in data["organizations"]]
    rnd = random.Random(7)
    words = ["Fête", "Concert", "Marché", "Atelier", "Randonnée", "Conférence", "Exposition", "Loto", "Cinéma",
             "Spectacle", "Vide-grenier", "Réunion", "Bal", "Théâtre", "Lecture"]
    now = datetime.now(timezone.utc)
    docs = []
    for i in range(n):
        commune = rnd.choice(list(ref.communes))
        start = (now + timedelta(days=rnd.randint(-30, 330), hours=rnd.randint(0, 23))).astimezone(domain.PARIS)
        start = start.replace(minute=0, second=0, microsecond=0, tzinfo=None)
        inp = EventInput(title=f"{rnd.choice(words)} {rnd.choice(words).lower()} n°{i}",
                         description="Un événement de démonstration **pour le banc d'essai**.",
                         slots=[{"starts_at": start, "ends_at": start + timedelta(hours=2)}],
                         location={"commune": commune, "place": "Salle des fêtes"},
                         category=rnd.choice(list(ref.categories)))
        fields = domain.validate_event(inp, ref, now)
        org = rnd.choice(orgs)
        docs.append({"_id": f"evt-bench-{i:05d}", **fields, "organizer": org["id"], "organizer_name": org["name"],
                     "moderation_state": "published", "status": "scheduled", "queue": "none", "price_kind": "free",
                     "created_at": now, "updated_at": now, "visible_from": now - timedelta(days=1), "version": 1})
    client = MongoClient(mongo_url, tz_aware=True)
    db = client["parvis_agenda"]
    db.events.delete_many({})
    for k in range(0, n, 2000):
        db.events.insert_many(docs[k:k + 2000], ordered=False)
    client.close()
    return list(ref.communes)


BARE_APP = r'''
# The floor of any Python server on this data: the same published events held in memory (loaded once from the
# database), the same filter (commune, occurrences in a range, published and visible), the same order and page,
# serialised with orjson; no GraphQL, no auth, no metrics, no RPC.
import sys
from datetime import datetime
import orjson
from pymongo import MongoClient
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
import uvicorn
db = MongoClient(sys.argv[1], tz_aware=True)["parvis_agenda"]
by_commune = {}
for d in db.events.find({"visible_from": {"$exists": True}}, {"search": 0, "description": 0, "description_html": 0}):
    by_commune.setdefault(d["commune"], []).append(d)
for docs in by_commune.values():
    docs.sort(key=lambda d: (d["starts_at"], d["_id"]))
def node(d):
    return {"id": d["_id"], "title": d["title"], "startsAt": d["starts_at"].isoformat(), "endsAt": d["ends_at"].isoformat(),
            "commune": {"slug": d["commune"], "name": d["commune_name"]}, "category": d["category"],
            "moderationState": d["moderation_state"].upper(), "status": d["status"].upper(),
            "organizer": {"id": d["organizer"], "name": d["organizer_name"]}}
async def events(request):
    p = request.query_params
    now, start, end = (datetime.fromisoformat(p[k]) for k in ("now", "from", "to"))
    found = [d for d in by_commune.get(p["commune"], ())
             if d["moderation_state"] == "published" and d["visible_from"] <= now
             and any(o["ends_at"] > start and o["starts_at"] < end for o in d["occurrences"])]
    body = {"data": {"events": {"totalCount": len(found), "edges": [{"node": node(d)} for d in found[:50]]}}}
    return Response(orjson.dumps(body), media_type="application/json")
uvicorn.run(Starlette(routes=[Route("/events", events)]), host="127.0.0.1", port=int(sys.argv[2]),
            log_level="warning", access_log=False)
'''


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000 if ordered else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args()
    from tests.support import Broker, Mongo, Platform, free_port, wait_until, http_status

    mongo, broker = Mongo().start(), Broker().start()
    # The outbox relay polls with a scan, which nx-27017 pays per 10,000 documents: poll less during reads.
    # One address stands for 50 clients here: the per-client limit of anonymous traffic is off (PARVIS_RATE_LIMIT).
    platform = Platform(mongo, broker, PARVIS_OUTBOX_INTERVAL="5", PARVIS_RATE_LIMIT="0")
    bare = None
    try:
        seeder = platform.service("agenda")
        rpc_seed = subprocess.run([sys.executable, "-m", "parvis.cli", "seed"], env=platform.env, capture_output=True,
                                  text=True, timeout=120)
        assert rpc_seed.returncode == 0, rpc_seed.stderr
        seeder.stop()
        t = time.perf_counter()
        communes = seed(mongo.url, args.events)
        log(f"seeded {args.events} published events in {time.perf_counter() - t:.1f}s")
        agenda_proc = platform.service("agenda")  # started after the seed: its read model loads the 10,000 events
        gateway_proc = platform.gateway()
        port = free_port()
        bare = subprocess.Popen([sys.executable, "-c", BARE_APP, mongo.url, str(port)], cwd=ROOT)
        wait_until(lambda: http_status(f"http://127.0.0.1:{port}/events?commune=x&from=2020-01-01T00:00:00%2B00:00"
                                       f"&to=2020-01-02T00:00:00%2B00:00&now=2020-01-01T00:00:00%2B00:00") == 200, 30)
        now = datetime.now(timezone.utc)
        rnd = random.Random(1)

        def window():
            start = now + timedelta(days=rnd.randint(0, 200))
            return start, start + timedelta(days=60)

        async def via_gateway(conn):
            s, e = window()
            return await conn.post_json("/graphql", {"query": QUERY, "variables": {
                "f": {"communes": [rnd.choice(communes)], "from": s.isoformat(), "to": e.isoformat()}, "n": 50}})

        async def via_bare(conn):
            s, e = window()
            return await conn.get("/events", {
                "commune": rnd.choice(communes), "from": s.isoformat(), "to": e.isoformat(), "now": now.isoformat()})

        async def search(conn):
            s, e = window()
            return await conn.post_json("/graphql", {"query": QUERY, "variables": {
                "f": {"communes": [rnd.choice(communes)], "text": rnd.choice(["fete", "concert", "marche", "atelier"]),
                      "from": s.isoformat(), "to": e.isoformat()}, "n": 50}})

        def fast_enough() -> bool:  # the agenda's read model loads in the background after start
            t0 = time.perf_counter()
            r = httpx.post(f"{platform.url}/graphql", timeout=60, json={"query": QUERY, "variables": {
                "f": {"communes": [communes[0]]}, "n": 50}})
            body = r.json() if r.status_code == 200 else {}
            return ("errors" not in body and body.get("data", {}).get("events", {}).get("totalCount", 0) > 0
                    and time.perf_counter() - t0 < 0.5)

        t = time.perf_counter()
        wait_until(fast_enough, 600, interval=1.0, message="agenda read model loaded")
        log(f"agenda read model ready after {time.perf_counter() - t:.1f}s")
        log(f"load generator ceiling (bench/httpload.py, trivial endpoint): {ceiling(args.clients):.0f} req/s")
        results = {}
        bare_url = f"http://127.0.0.1:{port}"
        runs = (("gateway", via_gateway), ("bare", via_bare), ("gateway#2", via_gateway), ("bare#2", via_bare),
                ("search", search))  # alternating: the machine's drift falls on both alike
        for name, fn in runs:
            url = bare_url if name.startswith("bare") else platform.url
            asyncio.run(closed_loop(url, fn, 5, 1.0))  # warm-up
            rps, lat, errors = asyncio.run(closed_loop(url, fn, args.clients, args.seconds))
            results[name] = (rps, lat, errors)
            log(f"{name:10s} {args.clients} clients: {rps:7.1f} req/s  p50 {pct(lat, .5):6.1f} ms  "
                f"p95 {pct(lat, .95):6.1f} ms  p99 {pct(lat, .99):6.1f} ms  errors {errors}")
        fast = {}
        for line in httpx.get(f"{platform.url}/metrics", timeout=5).text.splitlines():
            if line.startswith("parvis_gateway_fast_path_total{"):
                fast[line.split('"')[1]] = float(line.rsplit(" ", 1)[1])
        log(f"gateway compiled path: {fast} (served = answered without the general executor)")
        log(f"RSS with {args.events} events: gateway {rss_mib(gateway_proc.proc.pid):.0f} MiB (its public copy "
            f"included), agenda {rss_mib(agenda_proc.proc.pid):.0f} MiB")
        slat = results["search"][1]
        g = (results["gateway"][0] + results["gateway#2"][0]) / 2
        b = (results["bare"][0] + results["bare#2"][0]) / 2
        gp95 = max(pct(results["gateway"][1], .95), pct(results["gateway#2"][1], .95))
        log(f"gateway {g:.0f} req/s against bare {b:.0f} req/s over both runs: the gateway costs {b / g:.2f}x bare")
        log(f"targets: public query >= 1000 req/s: {'OK' if g >= 1000 else 'MISS'} ({g:.0f}); "
            f"p95 <= 50 ms: {'OK' if gp95 <= 50 else 'MISS'} ({gp95:.1f}); "
            f"cost within 2x bare: {'OK' if b / g <= 2 else 'MISS'} ({b / g:.2f}x); "
            f"search p95 <= 100 ms: {'OK' if pct(slat, .95) <= 100 else 'MISS'} ({pct(slat, .95):.1f})")
    finally:
        if bare is not None:
            bare.kill()
            bare.wait(10)
        for stop in (platform.stop, broker.stop, mongo.stop):
            try:
                stop()
            except Exception as exc:  # noqa: BLE001 - clean up the rest all the same
                log(f"cleanup: {exc!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
