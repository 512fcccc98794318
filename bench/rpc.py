"""RPC benchmark: the gateway's nameko client (gateway.rpc.RpcClient) against a bare aio-pika baseline.

Run from the repository root: `.venv/bin/python bench/rpc.py` (`make bench`). It starts its own
nx-27017 database and one `consultation` service on a throw-away RabbitMQ vhost, measures
`consultation.ping` at 1, 10 and 100 calls in flight with both clients (in alternating runs, AB BA …),
prints a table and the targets (printed, never asserted: exit 0 on MISS), and removes everything it
created. See bench/README.md.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import math
import os
import pstats
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aio_pika  # noqa: E402

from tests.support import free_port, free_port_block  # noqa: E402  (as the other benchmarks do)

SERVICE = "consultation"
METHOD = "ping"
TARGET_RATIO = 0.80     # client throughput ≥ 80 % of bare at 100 in flight
TARGET_P50_MS = 3.0     # p50 of a single call (1 in flight) ≤ 3 ms


def log(msg: str) -> None:
    print(f"bench | {msg}", flush=True)


# -- the bare baseline: request–reply with plain aio-pika, nothing else ----------------------------
class BareClient:
    def __init__(self, url: str):
        self.url = url
        self.futures: dict[str, asyncio.Future] = {}
        self.queue_name = f"rpc.reply-bench-{uuid.uuid4()}"

    async def connect(self) -> None:
        self.connection = await aio_pika.connect(self.url)
        channel = await self.connection.channel(publisher_confirms=False)
        self.exchange = await channel.declare_exchange("nameko-rpc", aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(self.queue_name, exclusive=True, auto_delete=True)
        await queue.bind(self.exchange, routing_key=self.queue_name)
        await queue.consume(self.on_reply, no_ack=True)

    async def on_reply(self, message) -> None:
        fut = self.futures.pop(message.correlation_id, None)
        if fut is not None:
            fut.set_result(json.loads(message.body))

    async def call(self, service: str, method: str):
        cid = uuid.uuid4().hex
        fut = self.futures[cid] = asyncio.get_running_loop().create_future()
        await self.exchange.publish(
            aio_pika.Message(b'{"args": [], "kwargs": {}}', content_type="application/json",
                             reply_to=self.queue_name, correlation_id=cid),
            routing_key=f"{service}.{method}")
        return (await fut)["result"]

    async def close(self) -> None:
        await self.connection.close()


# -- the load driver ----------------------------------------------------------------------------------
async def drive(client, calls: int, in_flight: int) -> dict:
    """`in_flight` tasks issue calls back to back until `calls` have been made.

    Returns the sorted latencies (ms), wall time, errors and the CPU time this process used (the caller's
    own cost: the service and the broker run in other processes)."""
    latencies: list[float] = []
    remaining = calls
    errors = 0
    clock = time.perf_counter

    async def worker():
        nonlocal remaining, errors
        while remaining > 0:
            remaining -= 1
            t0 = clock()
            try:
                await client.call(SERVICE, METHOD)
            except Exception:  # noqa: BLE001 - counted, not fatal
                errors += 1
                continue
            latencies.append((clock() - t0) * 1000.0)

    cpu0, start = time.process_time(), clock()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    wall, cpu = clock() - start, time.process_time() - cpu0
    return {"latencies": latencies, "seconds": wall, "cpu": cpu, "errors": errors}


def summarize(runs: list[dict], in_flight: int) -> dict:
    """All runs of one client at one level as one: throughput = calls / summed wall time."""
    lat = sorted(x for r in runs for x in r["latencies"])
    wall = sum(r["seconds"] for r in runs)
    cpu = sum(r["cpu"] for r in runs)

    def pct(p: float) -> float:  # nearest rank
        return lat[min(len(lat) - 1, max(0, math.ceil(p / 100 * len(lat)) - 1))] if lat else float("nan")

    return {"in_flight": in_flight, "calls": len(lat), "errors": sum(r["errors"] for r in runs),
            "seconds": round(wall, 3), "calls_per_s": round(len(lat) / wall, 1) if wall else 0.0,
            "p50_ms": round(pct(50), 3), "p95_ms": round(pct(95), 3), "p99_ms": round(pct(99), 3),
            "caller_cpu_us_per_call": round(cpu / max(1, len(lat)) * 1e6, 1),
            "runs_calls_per_s": [round(len(r["latencies"]) / r["seconds"], 1) if r["seconds"] else 0.0 for r in runs]}


async def benchmark(url: str, args) -> dict:
    from gateway.rpc import RpcClient  # used as the gateway uses it: `await client.call(service, method)`

    clients = {"bare": BareClient(url), "client": RpcClient(url)}
    for c in clients.values():
        await c.connect()
    try:
        # Both clients answer, and the reply is what we expect.
        for name, c in clients.items():
            reply = await asyncio.wait_for(c.call(SERVICE, METHOD), 10)
            if not reply or reply.get("service") != SERVICE:
                raise SystemExit(f"unexpected ping reply via {name}: {reply!r}")
        results: dict[int, dict[str, dict]] = {}
        for level, calls in args.levels:
            for c in clients.values():  # warm-up at this concurrency, not measured
                await drive(c, max(level, min(args.warmup, calls)), level)
            # The calls are split into `rounds` runs per client, in the order AB BA AB BA …, so that drift
            # (other load, CPU frequency, the broker's state) falls on both sides alike.
            runs: dict[str, list[dict]] = {"bare": [], "client": []}
            rounds = min(args.rounds, calls)
            per_run = [calls // rounds + (1 if i < calls % rounds else 0) for i in range(rounds)]
            for r, n in enumerate(per_run):
                for name in (("bare", "client") if r % 2 == 0 else ("client", "bare")):
                    runs[name].append(await drive(clients[name], n, level))
            results[level] = {name: summarize(rs, level) for name, rs in runs.items()}
            b, c = results[level]["bare"], results[level]["client"]
            log(f"{level:>3} in flight: bare {b['calls_per_s']:.0f} calls/s (runs {b['runs_calls_per_s']}), "
                f"client {c['calls_per_s']:.0f} calls/s (runs {c['runs_calls_per_s']}), "
                f"errors {b['errors']}/{c['errors']}")
        profile = await profile_clients(clients, args.profile) if args.profile else None
        return {"results": results, "profile": profile}
    finally:
        for c in clients.values():
            try:
                await c.close()
            except Exception:  # noqa: BLE001
                pass


async def profile_clients(clients, calls: int) -> str:
    """Where the gateway client spends more than the baseline: cProfile (CPU time) of this process while
    each client makes `calls` calls at 1 and at 100 in flight, then the per-call difference by function.
    Absolute figures are inflated several times by the profiler; the difference between the two is the point."""
    out = [""]
    for level in (1, 100):
        per_rpc = {}
        for name in ("bare", "client"):
            await drive(clients[name], min(200, calls), level)
            prof = cProfile.Profile(time.process_time)
            prof.enable()
            await drive(clients[name], calls, level)
            prof.disable()
            per_rpc[name] = {k: (v[1] / calls, v[2] / calls * 1e6) for k, v in pstats.Stats(prof).stats.items()}
        b, c = per_rpc["bare"], per_rpc["client"]
        tb, tc = sum(v[1] for v in b.values()), sum(v[1] for v in c.values())
        out.append(f"profile at {level} in flight ({calls} calls each): function calls per RPC bare "
                   f"{sum(v[0] for v in b.values()):.0f}, client {sum(v[0] for v in c.values()):.0f}; profiled CPU per "
                   f"RPC bare {tb:.0f} µs, client {tc:.0f} µs ({100 * (tc - tb) / tb:+.0f} %). Largest extra in the client:")
        diff = sorted(((c.get(k, (0, 0))[1] - b.get(k, (0, 0))[1], c.get(k, (0, 0))[0] - b.get(k, (0, 0))[0], k)
                       for k in set(b) | set(c)), reverse=True)
        for dt, dn, (path, line, fn) in diff[:15]:
            short = path.split("site-packages/")[-1].split("/lib/python3.11/")[-1].replace(str(ROOT) + "/", "")
            out.append(f"  {dt:+7.1f} µs  {dn:+5.2f} calls  {short}:{line}({fn})")
    return "\n".join(out)


# -- infrastructure: vhost, database, service ---------------------------------------------------------
def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def rabbitmqctl(*argv: str) -> None:
    proc = subprocess.run(["rabbitmqctl", *argv], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(argv)} failed: {proc.stderr.strip() or proc.stdout.strip()}")


class Child:
    """A child process whose output goes to a file (no reader thread in the measuring process)."""

    def __init__(self, name: str, argv: list[str], env: dict, logfile: Path):
        self.name = name
        self.logfile = logfile
        with open(logfile, "wb") as out:
            self.proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)

    def printed(self, text: str) -> bool:
        return text in self.logfile.read_text(errors="replace")

    def tail(self, n: int = 40) -> list[str]:
        return self.logfile.read_text(errors="replace").splitlines()[-n:]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def fail(self, what: str) -> SystemExit:
        return SystemExit(f"{self.name} {what}; its last output:\n  " + "\n  ".join(self.tail()))

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: only what we started
                self.proc.wait()


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


# -- output -------------------------------------------------------------------------------------------
def report(summary: dict) -> list[str]:
    w = 104
    lines = ["", f"{SERVICE}.{METHOD}: {summary['rounds']} alternating runs per client and level, "
                 f"max_workers={summary['max_workers']}, {summary['cpus']} CPUs",
             f"{'':>16}| {'bare aio-pika':^34} | {'gateway.rpc.RpcClient':^34} |",
             f"{'in flight calls':>16}| {'calls/s':>8} {'p50':>6} {'p95':>6} {'p99':>6} {'cpu µs':>6} | "
             f"{'calls/s':>8} {'p50':>6} {'p95':>6} {'p99':>6} {'cpu µs':>6} | {'client/bare':>11}",
             "-" * w]
    for row in summary["table"]:
        cells = []
        for r in (row["bare"], row["client"]):
            cells.append(f"{r['calls_per_s']:>8.0f} {r['p50_ms']:>6.2f} {r['p95_ms']:>6.2f} {r['p99_ms']:>6.2f} "
                         f"{r['caller_cpu_us_per_call']:>6.0f}")
        lines.append(f"{row['in_flight']:>9} {row['calls']:>6}| {cells[0]} | {cells[1]} | {row['ratio_pct']:>10.1f}%")
    lines += ["-" * w, "p50/p95/p99: latency of one call in ms, seen by the caller; cpu µs: CPU time of the calling "
              "process per call", ""]
    for t in summary["targets"]:
        lines.append(f"{'PASS' if t['pass'] else 'MISS'}  {t['name']}: {t['figure']}")
    return lines


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--max-workers", type=int, default=10, help="PARVIS_MAX_WORKERS of the service (default 10)")
    p.add_argument("--calls-1", type=int, default=2000, help="measured calls at 1 in flight (default 2000)")
    p.add_argument("--calls-10", type=int, default=5000, help="measured calls at 10 in flight (default 5000)")
    p.add_argument("--calls-100", type=int, default=5000, help="measured calls at 100 in flight (default 5000)")
    p.add_argument("--warmup", type=int, default=500, help="unmeasured calls per client before each level (default 500)")
    p.add_argument("--rounds", type=int, default=4,
                   help="split each level's calls into this many runs per client, alternating bare/client "
                        "in the order AB BA AB BA… (default 4)")
    p.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672/",
                   help="RabbitMQ to use; a dedicated vhost is created on it for the run")
    p.add_argument("--profile", type=int, default=0, metavar="CALLS",
                   help="afterwards, cProfile the caller side of both clients for CALLS calls at 1 and at 100 in "
                        "flight and print where the gateway client spends more than the baseline (e.g. 1500)")
    p.add_argument("--json", metavar="PATH", help="also write the figures to PATH as JSON")
    args = p.parse_args(argv)
    if min(args.calls_1, args.calls_10, args.calls_100, args.rounds, args.max_workers) < 1 or args.warmup < 0:
        p.error("counts, --rounds and --max-workers must be at least 1")
    args.levels = [(1, args.calls_1), (10, args.calls_10), (100, args.calls_100)]
    return args


@contextlib.contextmanager
def stack(broker_url: str, max_workers: int):
    """A throw-away vhost, nx-27017 and one service; yields (amqp url of the vhost, service Child).

    Everything is removed on the way out, whatever happens: children terminated, vhost and temp dir deleted.
    """
    vhost = f"parvis-bench-{os.getpid()}"
    broker = urllib.parse.urlsplit(broker_url)
    url = urllib.parse.urlunsplit(broker._replace(path="/" + urllib.parse.quote(vhost, safe="")))
    tmp = Path(tempfile.mkdtemp(prefix="parvis-bench-"))
    children: list[Child] = []
    vhost_made = False
    started = time.monotonic()
    try:
        rabbitmqctl("add_vhost", vhost)
        vhost_made = True
        rabbitmqctl("set_permissions", "-p", vhost, broker.username or "guest", ".*", ".*", ".*")

        mongo_port = free_port()
        metrics_base = free_port_block(5)  # consultation serves /metrics on base+1
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PARVIS_", "MONGO_", "AMQP_"))}
        env.update({
            "MONGO_URL": f"mongodb://127.0.0.1:{mongo_port}/",
            "AMQP_URL": url,
            "PARVIS_DATA_DIR": str(tmp),
            # config.py refuses a PARVIS_SECRET under 32 characters; any value will do here.
            "PARVIS_SECRET": "bench-" + "x" * 32,
            "PARVIS_METRICS_PORT_BASE": str(metrics_base),
            "PARVIS_METRICS_ADDR": "127.0.0.1",
            "PARVIS_MAX_WORKERS": str(max_workers),
            "PYTHONUNBUFFERED": "1",
        })
        (tmp / "mongo").mkdir()
        db = Child("nx-27017", [sys.executable, "-m", "parvis.nxdb", "--data-dir", str(tmp / "mongo"),
                                "--host", "127.0.0.1", "-p", str(mongo_port),
                                # its defaults are /tmp/nx_27017.{pid,log}, shared with any other instance
                                "--pid-file", str(tmp / "nx.pid"), "--log-file", str(tmp / "nx.log")], env,
                   tmp / "nx-27017.out")
        children.append(db)
        if not wait_until(lambda: port_open(mongo_port) or not db.alive(), 30) or not db.alive():
            raise db.fail("did not start")
        svc = Child(SERVICE, [sys.executable, "-m", "parvis.cli", "service", SERVICE], env, tmp / f"{SERVICE}.out")
        children.append(svc)
        if not wait_until(lambda: svc.printed(f"PARVIS-READY {SERVICE}") or not svc.alive(), 60) or not svc.alive():
            raise svc.fail("did not become ready")
        log(f"vhost {vhost}, nx-27017 on :{mongo_port}, {SERVICE} ready (max_workers={max_workers}) "
            f"in {time.monotonic() - started:.1f}s")
        yield url, svc
        if not svc.alive():
            raise svc.fail("died during the run")
    finally:
        for child in reversed(children):  # service first, database last
            child.stop()
        if vhost_made:
            try:
                rabbitmqctl("delete_vhost", vhost)
            except Exception as exc:  # noqa: BLE001
                log(f"warning: {exc}")
        shutil.rmtree(tmp, ignore_errors=True)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    args = parse_args(argv)
    # SIGTERM (e.g. from make or a CI timeout) unwinds through the clean-up like Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    try:
        with stack(args.broker, args.max_workers) as (url, _svc):
            out = asyncio.run(benchmark(url, args))
    except KeyboardInterrupt:
        log("interrupted (everything it started is stopped and removed)")
        return 130

    table = []
    for level, calls in args.levels:
        b, c = out["results"][level]["bare"], out["results"][level]["client"]
        table.append({"in_flight": level, "calls": calls, "bare": b, "client": c,
                      "ratio_pct": round(100 * c["calls_per_s"] / b["calls_per_s"], 1) if b["calls_per_s"] else 0.0})
    by_level = {row["in_flight"]: row for row in table}
    targets = []
    if 100 in by_level:
        r = by_level[100]["ratio_pct"]
        targets.append({"name": f"≥ {TARGET_RATIO:.0%} of bare throughput at 100 in flight".replace("%", " %"),
                        "figure": f"{r:.1f} %", "pass": r >= 100 * TARGET_RATIO})
    if 1 in by_level:
        p50 = by_level[1]["client"]["p50_ms"]
        targets.append({"name": f"p50 of a single call (1 in flight) ≤ {TARGET_P50_MS:g} ms",
                        "figure": f"{p50:.2f} ms", "pass": p50 <= TARGET_P50_MS})
    summary = {"service": SERVICE, "method": METHOD, "max_workers": args.max_workers, "rounds": args.rounds,
               "cpus": os.cpu_count(), "python": sys.version.split()[0], "aio_pika": aio_pika.__version__,
               "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seconds": round(time.monotonic() - started, 1),
               "table": table, "targets": targets}
    print("\n".join(report(summary)), flush=True)
    log(f"done in {summary['seconds']:.0f}s")
    if out["profile"]:
        print(out["profile"], flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
        log(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
