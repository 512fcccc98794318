"""Stack memory benchmark: RSS of the whole dev stack (`parvis up`), idle and under a mixed load.

Run from the repository root, one run at a time on a shared machine:
`flock /tmp/parvis-bench.lock .venv/bin/python bench/stack_memory.py [--seconds 60] [--json PATH]`.

It starts the platform exactly as `make run` does (`python -m parvis.cli up`: the supervisor, the embedded
nx-27017 database, the five services, the gateway, the dev SMTP server "devmail", demo data seeded), isolated
from any other stack: a RabbitMQ vhost of its own (tests/support.py `Broker`), a temporary PARVIS_DATA_DIR and
free ports. MONGO_URL and SMTP_URL are left unset on purpose: the embedded database and devmail are part of
what is measured.

The stack's memory is the sum over the supervisor and all its descendants (found through /proc), read from
/proc/<pid>/smaps_rollup every 0.5 s, with a breakdown by role (supervisor, nx, each service, gateway,
devmail). RSS counts pages shared between processes once per process; PSS splits them and is reported too,
but the project's targets are on RSS.

1. idle: after PARVIS-UP and a settle time, 10 s of samples; the max.
2. set-up (not judged): a few hundred events created, submitted and approved through GraphQL (in other communes
   than the fan-out's), a site and kiosks registered, subscribers written straight into parvis_notification.
3. under load for --seconds, all at once from this process (asyncio + bench/httpload.py keep-alive connections):
   anonymous public `events` queries; kiosks sending 100-vote batches; an event published in Labège every
   --fanout-every seconds, each one emailing every subscriber of agenda:commune:labege through devmail; and
   `serviceHealth` (which pings every service, consultation and payment_link included: they have no GraphQL
   operation of their own yet) a few times a second. Samples continue 10 s after the load; the peak is the max.
Figures and targets (idle <= 600 MiB, peak <= 1 GiB, on RSS) are printed, never asserted (exit 0 on MISS).
Everything started is stopped and removed at the end, also on an error, Ctrl-C or SIGTERM.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.httpload import Connection  # noqa: E402
from tests.support import TEST_SECRET, Broker, free_port, free_port_block, token  # noqa: E402

IDLE_TARGET_MIB = 600
LOAD_TARGET_MIB = 1024
SAMPLE_EVERY = 0.5
FANOUT_COMMUNE = "labege"

EVENTS_QUERY = """query($f: EventFilter, $n: Int!) { events(filter: $f, first: $n) { totalCount
  edges { node { id title startsAt endsAt commune { slug name } category moderationState status organizer { id name } } } } }"""
SUBMIT_VOTES = "mutation($v: [KioskVoteInput!]!) { submitKioskVotes(votes: $v) { accepted duplicates rejected { id } } }"
CREATE_EVENT = "mutation($e: EventInput!, $o: String) { createEvent(event: $e, organizer: $o) { id } }"
SUBMIT_EVENT = "mutation($id: ID!) { submitEvent(id: $id) { id version } }"
APPROVE_EVENT = ("mutation($id: ID!, $v: Int!) { moderateEvent(id: $id, version: $v, decision: APPROVE) "
                 "{ id moderationState } }")
HEALTH = "{ serviceHealth { name ok latencyMs } }"


def log(msg: str) -> None:
    print(f"bench | {msg}", flush=True)


# -- the process tree and its memory ------------------------------------------------------------------------

def role_of(cmdline: list[str]) -> str:
    """The stack role of a process, from its command line (`python -m parvis.cli service agenda` -> agenda)."""
    if "parvis.cli" in cmdline:
        rest = cmdline[cmdline.index("parvis.cli") + 1:]
        if rest[:1] == ["up"]:
            return "supervisor"
        if rest[:1] == ["service"] and len(rest) > 1:
            return rest[1]
        if rest[:1] == ["gateway"]:
            return "gateway"
    if "parvis.nxdb" in cmdline:
        return "nx"
    if "parvis.devmail" in cmdline:
        return "devmail"
    return os.path.basename(cmdline[0]) if cmdline else "?"


def descendants(root: int) -> list[int]:
    """root and every process below it. /proc/<pid>/task/*/children is not compiled into this kernel, so the
    parent links are read from every /proc/<pid>/stat (a few hundred small files: about a millisecond)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                stat = f.read()
        except OSError:  # gone meanwhile
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])  # the name in parentheses may hold spaces
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def memory_kib(pid: int) -> tuple[int, int] | None:
    """(Rss, Pss) in KiB from smaps_rollup; None if the process is gone."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        return None
    return rss, pss


class Sampler(threading.Thread):
    """Every SAMPLE_EVERY seconds, the memory of every process of the tree, tagged with the current phase.
    A thread (not an asyncio task) so that a busy load generator does not delay the samples."""

    def __init__(self, root: int):
        super().__init__(daemon=True)
        self.root = root
        self.phase = "start"
        self.samples: list[dict] = []  # {"t", "phase", "procs": {pid: (role, rss, pss)}}
        self.seen: dict[int, list[str]] = {}  # pid -> cmdline, for the clean-up of anything left behind
        self.stopped = threading.Event()

    def sample(self) -> dict:
        procs = {}
        for pid in descendants(self.root):
            if pid not in self.seen:
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        self.seen[pid] = f.read().decode(errors="replace").split("\0")[:-1]
                except OSError:
                    continue
            mem = memory_kib(pid)
            if mem is not None:
                procs[pid] = (role_of(self.seen[pid]), *mem)
        return {"t": time.monotonic(), "phase": self.phase, "procs": procs}

    def run(self) -> None:
        while not self.stopped.wait(SAMPLE_EVERY):
            self.samples.append(self.sample())

    def of(self, *phases: str) -> list[dict]:
        return [s for s in self.samples if s["phase"] in phases and s["procs"]]


def total(sample: dict, col: int = 1) -> float:
    """MiB of one sample: col 1 = RSS, 2 = PSS."""
    return sum(p[col] for p in sample["procs"].values()) / 1024


def by_role(sample: dict) -> dict[str, tuple[float, float]]:
    """{role: (RSS MiB, PSS MiB)}; roles with several processes (a child of a child) are summed."""
    out: dict[str, list[float]] = {}
    for role, rss, pss in sample["procs"].values():
        acc = out.setdefault(role, [0.0, 0.0])
        acc[0] += rss / 1024
        acc[1] += pss / 1024
    return {r: (v[0], v[1]) for r, v in out.items()}


ROLE_ORDER = ["supervisor", "nx", "devmail", "agenda", "consultation", "satisfaction", "payment_link",
              "notification", "gateway"]


def print_breakdown(title: str, sample: dict, reference: dict | None = None) -> None:
    roles = by_role(sample)
    ref = by_role(reference) if reference else {}
    log(title)
    log(f"  {'process':<13} {'RSS MiB':>8} {'PSS MiB':>8}" + (f" {'RSS vs idle':>12}" if ref else ""))
    for role in sorted(roles, key=lambda r: (ROLE_ORDER.index(r) if r in ROLE_ORDER else 99, r)):
        rss, pss = roles[role]
        delta = f" {rss - ref[role][0]:>+11.1f}" if role in ref else ""
        log(f"  {role:<13} {rss:>8.1f} {pss:>8.1f}{delta}")
    log(f"  {'total':<13} {total(sample):>8.1f} {total(sample, 2):>8.1f}"
        + (f" {total(sample) - total(reference):>+11.1f}" if ref else "") + f"   ({len(sample['procs'])} processes)")


# -- the stack ------------------------------------------------------------------------------------------------

class Stack:
    """`python -m parvis.cli up` on its own vhost, data dir and ports; its output goes to a file (reading it
    through a pipe here would cost this process CPU that the load generator needs)."""

    def __init__(self, broker: Broker):
        self.tmp = Path(tempfile.mkdtemp(prefix="parvis-stackmem-"))
        self.data_dir = self.tmp / "data"
        self.http_port, self.mongo_port, self.devmail_port = free_port(), free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if k not in ("MONGO_URL", "SMTP_URL")}
        self.env = {**env, "AMQP_URL": broker.url, "PARVIS_DATA_DIR": str(self.data_dir),
                    "PARVIS_SECRET": TEST_SECRET,  # so that tests.support.token() signs tokens this stack accepts
                    "PARVIS_HTTP_PORT": str(self.http_port), "PARVIS_MONGO_PORT": str(self.mongo_port),
                    "PARVIS_METRICS_PORT_BASE": str(free_port_block(5)), "PARVIS_METRICS_ADDR": "127.0.0.1",
                    "PARVIS_DEVMAIL_PORT": str(self.devmail_port), "PYTHONUNBUFFERED": "1",
                    "PARVIS_RATE_LIMIT": "0"}  # one address stands for all the readers
        self.log_path = self.tmp / "up.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 180.0) -> None:
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "parvis.cli", "up"], env=self.env, cwd=ROOT,
                                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "PARVIS-UP" in self.log_path.read_text(errors="replace"):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.5)
        raise RuntimeError(f"`parvis up` not ready (exit code {self.proc.poll()}):\n{self.tail()}")

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    @property
    def host_port(self) -> tuple[str, int]:
        return "127.0.0.1", self.http_port

    def stop(self, seen: dict[int, list[str]]) -> list[str]:
        """SIGTERM to the supervisor (it stops its children: gateway, services, database), then SIGKILL to any
        process of the tree still there. Children run in sessions of their own, so a process-group kill of
        the supervisor would not reach them: the pids seen by the sampler are checked one by one (with their
        command line, against pid reuse). Returns what had to be killed."""
        killed = []
        if self.proc is not None and self.proc.poll() is None:
            seen = {**seen}  # the sampler may not have started (a failed start): look at the tree now too
            for pid in descendants(self.proc.pid):
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        seen.setdefault(pid, f.read().decode(errors="replace").split("\0")[:-1])
                except OSError:
                    pass
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid, cmdline in seen.items():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    same = f.read().decode(errors="replace").split("\0")[:-1] == cmdline
            except OSError:
                continue
            if same and pid != os.getpid():
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(f"{pid} {role_of(cmdline)}")
                except ProcessLookupError:
                    pass
        return killed

    def remove(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


class Mailbox:
    """What devmail kept (one .eml per message under $PARVIS_DATA_DIR/mail), split into emails to the
    benchmark's subscribers and the others (e.g. to organisers); each new file's first line, devmail's
    X-Parvis-Envelope-To header, is read once."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.seen: set[str] = set()
        self.subscribers = 0
        self.others: dict[str, int] = {}

    def poll(self) -> int:
        """Reads the new files; returns the emails to subscribers so far."""
        try:
            entries = [e for e in os.scandir(self.directory) if e.name.endswith(".eml") and e.name not in self.seen]
        except FileNotFoundError:
            return 0
        for entry in entries:
            self.seen.add(entry.name)
            with open(entry.path, "rb") as f:
                to = f.readline().decode(errors="replace").partition(":")[2].strip()
            if to.endswith("@bench.example"):
                self.subscribers += 1
            else:
                self.others[to] = self.others.get(to, 0) + 1
        return self.subscribers


# -- set-up through the platform's own API -------------------------------------------------------------------

async def graphql(conn: Connection, query: str, variables: dict, tok: str | None = None) -> dict:
    headers = {"Content-Type": "application/json"}
    if tok:
        headers["Authorization"] = f"Bearer {tok}"
    r = await conn.request("POST", "/graphql", json.dumps({"query": query, "variables": variables}).encode(), headers)
    body = r.json()
    if r.status != 200 or "errors" in body:
        raise RuntimeError(f"{query.split('(')[0][:40]}: HTTP {r.status} {r.body[:300]!r}")
    return body["data"]


def event_input(i: int, commune: str, category: str, days: int) -> dict:
    start = (datetime.now() + timedelta(days=days)).replace(hour=10 + i % 9, minute=0, second=0, microsecond=0)
    return {"title": f"Banc mémoire n°{i} à {commune}", "description": "Un événement du banc d'essai **mémoire**.",
            "category": category, "location": {"commune": commune, "place": "Salle des fêtes"},
            "slots": [{"startsAt": start.isoformat(), "endsAt": (start + timedelta(hours=2)).isoformat()}]}


async def publish_event(conn: Connection, agent: str, inp: dict, organizer: str) -> str:
    """Create, submit, approve: the moderation path an event takes to the public agenda (and to subscribers)."""
    event_id = (await graphql(conn, CREATE_EVENT, {"e": inp, "o": organizer}, agent))["createEvent"]["id"]
    version = (await graphql(conn, SUBMIT_EVENT, {"id": event_id}, agent))["submitEvent"]["version"]
    await graphql(conn, APPROVE_EVENT, {"id": event_id, "v": version}, agent)
    return event_id


async def create_events(stack: Stack, n: int, communes: list[str], categories: list[str]) -> tuple[int, str]:
    """n events published through GraphQL on 4 connections: (how many, the error that stopped it if any)."""
    agent = token("agent", subject="agent:bench-memory")
    rnd = random.Random(3)
    todo = list(range(n))
    done, failure = [0], [""]

    async def worker():
        conn = Connection(*stack.host_port)
        try:
            while todo:
                i = todo.pop()
                commune = rnd.choice(communes)
                try:
                    await publish_event(conn, agent, event_input(i, commune, rnd.choice(categories),
                                                                 rnd.randint(1, 300)), f"org-commune-{commune}")
                except RuntimeError as exc:  # a refusal: stop there, the load runs with what was made
                    failure[0] = str(exc)
                    todo.clear()
                    return
                done[0] += 1
        finally:
            conn.close()

    await asyncio.gather(*(worker() for _ in range(4)))
    return done[0], failure[0]


async def register_kiosks(stack: Stack, n: int) -> list[str]:
    agent = token("agent", subject="agent:bench-memory")
    conn = Connection(*stack.host_port)
    try:
        site = (await graphql(conn, "mutation($s: SiteInput!) { saveSite(site: $s) { id } }",
                              {"s": {"name": "Banc mémoire", "commune": "labege", "competence": "Accueil"}},
                              agent))["saveSite"]["id"]
        return [(await graphql(conn, "mutation($k: KioskInput!) { registerKiosk(kiosk: $k) { token } }",
                               {"k": {"siteId": site, "name": f"Borne mémoire {i}", "repeatSeconds": 0}},
                               agent))["registerKiosk"]["token"] for i in range(n)]
    finally:
        conn.close()


def add_subscribers(stack: Stack, n: int) -> None:
    """Email subscribers of agenda:commune:<FANOUT_COMMUNE>, written straight into the notification service's
    database as bench/notify_fanout.py does (the same document as its `subscribe` RPC writes): n citizens
    signing in and subscribing through GraphQL would be a benchmark of its own."""
    from pymongo import MongoClient

    topic = f"agenda:commune:{FANOUT_COMMUNE}"
    now = datetime.now(timezone.utc)
    docs = [{"_id": f"cit-mem-{i:06d}|{topic}|email", "recipient": f"cit-mem-{i:06d}", "topic": topic,
             "channel": "email", "address": f"mem{i:06d}@bench.example", "quiet_from": None, "quiet_to": None,
             "digest": False, "created_at": now} for i in range(n)]
    client = MongoClient(f"mongodb://127.0.0.1:{stack.mongo_port}/", serverSelectionTimeoutMS=5000)
    try:
        for k in range(0, n, 5000):
            client.parvis_notification.subscriptions.insert_many(docs[k:k + 5000], ordered=False)
    finally:
        client.close()


# -- the load --------------------------------------------------------------------------------------------------

class Counter:
    def __init__(self):
        self.ok = 0
        self.errors = 0
        self.units = 0  # votes accepted, emails expected...
        self.last_error = ""

    def fail(self, what: str) -> None:
        self.errors += 1
        self.last_error = what[:200]


async def load(stack: Stack, args, communes: list[str], kiosk_tokens: list[str], mailbox: Mailbox,
               fanout_seconds: list[float]) -> dict[str, Counter]:
    stats = {name: Counter() for name in ("agenda reads", "kiosk batches", "fan-out events", "service health")}
    deadline = time.monotonic() + args.seconds
    rnd = random.Random(11)
    now = datetime.now(timezone.utc)
    agent = token("agent", subject="agent:bench-memory")
    operator = token("operator", subject="operator:bench-memory")

    async def loop(name: str, step, rate: float = 0.0):
        """Closed loop on one keep-alive connection until the deadline, or at most `rate` steps a second on a
        fixed schedule; a failure opens a new connection."""
        conn = Connection(*stack.host_port)
        started, n = time.monotonic(), 0
        try:
            while time.monotonic() < deadline:
                try:
                    await step(conn, stats[name])
                except (OSError, asyncio.IncompleteReadError, ValueError, RuntimeError, KeyError) as exc:
                    stats[name].fail(repr(exc))
                    conn.close()
                    conn = Connection(*stack.host_port)
                    await asyncio.sleep(0.1)
                n += 1
                if rate:
                    await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
        finally:
            conn.close()

    async def read(conn, st):
        start = now + timedelta(days=rnd.randint(0, 200))
        f = {"communes": [rnd.choice(communes)], "from": start.isoformat(), "to": (start + timedelta(days=60)).isoformat()}
        await graphql(conn, EVENTS_QUERY, {"f": f, "n": 50})  # anonymous: answered from the gateway's copy
        st.ok += 1

    def kiosk(tok: str):
        async def step(conn, st):
            pressed = datetime.now(timezone.utc) - timedelta(seconds=1)
            votes = [{"id": str(uuid.uuid4()), "rating": (i % 4) + 1,
                      "pressedAt": (pressed + timedelta(milliseconds=i)).isoformat()} for i in range(args.batch)]
            report = (await graphql(conn, SUBMIT_VOTES, {"v": votes}, tok))["submitKioskVotes"]
            st.units += len(report["accepted"])
            if report["rejected"]:
                st.fail(f"{len(report['rejected'])} votes rejected")
            else:
                st.ok += 1
        return step

    async def health(conn, st):
        down = [h["name"] for h in (await graphql(conn, HEALTH, {}, operator))["serviceHealth"] if not h["ok"]]
        if down:  # a ping not answered within 1 s
            st.fail(f"not ok: {', '.join(down)}")
        else:
            st.ok += 1

    async def fanout():
        """An event published in FANOUT_COMMUNE right away, then every --fanout-every s: each one emails every
        subscriber (the notification service renders, sends to devmail, and records each delivery); the time
        from the publication to its last email is kept. A new connection each time: uvicorn closes one left
        idle for 5 s."""
        st = stats["fan-out events"]
        i = 0
        while time.monotonic() < deadline:
            next_at = time.monotonic() + args.fanout_every
            conn = Connection(*stack.host_port)
            try:
                due = mailbox.poll() + args.subscribers
                t = time.monotonic()
                await publish_event(conn, agent, event_input(100_000 + i, FANOUT_COMMUNE, "concert", 5 + i),
                                    f"org-commune-{FANOUT_COMMUNE}")
                st.ok += 1
                st.units += args.subscribers
                while time.monotonic() < min(next_at, deadline) and mailbox.poll() < due:
                    await asyncio.sleep(0.5)
                if mailbox.subscribers >= due:
                    fanout_seconds.append(time.monotonic() - t)
            except (OSError, asyncio.IncompleteReadError, ValueError, RuntimeError, KeyError) as exc:
                st.fail(repr(exc))
            finally:
                conn.close()
            i += 1
            while time.monotonic() < min(next_at, deadline):
                await asyncio.sleep(0.2)

    await asyncio.gather(
        *(loop("agenda reads", read) for _ in range(args.readers)),
        *(loop("kiosk batches", kiosk(t)) for t in kiosk_tokens),
        loop("service health", health, rate=args.health_rate),
        fanout(),
    )
    return stats


def fast_path_counts(stack: Stack) -> dict[str, float]:
    """parvis_gateway_fast_path_total by outcome, from the gateway's /metrics."""
    import urllib.request

    counts = {}
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.http_port}/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("parvis_gateway_fast_path_total{"):
                counts[line.split('"')[1]] = float(line.rsplit(" ", 1)[1])
    return counts


# -- main ------------------------------------------------------------------------------------------------------

def on_sigterm(signum, frame):
    """SIGTERM ends the run like Ctrl-C does: through main's clean-up."""
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="duration of the load")
    parser.add_argument("--settle", type=float, default=10.0, help="wait after PARVIS-UP before the idle samples")
    parser.add_argument("--idle", type=float, default=10.0, help="idle sampling time")
    parser.add_argument("--tail", type=float, default=10.0, help="sampling time after the load")
    parser.add_argument("--events", type=int, default=300, help="events published through GraphQL before the load")
    parser.add_argument("--readers", type=int, default=20, help="connections sending public events queries")
    parser.add_argument("--kiosks", type=int, default=10)
    parser.add_argument("--batch", type=int, default=100, help="votes a kiosk batch")
    parser.add_argument("--subscribers", type=int, default=2000, help="email subscribers of the fan-out commune")
    parser.add_argument("--fanout-every", type=float, default=20.0, help="seconds between two published events")
    parser.add_argument("--health-rate", type=float, default=5.0, help="serviceHealth queries a second")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args()

    signal.signal(signal.SIGTERM, on_sigterm)
    broker = Broker()
    stack = sampler = None
    try:
        broker.start()
        if not broker.vhost:
            raise RuntimeError("rabbitmqctl is needed to make a vhost of our own (see tests/support.py Broker)")
        stack = Stack(broker)
        log(f"vhost {broker.vhost}, data dir {stack.data_dir}, gateway :{stack.http_port}, "
            f"nx-27017 :{stack.mongo_port}; starting `python -m parvis.cli up`")
        t0 = time.monotonic()
        stack.start()
        sampler = Sampler(stack.proc.pid)
        sampler.start()
        log(f"PARVIS-UP after {time.monotonic() - t0:.1f}s; settling {args.settle:.0f}s")
        time.sleep(args.settle)

        sampler.phase = "idle"
        time.sleep(args.idle)
        idle = sampler.of("idle")
        idle_peak = max(idle, key=total)
        log(f"idle: {len(idle)} samples over {args.idle:.0f}s; max {total(idle_peak):.1f} MiB RSS "
            f"(min {min(map(total, idle)):.1f}), PSS {total(idle_peak, 2):.1f} MiB")
        print_breakdown("idle, at the max:", idle_peak)

        sampler.phase = "setup"
        from parvis.seed import demo_data

        data = demo_data()
        communes = [c["slug"] for c in data["communes"]]
        others = [c for c in communes if c != FANOUT_COMMUNE]  # so that only the load's events fan out
        categories = [c["slug"] for c in data["categories"]]
        t = time.monotonic()
        created, failure = asyncio.run(create_events(stack, args.events, others, categories))
        log(f"set-up: {created} events created, submitted and approved through GraphQL in "
            f"{time.monotonic() - t:.1f}s" + (f"; stopped by: {failure}" if failure else ""))
        kiosk_tokens = asyncio.run(register_kiosks(stack, args.kiosks))
        add_subscribers(stack, args.subscribers)
        log(f"set-up: 1 site and {len(kiosk_tokens)} kiosks registered; {args.subscribers} email subscribers of "
            f"agenda:commune:{FANOUT_COMMUNE}; set-up max {max(map(total, sampler.of('setup')), default=0):.1f} MiB RSS")

        log(f"load for {args.seconds:.0f}s: {args.readers} connections of public events queries, {len(kiosk_tokens)} "
            f"kiosks sending {args.batch}-vote batches, an event to {args.subscribers} subscribers every "
            f"{args.fanout_every:.0f}s, serviceHealth {args.health_rate:.0f}/s")
        mailbox = Mailbox(stack.data_dir / "mail")
        mailbox.poll()  # what the set-up sent (nothing to subscribers: they were added last) is not counted
        mailbox.others.clear()
        fanout_seconds: list[float] = []
        sampler.phase = "load"
        t = time.monotonic()
        stats = asyncio.run(load(stack, args, communes, kiosk_tokens, mailbox, fanout_seconds))
        elapsed = time.monotonic() - t
        sampler.phase = "tail"
        time.sleep(args.tail)
        mailbox.poll()

        for name, st in stats.items():
            last = f"  (last: {st.last_error})" if st.errors else ""
            if name == "fan-out events":
                timed = ", ".join(f"{x:.1f}" for x in fanout_seconds)
                log(f"{name:<15} {st.ok:>7} published, errors {st.errors}{last}; devmail received {mailbox.subscribers} "
                    f"of the {st.units} emails due by {args.tail:.0f}s after the load; each fan-out's "
                    f"{args.subscribers} emails within {timed or '-'} s of its publication"
                    + (f" (~{args.subscribers / statistics.mean(fanout_seconds):.0f} emails/s)" if fanout_seconds else "")
                    + f"; {sum(mailbox.others.values())} other emails to {len(mailbox.others)} "
                    + ("address" if len(mailbox.others) == 1 else "addresses")
                    + (f" (e.g. {min(mailbox.others)}: organisers told that their event is published)" if mailbox.others else ""))
                continue
            extra = f" = {st.units / elapsed:,.0f} votes/s ({st.units} accepted)" if name == "kiosk batches" else ""
            log(f"{name:<15} {st.ok:>7} ok = {st.ok / elapsed:7.1f}/s  errors {st.errors}{extra}{last}")
        log(f"gateway's compiled public path: {fast_path_counts(stack)} (served = answered from its in-memory copy "
            "without the general executor)")

        under_load = sampler.of("load", "tail")
        peak = max(under_load, key=total)
        peak_at = peak["t"] - under_load[0]["t"]
        log(f"under load: {len(under_load)} samples; peak {total(peak):.1f} MiB RSS {peak_at:.1f}s after the "
            f"load began ({peak['phase']}), PSS {total(peak, 2):.1f} MiB; after the tail {total(under_load[-1]):.1f} MiB")
        # Every 10 s from the start of the load: does it level off, or still grow when the load stops?
        marks = [next(s for s in under_load if s["t"] - under_load[0]["t"] >= k - SAMPLE_EVERY / 2)
                 for k in range(0, int(under_load[-1]["t"] - under_load[0]["t"]) + 1, 10)]
        log("RSS every 10 s from the start of the load (MiB): "
            + " ".join(f"{total(s):.0f}" for s in marks) + f" (load ends after {elapsed:.0f}s)")
        print_breakdown("under load, at the peak (vs the idle max):", peak, idle_peak)
        growth = {}
        for s in under_load:
            for role, (rss, _) in by_role(s).items():
                growth[role] = max(growth.get(role, 0.0), rss)
        log("each process's own max under load (MiB RSS): "
            + ", ".join(f"{r} {growth[r]:.0f}" for r in sorted(growth, key=lambda r: -growth[r])))

        idle_ok, load_ok = total(idle_peak) <= IDLE_TARGET_MIB, total(peak) <= LOAD_TARGET_MIB
        log(f"{'OK  ' if idle_ok else 'MISS'} idle <= {IDLE_TARGET_MIB} MiB RSS: {total(idle_peak):.1f} MiB")
        log(f"{'OK  ' if load_ok else 'MISS'} peak under load <= {LOAD_TARGET_MIB} MiB RSS: {total(peak):.1f} MiB")
        if args.json:
            Path(args.json).write_text(json.dumps({
                "idle": {"rss_mib": total(idle_peak), "pss_mib": total(idle_peak, 2), "by_role": by_role(idle_peak)},
                "peak": {"rss_mib": total(peak), "pss_mib": total(peak, 2), "by_role": by_role(peak),
                         "seconds_after_load_start": peak_at},
                "max_by_role": growth,
                "load": {"seconds": elapsed, "events_created_before": created,
                         **{name: {"ok": st.ok, "per_s": st.ok / elapsed, "errors": st.errors, "units": st.units}
                            for name, st in stats.items()},
                         "emails_to_subscribers": mailbox.subscribers, "fanout_seconds": fanout_seconds,
                         "other_emails": mailbox.others},
                "targets": {"idle_le_600": idle_ok, "peak_le_1024": load_ok},
                "samples": [{"t": s["t"], "phase": s["phase"], "rss_mib": total(s), "pss_mib": total(s, 2),
                             "rss_mib_by_role": {r: v[0] for r, v in by_role(s).items()}} for s in sampler.samples],
            }, indent=1))
            log(f"figures written to {args.json}")
    except KeyboardInterrupt:
        log("interrupted: cleaning up")
    except Exception as exc:  # noqa: BLE001 - report, clean up, and still exit 0 like the other benches
        log(f"error: {exc!r}")
        if stack is not None:
            log("last lines of `parvis up`:\n" + stack.tail())
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if sampler is not None:
            sampler.stopped.set()
        if stack is not None:
            killed = stack.stop(sampler.seen if sampler else {})
            if killed:
                log(f"clean-up: killed what the supervisor left: {', '.join(killed)}")
            stack.remove()
        broker.stop()
        log("stopped the stack, deleted the vhost and the temp dir")
    return 0


if __name__ == "__main__":
    sys.exit(main())
