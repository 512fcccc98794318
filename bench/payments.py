"""Payment-link creation benchmark: billing software creates links through the gateway with idempotency keys, half
of them sent twice (a retry after a lost answer), against a bare insert of the same documents in the same run.

Run from the repository root (`flock /tmp/parvis-bench.lock .venv/bin/python bench/payments.py`; options
`--links 4000 --clients 40 --runs 2`). It starts its own nx-27017, a throw-away RabbitMQ vhost, the payment_link
service, the notification service (the gateway's revocation list) and the gateway, saves a régie, then in alternating
runs (end to end, bare, end to end, bare: the machine's drift falls on both alike):

1. end to end: `--clients` keep-alive connections (bench/httpload.py) send `createPaymentLink(input, idempotencyKey)`
   with a `service` token (billing software, limited to its régie), each link once, and every other link a second
   time right after its answer (same key, same body: it must come back `replayed` with the same id);
2. bare: the same request bodies over as many connections to a bare Starlette endpoint (uvicorn, one process) that
   parses them and inserts the payment document under its idempotency key into the same database (a duplicate key
   answers the stored one), without GraphQL, token, rules, events or outbox: the floor of "a link received over
   HTTP, stored once" on this machine.
Rates are links created a second (new links / time of the run) and requests a second (resends included). Afterwards
the database is checked: one payment per idempotency key, none lost.

With `--notifications N` (PayFiP's simulator started too): N payments are created and their sessions started through
the service's RPC, paid on the simulator's page (its own notifications turned off), then N notifications are posted
to the gateway, each to the URL its session gave PayFiP (`/pay/notify/payfip/<payment id>`, as the simulator
records it), over `--clients` connections, each making the service read the result back
with recupererDetailPaiementSecurise and write the success: rate = payments ended `success` / time from the first
notification to the last success; each `payment_link.succeeded` event counted once on the bus (a queue of the
bench's own), and the partner's webhooks (the notification service's, registered for the régie) counted by a local
receiver: each payment once. The CPU each process spends (from /proc, bench/httpload.py's CpuMeter: the gateway,
payment_link, notification, nx-27017, the RabbitMQ node, which other work on the machine may share, and this load
generator) is printed a link and a notification. Figures and targets are printed, never asserted.
"""
from __future__ import annotations

import argparse
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

from bench.consultation import log, pct  # noqa: E402 - the benchmarks' output, alike
from bench.httpload import Connection, CpuMeter, ceiling, rabbitmq_pid  # noqa: E402

TARGETS = {"links_per_s": 300, "ratio_bare": 0.40, "notifications_per_s": 200}
CREATE = ("mutation($i: PaymentLinkInput!, $k: String) { createPaymentLink(input: $i, idempotencyKey: $k) "
          "{ replayed payment { id } } }")
REGIE = {"id": "regie-bench", "numcli": "123456", "name": "Régie du banc d'essai", "services": ["eau"],
         "provider": {"provider": "payfip", "payfip_mode": "T"}}

BARE_APP = r'''
# A payment link received over HTTP and stored once under its idempotency key, and nothing else: the body parsed,
# the document inserted with pymongo (a duplicate key answers the stored one); no GraphQL, token, rule, event.
import secrets, sys, time
import orjson
from pymongo import MongoClient
from pymongo.errors import DuplicateKeyError
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
import uvicorn
payments = MongoClient(sys.argv[1], tz_aware=True)["parvis_bench_bare"]["payments"]
payments.create_index("idem_slot", unique=True, sparse=True)
def create(request_body: bytes) -> bytes:
    v = orjson.loads(request_body)["variables"]
    i = v["i"]
    doc = {"_id": "pay-" + secrets.token_hex(10), "idem_slot": v["k"], "regie_id": i["regieId"], "amount": i["amount"],
           "reference": i["reference"], "description": i["description"], "email": i["email"], "state": "created",
           "created_ts": time.time()}
    replayed = False
    try:
        payments.insert_one(doc)
    except DuplicateKeyError:
        doc, replayed = payments.find_one({"idem_slot": v["k"]}), True
    return orjson.dumps({"data": {"createPaymentLink": {"replayed": replayed, "payment": {"id": doc["_id"]}}}})
async def endpoint(request):
    from starlette.concurrency import run_in_threadpool
    return Response(await run_in_threadpool(create, await request.body()), media_type="application/json")
uvicorn.run(Starlette(routes=[Route("/graphql", endpoint, methods=["POST"])]), host="127.0.0.1",
            port=int(sys.argv[2]), log_level="warning", access_log=False)
'''


def body(run: str, n: int) -> bytes:
    return json.dumps({"query": CREATE, "variables": {"k": f"{run}-key-{n}", "i": {
        "regieId": REGIE["id"], "amount": 1000 + n % 5000, "reference": f"{run.upper()}{n:08d}",
        "description": f"Facture d'eau n°{n} — 2e semestre", "email": f"abonne{n % 997}@example.fr"}}}).encode()


async def run_links(url: str, run: str, links: list[int], clients: int, token: str | None) -> dict:
    parts = urlsplit(url)
    queue = list(links)
    created: dict[int, str] = {}
    latencies: list[float] = []
    errors: list[str] = []
    resent = mismatched = 0
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}

    async def worker():
        nonlocal resent, mismatched
        conn = Connection(parts.hostname, parts.port)
        try:
            while queue:
                n = queue.pop()
                for attempt in range(2 if n % 2 == 0 else 1):
                    t = time.perf_counter()
                    answer = (await conn.request("POST", "/graphql", body(run, n), headers)).json()
                    latencies.append(time.perf_counter() - t)
                    if "errors" in answer:
                        errors.append(answer["errors"][0]["message"])
                        break
                    got = answer["data"]["createPaymentLink"]
                    if attempt == 0:
                        created[n] = got["payment"]["id"]
                    else:
                        resent += 1
                        mismatched += (not got["replayed"]) or got["payment"]["id"] != created.get(n)
        finally:
            conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return {"created": created, "elapsed": time.perf_counter() - started, "latencies": latencies, "errors": errors,
            "resent": resent, "mismatched": mismatched}


async def rpc_many(amqp_url: str, calls: list[tuple[str, dict, dict]], in_flight: int = 40) -> list:
    """Many RPCs (method, caller, kwargs) to payment_link, `in_flight` at once; the answers in order."""
    from gateway.rpc import RpcClient
    from tests.support import TEST_SECRET

    client = RpcClient(amqp_url, secret=TEST_SECRET)
    await client.connect()
    answers: list = [None] * len(calls)
    queue = list(range(len(calls)))

    async def worker():
        while queue:
            i = queue.pop()
            method, caller, kwargs = calls[i]
            answers[i] = await client.call("payment_link", method, timeout=120.0, context={"caller": caller}, **kwargs)

    try:
        await asyncio.gather(*(worker() for _ in range(in_flight)))
    finally:
        await client.close()
    return answers


async def choose_paid(next_urls: list[str], in_flight: int = 20) -> None:
    """The payers on the simulator's page: each presses « Payer par carte » (P)."""
    import httpx

    queue = list(next_urls)
    async with httpx.AsyncClient(timeout=60) as client:
        async def worker():
            while queue:
                url = queue.pop()
                action, _, query = url.partition("?")
                await client.post(action, data={"idop": query.split("=", 1)[1], "resultrans": "P"})

        await asyncio.gather(*(worker() for _ in range(in_flight)))


async def post_notifications(url: str, posts: list[tuple[str, str]], clients: int) -> list[float]:
    """Each (path, idOp) posted as PayFiP posts it: `idOp=…` to the urlnotif its session gave it."""
    parts = urlsplit(url)
    queue = list(posts)
    latencies: list[float] = []

    async def worker():
        conn = Connection(parts.hostname, parts.port)
        try:
            while queue:
                path, idop = queue.pop()
                t = time.perf_counter()
                r = await conn.request("POST", path, f"idOp={idop}".encode(),
                                       {"Content-Type": "application/x-www-form-urlencoded"})
                latencies.append(time.perf_counter() - t)
                assert r.status == 200, r.body
        finally:
            conn.close()

    await asyncio.gather(*(worker() for _ in range(clients)))
    return latencies


class Receiver:
    """The partner's endpoint: counts the webhooks it takes, by payment. An asyncio server on a thread of its own: it
    stands in for a partner's server, which runs on another machine; the ThreadingHTTPServer it replaced started a
    thread for each webhook (the service opens a connection for each) and took about 0.5 ms of this 2-core machine's
    CPU a webhook from the platform being measured."""

    def __init__(self):
        import threading

        received: dict[str, int] = {}
        self.received = received
        ready = threading.Event()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value)
                    body = json.loads(await reader.readexactly(length))
                    pid = body["data"]["payment_id"]
                    received[pid] = received.get(pid, 0) + 1
                    writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        async def serve() -> None:
            self.server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=128)
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()
            async with self.server:
                await self.server.serve_forever()

        def run() -> None:
            self.loop = asyncio.new_event_loop()
            self.task = self.loop.create_task(serve())
            try:
                self.loop.run_until_complete(self.task)
            except asyncio.CancelledError:
                pass
            finally:
                self.loop.close()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait(10)
        self.url = f"http://127.0.0.1:{self.port}/webhooks"

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(5)


def notifications(platform, mongo, sim: str, count: int, clients: int, meter: CpuMeter | None = None) -> None:
    import httpx

    from tests.payment_flows import BusTap
    from tests.support import rpc_call, wait_until

    agent = {"role": "agent", "subject": "bench"}
    receiver = Receiver()
    rpc_call(platform.broker.url, "notification", "add_webhook", caller=agent, partner="bench", url=receiver.url,
             topics=["payment_link.succeeded"], regie_ids=[REGIE["id"]])
    httpx.post(f"{sim}/_sim/control", json={"notify": "never"}).raise_for_status()
    tap = BusTap(platform.broker.url)  # before anything happens: every success is counted
    t = time.perf_counter()
    created = asyncio.run(rpc_many(platform.broker.url, [("create_payment_link", agent, {"payment": {
        "regie_id": REGIE["id"], "amount": 1000 + n, "reference": f"NOTIF{n:08d}", "description": "Facture d'eau",
        "email": f"abonne{n % 997}@example.fr"}}) for n in range(count)]))
    ids = [a["payment"]["id"] for a in created]
    sessions = asyncio.run(rpc_many(platform.broker.url, [("start_session", {"role": "public"}, {"id": i})
                                                          for i in ids]))
    asyncio.run(choose_paid([s["next_url"] for s in sessions]))
    log(f"{count} payments created, started and paid on the simulator's page in {time.perf_counter() - t:.0f}s")
    urls = {o["idop"]: urlsplit(o["urlnotif"]).path for o in httpx.get(f"{sim}/_sim/operations").json()["operations"]}
    posts = [(urls[s["provider_id"]], s["provider_id"]) for s in sessions]  # where PayFiP would post each
    db = mongo.client()["parvis_payment_link"]["payments"]
    try:
        if meter is not None:
            meter.start()
        started = time.perf_counter()
        latencies = asyncio.run(post_notifications(platform.url, posts, clients))
        posted = time.perf_counter() - started
        wait_until(lambda: db.count_documents({"state": "success", "reference": {"$regex": "^NOTIF"}}) >= count, 600,
                   1.0, "every payment paid")
        done = time.perf_counter() - started
        cpu = meter.stop() if meter is not None else None
        wait_until(lambda: len({e["data"]["payment_id"] for e in tap.envelopes
                                if e["type"] == "payment_link.succeeded"}) >= count, 900, 1.0, "every event")
        events = time.perf_counter() - started
        time.sleep(3)
        by_payment: dict[str, set] = {}
        for env in tap.envelopes:
            if env["type"] == "payment_link.succeeded":
                by_payment.setdefault(env["data"]["payment_id"], set()).add(env["event_id"])
        twice = sum(1 for events in by_payment.values() if len(events) > 1)
        deliveries = sum(1 for env in tap.envelopes if env["type"] == "payment_link.succeeded")
        wait_until(lambda: len(receiver.received) >= count, 900, 1.0, "every webhook")
        webhooks = time.perf_counter() - started
        time.sleep(3)
        hooked_twice = sum(1 for n in receiver.received.values() if n > 1)
    finally:
        tap.close()
        receiver.close()
    rate = count / done
    log(f"{count} notifications posted in {posted:.1f}s (p50 {pct(latencies, .5):.1f} ms, p95 {pct(latencies, .95):.1f}"
        f" ms); every payment success after {done:.1f}s = {rate:.0f} payments confirmed/s; succeeded events: "
        f"{len(by_payment)} payments ({events:.0f}s after the first notification), {twice} with two event ids, "
        f"{deliveries} deliveries on the bus; partner's "
        f"webhooks: {len(receiver.received)} payments, {hooked_twice} twice, the last {webhooks:.1f}s after the first "
        f"notification")
    if cpu is not None:
        log(f"  CPU a notification, until the last success: {CpuMeter.per_item(cpu, count)}")
    log(f"target: >= {TARGETS['notifications_per_s']} notifications/s: "
        f"{'OK' if rate >= TARGETS['notifications_per_s'] else 'MISS'} ({rate:.0f}); one event and one webhook each: "
        f"{'OK' if twice == 0 == hooked_twice and len(by_payment) == count == len(receiver.received) else 'MISS'}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--links", type=int, default=4000)
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--notifications", type=int, default=0, help="then this many provider notifications")
    args = parser.parse_args()
    from tests.payment_flows import start_simulator
    from tests.support import Broker, Mongo, Platform, free_port, http_status, rpc_call, token, wait_until

    mongo, broker = Mongo().start(), Broker().start()
    sim_proc, sim = start_simulator() if args.notifications else (None, None)
    # The notifications all come from one address (the bench's): the gateway's limit for an anonymous client (100/s
    # by address) would measure itself; a provider's servers are few addresses too (see the README's runbook).
    platform = Platform(mongo, broker, **({"PARVIS_PAYFIP_URL": sim, "PARVIS_WEBHOOK_ALLOW": "127.0.0.1/32",
                                           "PARVIS_NOTIFY_INTERVAL": "0.2", "PARVIS_RATE_LIMIT": "0",
                                           # the notifications, not the reconciliation timer, must settle them:
                                           "PARVIS_PAYMENT_RECONCILE_INTERVAL": "3600"} if sim else {}))
    bare = None
    try:
        service = platform.service("payment_link")
        notification = platform.service("notification")  # the revocation list: without it, the gateway refuses
        gateway = platform.gateway()  # every token
        stack = {"gateway": gateway.proc.pid, "payment_link": service.proc.pid,
                 "notification": notification.proc.pid, "nx-27017": mongo.proc.pid, "rabbitmq": rabbitmq_pid(),
                 "load": os.getpid()}
        rpc_call(broker.url, "payment_link", "save_regie", caller={"role": "agent", "subject": "bench"}, **REGIE)
        billing = token("service", subject="service:bench", regies=[REGIE["id"]])
        if args.links:
            port = free_port()
            bare = subprocess.Popen([sys.executable, "-c", BARE_APP, mongo.url, str(port)], cwd=ROOT)
            bare_url = f"http://127.0.0.1:{port}"
            wait_until(lambda: http_status(f"{bare_url}/graphql") in (405, 200), 30)
            log(f"load generator ceiling (bench/httpload.py, trivial endpoint): {ceiling(args.clients):.0f} req/s")
            meters = {"e2e": CpuMeter(stack), "bare": CpuMeter({"bare app": bare.pid, "nx-27017": mongo.proc.pid,
                                                                "load": os.getpid()})}
            per_run = args.links // args.runs
            results: dict[str, list[dict]] = {"e2e": [], "bare": []}
            for r in range(args.runs):
                links = list(range(r * per_run, (r + 1) * per_run))
                order = [("e2e", platform.url, billing), ("bare", bare_url, None)]
                for name, url, tok in (order if r % 2 == 0 else order[::-1]):
                    meters[name].start()
                    res = asyncio.run(run_links(url, name, links, args.clients, tok))
                    res["cpu"] = meters[name].stop()
                    results[name].append(res)
                    requests = len(res["latencies"])
                    log(f"run {r + 1} {name:4s}: {len(res['created'])} links ({requests} requests) in {res['elapsed']:.1f}s"
                        f" = {len(res['created']) / res['elapsed']:.0f} links/s, {requests / res['elapsed']:.0f} req/s  "
                        f"p50 {pct(res['latencies'], .5):.1f} ms  p95 {pct(res['latencies'], .95):.1f} ms  "
                        f"errors {len(res['errors'])}  resends {res['resent']} (not replayed: {res['mismatched']})")
                    log(f"  CPU a link (its resend included): {CpuMeter.per_item(res['cpu'], len(res['created']))}")
                    if res["errors"]:
                        log(f"  first errors: {res['errors'][:3]}")
            rate = {k: sum(len(x["created"]) for x in v) / sum(x["elapsed"] for x in v) for k, v in results.items()}
            acked = sum(len(x["created"]) for x in results["e2e"])
            mismatched = sum(x["mismatched"] for x in results["e2e"])
            db = mongo.client()["parvis_payment_link"]["payments"]
            stored = db.count_documents({"regie_id": REGIE["id"]})
            slots = len(db.distinct("idem_slot", {"regie_id": REGIE["id"]}))
            duplicates = stored - slots + mismatched
            log(f"after the runs: {acked} links acknowledged, {stored} payments stored, {slots} distinct keys; "
                f"resends not answered with the first payment: {mismatched}")
            verdict = lambda ok: "OK" if ok else "MISS"  # noqa: E731
            ratio = rate["e2e"] / rate["bare"]
            log(f"end to end {rate['e2e']:.0f} links/s against bare {rate['bare']:.0f}/s over {args.runs} alternating runs "
                f"each: {ratio:.0%} of bare")
            log("targets: "
                f">= {TARGETS['links_per_s']} links/s: {verdict(rate['e2e'] >= TARGETS['links_per_s'])} ({rate['e2e']:.0f}); "
                f">= 40 % of bare: {verdict(ratio >= TARGETS['ratio_bare'])} ({ratio:.0%}); "
                f"0 duplicates: {verdict(duplicates == 0 and stored == acked)} ({duplicates}, stored={stored})")
        if args.notifications:
            notifications(platform, mongo, sim, args.notifications, args.clients,
                          CpuMeter({**stack, "simulator": sim_proc.proc.pid}))
    finally:
        if bare is not None:
            bare.kill()
            bare.wait(10)
        for stop in (platform.stop, broker.stop, mongo.stop, *((sim_proc.stop,) if sim_proc else ())):
            try:
                stop()
            except Exception as exc:  # noqa: BLE001 - clean up the rest all the same
                log(f"cleanup: {exc!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
