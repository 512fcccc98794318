"""Web benchmark: the agenda page (`/agenda`, 50 events, server-rendered from the named GraphQL operation
`AgendaPage` run in-process) against that same operation posted to `/graphql` (the API a client app would call
for the same data), in alternating runs on one stack; then the pages' weights (HTML and the site's JavaScript).

Run from the repository root: `.venv/bin/python bench/web.py [--seconds 10] [--events 10000]`. Like
bench/agenda.py it uses MONGO_URL when set (else starts nx-27017), a throw-away RabbitMQ vhost, the agenda service
and the gateway as real processes, seeds N published events straight into parvis_agenda with the agenda's own
domain code, and prints figures and targets (never asserts: exit 0 on MISS). Targets (issue 14): the agenda page
at >= 500 pages/s (50 clients) with p95 <= 100 ms (10 clients); each page's HTML under 100 KB; the site's
JavaScript under 50 KB. The gateway's CPU per request is printed too: it moves less than rates with whatever else
the machine runs.
"""
from __future__ import annotations

import argparse
import asyncio
import random
import re
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.agenda import pct, rss_mib, seed  # noqa: E402
from bench.httpload import ceiling, closed_loop  # noqa: E402


EVENT_LINK = re.compile(r'<h3><a href="(?:https?://[^/"]+)?(/agenda/events/[^"]+)"')  # one per event listed


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (less sensitive than rates to what else the machine runs)."""
    import os

    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"bench | {msg}", flush=True)


def operation(name: str) -> str:
    """The named operation the page runs, as the web declares it (gateway/web/operations.graphql)."""
    from gateway.web.operations import OPERATIONS

    return OPERATIONS[name]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args()
    import subprocess

    from tests.support import Broker, Mongo, Platform, wait_until

    mongo, broker = Mongo().start(), Broker().start()
    # One address stands for 50 clients here: the per-client limit of anonymous traffic is off (PARVIS_RATE_LIMIT).
    platform = Platform(mongo, broker, PARVIS_OUTBOX_INTERVAL="5", PARVIS_RATE_LIMIT="0")
    try:
        seeder = platform.service("agenda")
        rpc_seed = subprocess.run([sys.executable, "-m", "parvis.cli", "seed"], env=platform.env, capture_output=True,
                                  text=True, timeout=120)
        assert rpc_seed.returncode == 0, rpc_seed.stderr
        seeder.stop()
        t = time.perf_counter()
        communes = seed(mongo.url, args.events)
        log(f"seeded {args.events} published events in {time.perf_counter() - t:.1f}s")
        agenda_proc = platform.service("agenda")
        gateway_proc = platform.gateway()
        query = operation("AgendaPage")
        now = datetime.now(timezone.utc)
        rnd = random.Random(1)

        def pick():
            """A commune and a first day, as a person filters the agenda (about 280 events a commune here)."""
            return rnd.choice(communes), (now + timedelta(days=rnd.randint(0, 120))).date()

        async def page(conn):
            commune, day = pick()
            return await conn.get("/agenda", {"commune": commune, "du": day.strftime("%d/%m/%Y")})

        async def graphql(conn):
            commune, day = pick()
            return await conn.post_json("/graphql", {"query": query, "operationName": "AgendaPage", "variables": {
                "filter": {"communes": [commune], "from": f"{day.isoformat()}T00:00:00"}, "first": 50}})

        def ready() -> bool:  # the gateway's public copy loads in the background after start
            r = httpx.get(f"{platform.url}/agenda", params={"commune": communes[0]}, timeout=60)
            return r.status_code == 200 and len(EVENT_LINK.findall(r.text)) == 50

        t = time.perf_counter()
        wait_until(ready, 600, interval=1.0, message="the agenda page with 50 events")
        log(f"agenda page ready after {time.perf_counter() - t:.1f}s")
        log(f"load generator ceiling (bench/httpload.py, trivial endpoint): {ceiling(args.clients):.0f} req/s")
        results = {}
        # Rate with 50 clients (the gateway saturated), then latency with 10 (a closed loop of 50 clients waits
        # 50 / rate on average by Little's law: its p95 measures the queue, not the page).
        runs = (("page", page, args.clients), ("graphql", graphql, args.clients), ("page#2", page, args.clients),
                ("graphql#2", graphql, args.clients), ("page@10", page, 10), ("graphql@10", graphql, 10))
        for name, fn, clients in runs:  # alternating: the machine's drift falls on both alike
            asyncio.run(closed_loop(platform.url, fn, 5, 1.0))  # warm-up
            cpu = cpu_seconds(gateway_proc.proc.pid)
            rps, lat, errors = asyncio.run(closed_loop(platform.url, fn, clients, args.seconds))
            per_request = (cpu_seconds(gateway_proc.proc.pid) - cpu) / max(1, len(lat)) * 1000
            results[name] = (rps, lat, errors, per_request)
            log(f"{name:10s} {clients} clients: {rps:7.1f} req/s  p50 {pct(lat, .5):6.1f} ms  "
                f"p95 {pct(lat, .95):6.1f} ms  p99 {pct(lat, .99):6.1f} ms  errors {errors}  "
                f"gateway CPU {per_request:.2f} ms/request")
        log(f"RSS: gateway {rss_mib(gateway_proc.proc.pid):.0f} MiB, agenda {rss_mib(agenda_proc.proc.pid):.0f} MiB")

        sizes = {}
        for path in ("/", "/agenda", f"/agenda?commune={communes[0]}", "/connexion"):
            sizes[path] = len(httpx.get(f"{platform.url}{path}", timeout=30).content)
        event_link = EVENT_LINK.search(httpx.get(f"{platform.url}/agenda", timeout=30).text)
        if event_link:
            sizes[event_link.group(1)] = len(httpx.get(f"{platform.url}{event_link.group(1)}", timeout=30).content)
        scripts = set()
        for path in sizes:
            html = httpx.get(f"{platform.url}{path}", timeout=30).text
            scripts |= set(re.findall(r'<script[^>]+src="([^"]+)"', html))
        js = sum(len(httpx.get(f"{platform.url}{s}", timeout=30).content) for s in scripts)
        for path, size in sizes.items():
            log(f"HTML {path}: {size / 1024:.1f} KB")
        log(f"JavaScript of the site ({', '.join(sorted(scripts)) or 'none'}): {js / 1024:.1f} KB")

        p = (results["page"][0] + results["page#2"][0]) / 2
        g = (results["graphql"][0] + results["graphql#2"][0]) / 2
        p95 = pct(results["page@10"][1], .95)
        biggest = max(sizes.values())
        printed = len(httpx.get(f"{platform.url}/agenda/print", params={"commune": communes[0]}, timeout=30).content)
        log(f"printable agenda of a commune (a month, {args.events} events in a year here): {printed / 1024:.1f} KB "
            "(a document to print, not a page to browse: not held to the 100 KB)")
        pc = (results["page"][3] + results["page#2"][3]) / 2
        gc = (results["graphql"][3] + results["graphql#2"][3]) / 2
        log(f"agenda page {p:.0f} pages/s against its GraphQL query {g:.0f} req/s over both runs: "
            f"{p / g:.2f}x the query's rate; gateway CPU {pc:.2f} against {gc:.2f} ms a request ({pc / gc:.2f}x)")
        log(f"targets: agenda page >= 500 pages/s: {'OK' if p >= 500 else 'MISS'} ({p:.0f}); "
            f"p95 <= 100 ms (10 clients): {'OK' if p95 <= 100 else 'MISS'} ({p95:.1f}); "
            f"HTML < 100 KB: {'OK' if biggest < 100 * 1024 else 'MISS'} ({biggest / 1024:.1f} KB at most); "
            f"JavaScript < 50 KB: {'OK' if js < 50 * 1024 else 'MISS'} ({js / 1024:.1f} KB)")
    finally:
        for stop in (platform.stop, broker.stop, mongo.stop):
            try:
                stop()
            except Exception as exc:  # noqa: BLE001 - clean up the rest all the same
                log(f"cleanup: {exc!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
