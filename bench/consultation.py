"""Participatory budget benchmark: 10,000 citizens vote through the gateway, each with his own token, against a bare
insert of the same ballots in the same run; then the results of a budget of 50,000 ballots.

Run from the repository root (`flock /tmp/parvis-bench.lock .venv/bin/python bench/consultation.py`; options
`--voters 10000 --clients 40 --runs 2 --total 50000 --open-voters 5000 --open-rate 500`). It starts its own nx-27017, a throw-away RabbitMQ vhost, the
consultation service, the notification service (the gateway's revocation list) and the gateway, brings a budget (one heading, twelve projects) to its vote through GraphQL, and
then, in alternating runs (end to end, bare, end to end, bare: the machine's drift falls on both alike):

1. end to end: `--clients` keep-alive connections (bench/httpload.py) send `castBudgetBallot`, one citizen a request,
   each voter once, plus one request in fifty from a citizen who already voted (it must be refused: a double vote
   otherwise); rate = ballots acknowledged / time of the run; latency of each request. Meanwhile one more connection
   reads the participation count (`consultationResults(id) { participation { total } }`) 20 times a second: its latency;
2. bare: the same request bodies over as many connections to a bare Starlette endpoint (uvicorn, one process) that
   parses them and `insert_one`s the ballot into the same database, without GraphQL, token, rules, secrecy or
   counters: the floor of "a ballot received over HTTP and stored" on this machine;
3. an open run (`--open-voters`, default 5,000): more citizens arriving at `--open-rate` a second (the 500/s target),
   whatever the answers, each on a pooled keep-alive connection, the count read 20 times a second meanwhile; latency
   from the instant each ballot was due (bench/httpload.py: open_loop). The p95 target is read here: in the closed runs
   40 clients always waiting make the latency 40 / throughput, a queue's length rather than what a citizen waits at
   a given rate;
4. then the budget is filled up to `--total` ballots (the service's own RPC, many in flight), closed, published, and
   its results read through the gateway (`consultationResults`), timed; the Pabulib export of its 50,000 ballots too.
Afterwards the database is checked: ballots = participations = counted voters = acknowledged ballots (no double vote,
none lost). Each run prints the CPU a ballot took in each process (/proc: gateway, service, nx-27017, RabbitMQ, the
load generator). Figures and targets are printed, never asserted (exit 0 on MISS).
"""
from __future__ import annotations

import argparse
from collections import Counter
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.httpload import Connection, CpuMeter, ceiling, open_loop, rabbitmq_pid  # noqa: E402

TARGETS = {"ballots_per_s": 500, "ratio_bare": 0.50, "p95_ms": 100, "results_s": 1.0, "count_p95_ms": 20}
CAST = ("mutation($b: ID!, $h: [HeadingBallotInput!]!) { castBudgetBallot(budgetId: $b, headings: $h) "
        "{ receiptCode } }")
COUNT = "query($id: ID!) { consultationResults(id: $id) { participation { total } } }"
RESULTS = ("query($id: ID!) { consultationResults(id: $id) { participation { total } headings { winners "
           "projects { projectId votes { total } winner } } } }")
PROJECTS = [{"title": f"Projet du banc n°{n}", "headingId": "territoire", "cost": 20_000_00 + n * 5_000_00}
            for n in range(12)]

BARE_APP = r'''
# A ballot received over HTTP and stored, and nothing else: the request body parsed, the ballot inserted into the
# database with pymongo (one insert_one a request, a random id and receipt, as the service stores them), no GraphQL,
# no token, no rule, no secrecy, no counter, no RPC.
import secrets, sys
import orjson
from pymongo import MongoClient
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
import uvicorn
ballots = MongoClient(sys.argv[1], tz_aware=True)["parvis_bench_bare"]["ballots"]
def cast(request_body: bytes) -> bytes:
    v = orjson.loads(request_body)["variables"]
    receipt = secrets.token_hex(6)
    ballots.insert_one({"_id": secrets.token_hex(16), "consultation_id": v["b"], "receipt": receipt,
                        "headings": [{"heading_id": h["headingId"], "project_ids": h["projectIds"]} for h in v["h"]]})
    return orjson.dumps({"data": {"castBudgetBallot": {"receiptCode": receipt}}})
async def endpoint(request):
    from starlette.concurrency import run_in_threadpool
    return Response(await run_in_threadpool(cast, await request.body()), media_type="application/json")
uvicorn.run(Starlette(routes=[Route("/graphql", endpoint, methods=["POST"])]), host="127.0.0.1",
            port=int(sys.argv[2]), log_level="warning", access_log=False)
'''


def log(msg: str) -> None:
    print(f"bench | {msg}", flush=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000 if ordered else float("nan")


def body(bid: str, ids: list[str], n: int) -> bytes:
    picks = sorted({ids[n % 12], ids[(n * 7 + 3) % 12]})
    return json.dumps({"query": CAST, "variables": {"b": bid, "h": [{"headingId": "territoire",
                                                                     "projectIds": picks}]}}).encode()


async def run_voters(url: str, bid: str, ids: list[str], tokens: dict[int, str], voters: list[int], clients: int,
                     count_reads: bool, repeat_every: int = 50) -> dict:
    """Each voter once over `clients` connections, and a repeat from an earlier voter every `repeat_every` requests;
    with `count_reads`, one more connection reads the participation count 20 times a second meanwhile."""
    parts = urlsplit(url)
    queue = list(voters)
    done: list[int] = []
    latencies: list[float] = []
    count_latencies: list[float] = []
    errors: list[str] = []
    double_votes = 0
    repeats = 0
    sent_total = 0

    async def send(conn: Connection, n: int) -> dict:
        r = await conn.request("POST", "/graphql", body(bid, ids, n),
                               {"Content-Type": "application/json", "Authorization": f"Bearer {tokens[n]}"})
        return r.json()

    async def worker():
        nonlocal double_votes, repeats, sent_total
        conn = Connection(parts.hostname, parts.port)
        try:
            while queue:
                n = queue.pop()
                t = time.perf_counter()
                answer = await send(conn, n)
                latencies.append(time.perf_counter() - t)
                if "errors" in answer:
                    errors.append(answer["errors"][0]["message"])
                else:
                    done.append(n)
                sent_total += 1
                if repeat_every and sent_total % repeat_every == 0 and done:
                    again = await send(conn, done[len(done) // 2])
                    repeats += 1
                    if "errors" not in again:
                        double_votes += 1
        finally:
            conn.close()

    stop = asyncio.Event()
    started = time.perf_counter()
    read_task = asyncio.create_task(read_counts(url, bid, stop, count_latencies)) if count_reads else None
    await asyncio.gather(*(worker() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    stop.set()
    if read_task is not None:
        await read_task
    return {"done": done, "elapsed": elapsed, "latencies": latencies, "errors": errors, "double_votes": double_votes,
            "repeats": repeats, "count_latencies": count_latencies}


async def read_counts(url: str, bid: str, stop: asyncio.Event, latencies: list[float]) -> None:
    """The participation count read 20 times a second, as a results page polls it, until `stop`."""
    parts = urlsplit(url)
    conn = Connection(parts.hostname, parts.port)
    payload = json.dumps({"query": COUNT, "variables": {"id": bid}}).encode()
    try:
        while not stop.is_set():
            t = time.perf_counter()
            r = await conn.request("POST", "/graphql", payload, {"Content-Type": "application/json"})
            latencies.append(time.perf_counter() - t)
            assert r.status == 200 and "errors" not in r.json(), r.body
            await asyncio.sleep(0.05)
    finally:
        conn.close()


async def run_open(url: str, bid: str, ids: list[str], tokens: dict[int, str], voters: list[int], rate: float) -> dict:
    """Each voter once, arriving at `rate` a second whatever the answers (bench/httpload.py: open_loop), while the
    participation count is read 20 times a second."""
    kinds: Counter = Counter()  # what the errors were: each GraphQL error's code, or the failure of the request

    async def send(conn: Connection, n: int):
        try:
            r = await conn.request("POST", "/graphql", body(bid, ids, n),
                                   {"Content-Type": "application/json", "Authorization": f"Bearer {tokens[n]}"})
        except Exception as exc:
            kinds[type(exc).__name__] += 1
            raise
        answer = r.json() if r.status == 200 else {"errors": [{"extensions": {"code": f"HTTP {r.status}"}}]}
        for error in answer.get("errors") or []:
            kinds[(error.get("extensions") or {}).get("code", "?")] += 1
        return answer if "errors" not in answer else None

    count_latencies: list[float] = []
    stop = asyncio.Event()
    reader = asyncio.create_task(read_counts(url, bid, stop, count_latencies))
    res = await open_loop(url, send, voters, rate)
    stop.set()
    await reader
    res["done"] = [n for n, a in zip(voters, res["answers"]) if a is not None]
    res["count_latencies"] = count_latencies
    res["kinds"] = kinds
    return res


async def fill_up(amqp_url: str, bid: str, ids: list[str], first: int, last: int, in_flight: int = 200) -> float:
    """Ballots of voters first..last-1 through the service's RPC (as the gateway calls it), many in flight."""
    from gateway.rpc import RpcClient
    from tests.support import TEST_SECRET

    client = RpcClient(amqp_url, secret=TEST_SECRET)
    await client.connect()
    queue = list(range(first, last))
    started = time.perf_counter()

    async def worker():
        while queue:
            n = queue.pop()
            picks = sorted({ids[n % 12], ids[(n * 7 + 3) % 12]})
            for _ in range(5):
                try:
                    await client.call("consultation", "cast_budget_ballot", timeout=60.0,
                                      context={"caller": {"role": "citizen", "subject": f"cit-fill{n:016d}"}},
                                      budget_id=bid, headings=[{"heading_id": "territoire", "project_ids": picks}])
                    break
                except Exception:  # noqa: BLE001 - a slow round: try again
                    await asyncio.sleep(0.5)

    try:
        await asyncio.gather(*(worker() for _ in range(in_flight)))
    finally:
        await client.close()
    return time.perf_counter() - started


def summed(text: str, *names: str, having: str = "") -> dict[str, float]:
    """`<name>_sum` and `<name>_count` of histograms in a Prometheus text page, added over their labels (those of
    lines holding `having` only)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        key = line.split("{")[0].split(" ")[0]
        if key.endswith(("_sum", "_count")) and key.rsplit("_", 1)[0] in names and having in line:
            out[key] = out.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


class Pipeline:
    """Where a run's ballots spent their time, from the processes' own metrics (read before and after the run): the
    gateway's HTTP time of a ballot, its batches (gateway/batching.py) and their RPC round trip, the service's
    handling of a batch and its rounds of writes (services/consultation/casting.py)."""

    def __init__(self, gateway_metrics: str, service_metrics: str):
        self.urls = gateway_metrics, service_metrics

    def read(self) -> dict[str, float]:
        gateway, service = (httpx.get(url, timeout=5).text for url in self.urls)
        sums = summed(gateway, "parvis_rpc_client_batch_items")
        sums.update(summed(gateway, "parvis_rpc_client_duration_seconds", having='method="cast_budget_ballot"'))
        sums.update(summed(gateway, "parvis_http_request_duration_seconds", having='route="/graphql"'))
        sums.update(summed(gateway, "parvis_rpc_client_batch_duration_seconds"))
        sums.update(summed(service, "parvis_consultation_cast_round_ballots", "parvis_consultation_cast_round_seconds"))
        sums.update(summed(service, "parvis_entrypoint_duration_seconds", having='entrypoint="cast_budget_ballots"'))
        return sums

    def start(self) -> None:
        self.before = self.read()

    def stop(self) -> str:
        after = self.read()
        d = {k: after.get(k, 0.0) - self.before.get(k, 0.0) for k in after}

        def mean(name: str, scale: float = 1000.0) -> str:
            n = d.get(f"{name}_count", 0.0)
            return f"{d.get(f'{name}_sum', 0.0) / n * scale:.1f}" if n else "-"
        rounds = d.get("parvis_consultation_cast_round_ballots_count", 0.0)
        return (f"gateway HTTP {mean('parvis_http_request_duration_seconds')} ms; "
                f"batches {d.get('parvis_rpc_client_batch_items_count', 0):.0f} of "
                f"{mean('parvis_rpc_client_batch_items', 1)}; a call waits "
                f"{mean('parvis_rpc_client_duration_seconds')} ms for its batch, a batch's RPC "
                f"{mean('parvis_rpc_client_batch_duration_seconds')} ms; "
                f"service {mean('parvis_entrypoint_duration_seconds')} ms a batch; rounds {rounds:.0f} of "
                f"{mean('parvis_consultation_cast_round_ballots', 1)}, {mean('parvis_consultation_cast_round_seconds')} "
                f"ms")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--voters", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--total", type=int, default=50_000)
    parser.add_argument("--open-voters", type=int, default=5_000, help="citizens of the open run (0: none)")
    parser.add_argument("--open-rate", type=float, default=TARGETS["ballots_per_s"],
                        help="ballots a second offered in the open run")
    args = parser.parse_args()
    from tests.consultation_flows import budget_to_ballot, data, round_documents
    from tests.support import Broker, Mongo, Platform, free_port, http_status, token, wait_until

    mongo, broker = Mongo().start(), Broker().start()
    platform = Platform(mongo, broker)
    bare = None
    try:
        service = platform.service("consultation")
        platform.service("notification")  # the revocation list: without it, the gateway refuses every token
        gateway = platform.gateway()
        bid, ids = budget_to_ballot(platform.url, PROJECTS, headings=[
            {"id": "territoire", "name": "Tout le Sicoval", "amountCents": 150_000_00}])
        log(f"budget {bid} in its vote: 12 projects, one heading")
        t = time.perf_counter()
        everyone = args.voters + args.open_voters
        tokens = {n: token("citizen", subject=f"cit-bench{n:015d}") for n in range(everyone)}
        log(f"{everyone} citizen tokens issued in {time.perf_counter() - t:.1f}s")
        port = free_port()
        bare = subprocess.Popen([sys.executable, "-c", BARE_APP, mongo.url, str(port)], cwd=ROOT)
        bare_url = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_status(f"{bare_url}/graphql") in (405, 200), 30)
        log(f"load generator ceiling (bench/httpload.py, trivial endpoint): {ceiling(args.clients):.0f} req/s")
        meters = {"e2e": CpuMeter({"gateway": gateway.proc.pid, "consultation": service.proc.pid,
                                   "nx-27017": mongo.proc.pid, "rabbitmq": rabbitmq_pid(), "load": os.getpid()}),
                  # the platform's own processes too: idle during the bare run, unless work left over from the run
                  # before still takes the machine's CPU from the baseline
                  "bare": CpuMeter({"bare app": bare.pid, "nx-27017": mongo.proc.pid, "load": os.getpid(),
                                    "gateway (idle)": gateway.proc.pid, "consultation (idle)": service.proc.pid,
                                    "rabbitmq (idle)": rabbitmq_pid()})}
        pipeline = Pipeline(f"{platform.url}/metrics", f"http://127.0.0.1:{platform.metrics_base + 1}/metrics")
        per_run = args.voters // args.runs
        e2e, raw = [], []
        for r in range(args.runs):
            voters = list(range(r * per_run, (r + 1) * per_run))
            order = (("e2e", platform.url), ("bare", bare_url)) if r % 2 == 0 else (("bare", bare_url),
                                                                                 ("e2e", platform.url))
            for name, url in order:
                meters[name].start()
                if name == "e2e":
                    pipeline.start()
                res = asyncio.run(run_voters(url, bid, ids, tokens, voters, args.clients, count_reads=name == "e2e",
                                             repeat_every=50 if name == "e2e" else 0))
                res["cpu"] = meters[name].stop()
                (e2e if name == "e2e" else raw).append(res)
                rate = len(res["done"]) / res["elapsed"]
                log(f"run {r + 1} {name:4s}: {len(res['done'])} ballots in {res['elapsed']:.1f}s = {rate:.0f}/s  "
                    f"p50 {pct(res['latencies'], .5):.1f} ms  p95 {pct(res['latencies'], .95):.1f} ms  "
                    f"p99 {pct(res['latencies'], .99):.1f} ms  errors {len(res['errors'])}"
                    + (f"  repeats refused {res['repeats'] - res['double_votes']}/{res['repeats']}  count reads "
                       f"p95 {pct(res['count_latencies'], .95):.1f} ms ({len(res['count_latencies'])})"
                       if name == "e2e" else ""))
                log(f"  CPU a ballot: {CpuMeter.per_item(res['cpu'], len(res['done']))}")
                if name == "e2e":
                    log(f"  pipeline: {pipeline.stop()}")
                if res["errors"]:
                    log(f"  first errors: {res['errors'][:3]}")
        acked = sum(len(x["done"]) for x in e2e)
        e2e_rate = acked / sum(x["elapsed"] for x in e2e)
        bare_rate = sum(len(x["done"]) for x in raw) / sum(x["elapsed"] for x in raw)
        lat = [v for x in e2e for v in x["latencies"]]
        count_lat = [v for x in e2e for v in x["count_latencies"]]
        double_votes = sum(x["double_votes"] for x in e2e)
        if args.open_voters:
            # The latency a citizen sees at the target rate: the closed runs above measure the most the platform
            # takes, where 40 clients always waiting make the latency 40 / throughput whatever the platform does.
            voters = list(range(args.voters, everyone))
            meters["e2e"].start()
            pipeline.start()
            res = asyncio.run(run_open(platform.url, bid, ids, tokens, voters, args.open_rate))
            cpu = meters["e2e"].stop()
            lat = res["latencies"]
            count_lat += res["count_latencies"]
            acked += len(res["done"])
            log(f"open run: {len(voters)} citizens arriving at {args.open_rate:.0f}/s: {len(res['done'])} ballots in "
                f"{res['elapsed']:.1f}s = {len(res['done']) / res['elapsed']:.0f}/s  p50 {pct(lat, .5):.1f} ms  "
                f"p95 {pct(lat, .95):.1f} ms  p99 {pct(lat, .99):.1f} ms  errors {len(voters) - len(res['done'])}"
                f"{' (' + ', '.join(f'{k} {v}' for k, v in res['kinds'].most_common()) + ')' if res['kinds'] else ''}  "
                f"connections {res['connections']}  count reads p95 {pct(res['count_latencies'], .95):.1f} ms "
                f"({len(res['count_latencies'])})")
            log(f"  CPU a ballot: {CpuMeter.per_item(cpu, len(res['done']))}")
            log(f"  pipeline: {pipeline.stop()}")

        db = mongo.client().parvis_consultation
        wait_until(lambda: round_documents(db) == [], 30, 0.2, "rounds finished")
        counters = db.counters.find_one({"_id": bid})
        stored = db.ballots.count_documents({"consultation_id": bid})
        participations = db.participations.count_documents({"consultation_id": bid})
        log(f"after the runs: {acked} acknowledged, {stored} ballots stored, {participations} participations, "
            f"{counters.get('p:web')} counted; double votes accepted: {double_votes}")
        consistent = acked == stored == participations == counters.get("p:web")

        t = time.perf_counter()
        filled = asyncio.run(fill_up(platform.broker.url, bid, ids, acked, args.total))
        total = db.ballots.count_documents({"consultation_id": bid})
        log(f"filled up to {total} ballots through the service's RPC in {filled:.1f}s ({(total - acked) / filled:.0f}/s)")
        data(platform.url, "mutation($b: ID!) { advanceBudgetPhase(budgetId: $b, to: REVIEWING_BALLOTS) { state } }",
             {"b": bid})
        data(platform.url, "mutation($id: ID!) { publishConsultationResults(id: $id) { state } }", {"id": bid})
        timings = []
        for _ in range(10):
            t = time.perf_counter()
            r = httpx.post(f"{platform.url}/graphql", json={"query": RESULTS, "variables": {"id": bid}}, timeout=30)
            timings.append(time.perf_counter() - t)
            result = r.json()["data"]["consultationResults"]
        votes = sum(p["votes"]["total"] for h in result["headings"] for p in h["projects"])
        log(f"results of {result['participation']['total']} ballots ({votes} votes): first {timings[0] * 1000:.1f} ms, "
            f"median {sorted(timings)[5] * 1000:.1f} ms, max {max(timings) * 1000:.1f} ms (through the gateway)")
        t = time.perf_counter()
        pb = httpx.get(f"{platform.url}/consultations/{bid}/territoire.pb", timeout=120)
        log(f"Pabulib export of {total} ballots: {time.perf_counter() - t:.2f}s, {len(pb.content) / 1e6:.1f} MB")
        sums = pipeline.read()
        if sums.get("parvis_consultation_cast_round_ballots_count"):
            n = sums["parvis_consultation_cast_round_ballots_count"]
            log(f"rounds of writes: {n:.0f}, {sums['parvis_consultation_cast_round_ballots_sum'] / n:.1f} ballots and "
                f"{sums.get('parvis_consultation_cast_round_seconds_sum', 0) / n * 1000:.1f} ms a round on average")
        if sums.get("parvis_rpc_client_batch_items_count"):
            n = sums["parvis_rpc_client_batch_items_count"]
            log(f"the gateway's batches (gateway/batching.py): {n:.0f}, "
                f"{sums['parvis_rpc_client_batch_items_sum'] / n:.1f} ballots a batch on average")
        p95 = pct(lat, .95)
        log(f"end to end {e2e_rate:.0f} ballots/s against bare {bare_rate:.0f}/s over {args.runs} alternating runs "
            f"each: {e2e_rate / bare_rate:.0%} of bare")
        verdict = lambda ok: "OK" if ok else "MISS"  # noqa: E731
        log("targets: "
            f">= {TARGETS['ballots_per_s']} ballots/s: {verdict(e2e_rate >= TARGETS['ballots_per_s'])} ({e2e_rate:.0f}); "
            f">= 50 % of bare: {verdict(e2e_rate >= TARGETS['ratio_bare'] * bare_rate)} ({e2e_rate / bare_rate:.0%}); "
            f"p95 <= {TARGETS['p95_ms']} ms{' at ' + format(args.open_rate, '.0f') + '/s' if args.open_voters else ''}: "
            f"{verdict(p95 <= TARGETS['p95_ms'])} ({p95:.1f}); "
            f"zero double votes: {verdict(double_votes == 0 and consistent)} ({double_votes}, consistent={consistent}); "
            f"results <= 1 s: {verdict(max(timings) <= TARGETS['results_s'])} ({max(timings) * 1000:.0f} ms); "
            f"count read p95 <= 20 ms: {verdict(pct(count_lat, .95) <= TARGETS['count_p95_ms'])} "
            f"({pct(count_lat, .95):.1f})")
        del service
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
