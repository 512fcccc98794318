"""`parvis up`: the whole platform under one supervisor, for development and CI.

Starts the embedded database (nx-27017) unless MONGO_URL is set, makes sure RabbitMQ answers,
starts the five services and the gateway as child processes with their output prefixed, waits
for readiness, seeds the demo data, prints the URLs and demo tokens, restarts a child that
crashes, and stops everything cleanly on Ctrl-C or SIGTERM.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

from core.settings import SERVICES, SupervisorSettings

GATEWAY = "gateway"
MONGO = "mongo"
DEVMAIL = "devmail"
PAYFIP_SIM = "payfip-sim"
BANNER_TTL = 8 * 3600  # the demo tokens the banner prints (logs are kept and shipped): a working day, no more
URLS_FILE = "urls.txt"  # the banner, under the data dir
PID_FILE = "parvis.pid"  # the supervisor's pid, under the data dir: `parvis stop` signals it
COLORS = ["36", "32", "33", "35", "34", "31", "96", "92"]


def log(msg: str) -> None:
    print(f"{'parvis':<13}| {msg}", flush=True)


def _stop_with_parent() -> None:
    """SIGTERM when the parent dies (`make run` execs us: make killed with SIGKILL leaves no orphan behind; Linux
    only). A SIGINT or SIGTERM to make alone is not passed on: GNU make waits for its children then, which is why
    `parvis stop` exists."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() == 1:  # the parent died before the call
            os.kill(os.getpid(), signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for(predicate, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict
    color: str
    ready_line: str | None = None
    proc: subprocess.Popen | None = None
    ready: threading.Event = field(default_factory=threading.Event)
    restarts: int = 0
    started_at: float = 0.0
    signalled: subprocess.Popen | None = None  # the process already sent its SIGTERM

    def start(self) -> None:
        self.ready.clear()
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, text=True, bufsize=1, start_new_session=True)
        threading.Thread(target=self._pump, args=(self.proc,), daemon=True).start()

    def _pump(self, proc: subprocess.Popen) -> None:
        prefix = f"\x1b[{self.color}m{self.name:<13}|\x1b[0m " if sys.stdout.isatty() else f"{self.name:<13}| "
        for line in proc.stdout:
            line = line.rstrip("\n")
            if self.ready_line and self.ready_line in line:
                self.ready.set()
            print(prefix + line, flush=True)

    def terminate(self) -> None:
        """SIGTERM, once: a second one would make nameko stop its timers twice."""
        if self.proc is not None and self.proc.poll() is None and self.proc is not self.signalled:
            self.signalled = self.proc
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def parse_replicas(specs: list[str] | None) -> dict[str, int]:
    """`--replicas 2` (every service), `--replicas satisfaction=3` (one), several of them or comma-separated
    (`--replicas 2,notification=1`): the number of processes of each service (1 when not said)."""
    counts = {name: 1 for name in SERVICES}
    for spec in (part.strip() for item in specs or [] for part in item.split(",")):
        if not spec:
            continue
        name, _, value = spec.rpartition("=")
        try:
            n = int(value)
        except ValueError:
            n = 0
        if not 1 <= n <= 16:
            raise SystemExit(f"--replicas {spec}: a number of processes from 1 to 16, e.g. --replicas 2 or "
                             "--replicas satisfaction=2")
        if name and name not in SERVICES:
            raise SystemExit(f"--replicas {spec}: unknown service {name!r}; choose among {', '.join(SERVICES)}")
        for target in ([name] if name else SERVICES):
            counts[target] = n
    return counts


class Supervisor:
    def __init__(self, names: list[str], seed: bool = True, demo_events: bool = True,
                 replicas: dict[str, int] | None = None):
        self.settings = SupervisorSettings.from_env()
        self.replicas = {name: 1 for name in SERVICES} | (replicas or {})
        wanted = names or [*SERVICES, GATEWAY]
        unknown = set(wanted) - {*SERVICES, GATEWAY}
        if unknown:
            raise SystemExit(f"unknown process(es): {', '.join(sorted(unknown))}; "
                             f"choose among {', '.join([*SERVICES, GATEWAY])}")
        self.names = wanted
        self.seed = seed
        self.demo_events = demo_events
        self.children: list[Child] = []
        self.stopping = False
        self.env = dict(os.environ)
        self.env["PARVIS_DATA_DIR"] = str(self.settings.data_dir)
        self.env["PYTHONUNBUFFERED"] = "1"
        # Every child reads the same secret (generated once under the data dir in dev).
        self.env["PARVIS_SECRET"] = self.settings.secret

    # -- infrastructure -----------------------------------------------------------------------
    def start_mongo(self) -> None:
        if self.settings.mongo_url:
            log(f"using MongoDB at {self.settings.mongo_url}")
            return
        port = self.settings.mongo_port
        if port_open("127.0.0.1", port):
            raise SystemExit(f"port {port} is taken: another MongoDB or nx-27017 runs there. Stop it, or set "
                             f"MONGO_URL=mongodb://127.0.0.1:{port}/ to use it, or PARVIS_MONGO_PORT to pick another.")
        data = self.settings.data_dir / "mongo"
        data.mkdir(parents=True, exist_ok=True)
        # nx-27017 keeps a pid file and a log in /tmp by default and refuses to start while another
        # instance's pid file is there: give this one its own, under the data dir.
        child = Child(MONGO, [sys.executable, "-m", "parvis.nxdb", "--data-dir", str(data), "--host", "127.0.0.1",
                              "-p", str(port), "--pid-file", str(data / "nx.pid"), "--log-file", str(data / "nx.log")],
                      self.env, COLORS[-1])
        child.start()
        self.children.append(child)
        if not wait_for(lambda: port_open("127.0.0.1", port), 30):
            raise SystemExit("nx-27017 did not start: see its output above")
        child.ready.set()
        self.env["MONGO_URL"] = f"mongodb://127.0.0.1:{port}/"
        log(f"embedded database nx-27017 on 127.0.0.1:{port} (data in {data})")

    def start_devmail(self) -> None:
        """A local SMTP server keeping what it receives under the data dir (read at /dev/mail), unless SMTP_URL is set."""
        if self.settings.smtp_url:
            log("outgoing mail through SMTP_URL")
            return
        port = self.settings.devmail_port
        if port_open("127.0.0.1", port):
            with socket.socket() as s:  # taken (another stack, a test run): any free port will do
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        child = Child(DEVMAIL, [sys.executable, "-m", "parvis.devmail", "--port", str(port)], self.env, COLORS[-2],
                      ready_line="PARVIS-READY devmail")
        child.start()
        self.children.append(child)
        if not child.ready.wait(30):
            raise SystemExit("the dev SMTP server did not start: see its output above")
        self.env["SMTP_URL"] = f"smtp://127.0.0.1:{port}"
        log(f"dev SMTP server on 127.0.0.1:{port} (mail kept in {self.settings.data_dir / 'mail'})")

    def start_payfip_simulator(self) -> None:
        """The PayFiP simulator (SOAP service, payment page, and the sandbox card provider), unless
        PARVIS_PAYFIP_URL points at a PayFiP: development and demo only, never real money."""
        if self.env.get("PARVIS_PAYFIP_URL"):
            log(f"payments through PayFiP at {self.env['PARVIS_PAYFIP_URL']}")
            return
        port = 8090
        if port_open("127.0.0.1", port):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        child = Child(PAYFIP_SIM, [sys.executable, "-m", "parvis.payfip_sim", "--port", str(port)], self.env,
                      COLORS[-3], ready_line="PARVIS-READY payfip-sim")
        child.start()
        self.children.append(child)
        if not child.ready.wait(30):
            raise SystemExit("the PayFiP simulator did not start: see its output above")
        url = f"http://127.0.0.1:{port}"
        self.env["PARVIS_PAYFIP_URL"] = url
        self.env.setdefault("PARVIS_PAYMENT_SANDBOX_URL", f"{url}/card")
        log(f"PayFiP SIMULATOR on {url} (parvis/payfip_sim.py; payments are simulated, never real money): "
            "set PARVIS_PAYFIP_URL to use a real PayFiP")

    def ensure_rabbitmq(self) -> None:
        url = urllib.parse.urlparse(self.settings.amqp_url)
        host, port = url.hostname or "127.0.0.1", url.port or 5672
        if port_open(host, port):
            return
        if host in ("127.0.0.1", "localhost") and shutil.which("rabbitmq-server"):
            log("RabbitMQ does not answer: starting it (rabbitmq-server -detached)")
            subprocess.run(["rabbitmq-server", "-detached"], check=False)
            if wait_for(lambda: port_open(host, port), 90, 1.0):
                return
        raise SystemExit(
            f"RabbitMQ does not answer at {host}:{port}. Start one (Debian: apt-get install rabbitmq-server, then "
            "rabbitmq-server -detached), or point AMQP_URL at one, e.g. amqp://guest:guest@host:5672/.")

    # -- children -----------------------------------------------------------------------------
    def metrics_ports(self) -> dict[str, list[int]]:
        """Each service's metrics port, per replica: the first replicas on PARVIS_METRICS_PORT_BASE and the four
        ports after it (as without replicas), the second ones on the five ports after those, and so on."""
        from core.settings import ServiceSettings

        base = ServiceSettings.from_env().metrics_port_base
        return {name: [base + r * len(SERVICES) + SERVICES.index(name) for r in range(self.replicas[name])]
                for name in self.names if name in SERVICES}

    def children_for(self, name: str, i: int) -> list[Child]:
        if name == GATEWAY:
            return [Child(name, [sys.executable, "-m", "parvis.cli", "gateway"], self.env, COLORS[i % 7])]
        ports = self.metrics_ports()[name]
        return [Child(name if len(ports) == 1 else f"{name}.{r + 1}", [sys.executable, "-m", "parvis.cli", "service",
                                                                      name],
                      {**self.env, "PARVIS_METRICS_PORT": str(port)}, COLORS[i % 7], ready_line=f"PARVIS-READY {name}")
                for r, port in enumerate(ports)]

    def gateway_url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.settings.http_port}{path}"

    def http_ok(self, path: str) -> bool:
        try:
            with urllib.request.urlopen(self.gateway_url(path), timeout=2) as resp:
                return resp.status == 200
        except Exception:  # noqa: BLE001
            return False

    def wait_ready(self, child: Child, timeout: float = 60) -> bool:
        if child.name == GATEWAY:
            ok = wait_for(lambda: self.http_ok("/healthz") or child.proc.poll() is not None, timeout)
            ok = ok and child.proc.poll() is None
            if ok:
                child.ready.set()
            return ok
        return child.ready.wait(timeout)

    def run_seed(self) -> None:
        from gateway import auth
        from gateway.rpc import RpcClient
        from parvis.seed import (demo_sites, seed, seed_demo_accounts, seed_demo_consultations, seed_demo_events,
                                 seed_demo_payments, seed_demo_sites)

        # Demo kiosks get fresh tokens at every start (the previous ones stop working).
        self.kiosk_tokens = {k["id"]: auth.issue(self.settings.secret, "kiosk", subject=f"kiosk:{k['id']}", kiosk=k["id"])
                             for site in demo_sites() for k in site["kiosks"]} if "satisfaction" in self.names else {}

        async def go():
            rpc = RpcClient(self.settings.amqp_url, secret=self.settings.secret)
            try:
                report = {"agenda": await seed(rpc)} if "agenda" in self.names else {}
                if "agenda" in self.names and self.demo_events:
                    report["agenda"].update(await seed_demo_events(rpc))
                if "agenda" in self.names and "notification" in self.names:
                    report["notification"] = await seed_demo_accounts(rpc)
                if "agenda" in self.names and "consultation" in self.names and self.demo_events:
                    report["consultation"] = await seed_demo_consultations(rpc)
                if "payment_link" in self.names and self.demo_events:
                    report["payment_link"] = await seed_demo_payments(rpc)
                    self.payment_links = report["payment_link"]["links"]
                if self.kiosk_tokens:
                    report["satisfaction"] = await seed_demo_sites(
                        rpc, {k: t.token_id for k, t in self.kiosk_tokens.items()})
                return report
            finally:
                await rpc.close()

        report = asyncio.run(go())
        log(f"demo data: {report}")

    def print_banner(self) -> None:
        from gateway import auth

        from core.settings import ServiceSettings

        secret = self.settings.secret
        metrics_base = ServiceSettings.from_env().metrics_port_base
        broker = urllib.parse.urlparse(self.settings.amqp_url)
        tokens = {
            "agent": auth.issue(secret, "agent", subject="agent:demo", ttl=BANNER_TTL).value,
            "operator": auth.issue(secret, "operator", subject="operator:demo", ttl=BANNER_TTL).value,
            "organizer (Mairie de Labège)": auth.issue(secret, "organizer", subject="organizer:labege",
                                                        org="org-commune-labege", ttl=BANNER_TTL).value,
            "citizen": auth.issue(secret, "citizen", subject="citizen:demo@example.org", ttl=BANNER_TTL).value,
        }
        from parvis.seed import DEMO_ACCOUNTS, DEMO_CITIZEN

        lines = [
            "",
            "Parvis is up.",
            f"  Web        {self.gateway_url('/')}   agenda {self.gateway_url('/agenda')}   console "
            f"{self.gateway_url('/console')}",
            f"  GraphiQL   {self.gateway_url('/graphql')}",
            f"  Health     {self.gateway_url('/healthz')}   Ready {self.gateway_url('/readyz')}",
            f"  Agenda     {self.gateway_url('/agenda.ics')}  {self.gateway_url('/agenda.csv')}  "
            f"{self.gateway_url('/agenda/print?commune=labege')}  widget {self.gateway_url('/embed/agenda.js')}",
            f"  Metrics    {self.gateway_url('/metrics')} (gateway); services on :"
            f"{metrics_base}-{metrics_base + len(SERVICES) - 1}/metrics",
            *([f"  Replicas   " + "  ".join(f"{name} x{len(ports)} (metrics :{', :'.join(map(str, ports))})"
                                           for name, ports in self.metrics_ports().items() if len(ports) > 1)]
              if any(len(p) > 1 for p in self.metrics_ports().values()) else []),
            f"  Database   {self.env.get('MONGO_URL', self.settings.effective_mongo_url)}",
            f"  Broker     {broker.hostname}:{broker.port or 5672} (RabbitMQ)",
            *([f"  Mail (dev) {self.gateway_url('/dev/mail')}   (SMTP {self.env['SMTP_URL']})"]
              if not self.settings.smtp_url and "SMTP_URL" in self.env else []),
            *([f"  Pay a bill {self.gateway_url(link['url'])}   ({link['reference']}, "
               f"{'PayFiP simulator' if link['regie'] == 'regie-cantine' else 'sandbox card 4444 3333 2222 1111'})"
               for link in getattr(self, "payment_links", [])]),
            *([f"  Kiosk      {self.gateway_url('/kiosk')}#token={self.kiosk_tokens['kiosk-accueil-labege'].value}"]
              if "kiosk-accueil-labege" in getattr(self, "kiosk_tokens", {}) else []),
            *(["Demo accounts (sign in at " + self.gateway_url('/connexion') + "; the code arrives at /dev/mail):",
                *[f"  {a['email']:<44} {a['label']}" for a in DEMO_ACCOUNTS],
                f"  {DEMO_CITIZEN:<44} habitant (any other address too)"] if self.seed else []),
            "Demo tokens (8 hours; send as 'Authorization: Bearer <token>'; more with `parvis token ROLE`):",
            *[f"  {role:<29} {value}" for role, value in tokens.items()],
            "Ctrl-C stops everything. `parvis urls` prints these lines again.",
            "",
        ]
        for line in lines:
            log(line)
        # The log scrolls on: the banner is kept, for `parvis urls` (the tokens in it are the dev stack's).
        urls = self.settings.data_dir / URLS_FILE
        urls.write_text("\n".join(lines[1:]) + "\n", encoding="utf-8")
        os.chmod(urls, 0o600)

    def check_ports(self) -> None:
        """Every port this platform will listen on is free, or it does not start (a port taken by another stack
        would give that stack's figures under this one's name)."""
        wanted = {}
        if GATEWAY in self.names:
            wanted[self.settings.http_port] = "the gateway (PARVIS_HTTP_PORT)"
        for name, ports in self.metrics_ports().items():
            for r, port in enumerate(ports):
                wanted[port] = f"{name}'s metrics{f' (replica {r + 1})' if len(ports) > 1 else ''} " \
                               "(PARVIS_METRICS_PORT_BASE)"
        taken = [f"{port} for {what}" for port, what in sorted(wanted.items()) if port_open("127.0.0.1", port, 0.2)]
        if taken:
            raise SystemExit("port(s) taken: " + ", ".join(taken) + ". Another Parvis runs? Stop it (`parvis urls` "
                             "shows its addresses), or choose other ports with those settings.")

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        _stop_with_parent()
        try:
            self.check_ports()
            self.settings.data_dir.mkdir(parents=True, exist_ok=True)
            (self.settings.data_dir / PID_FILE).write_text(str(os.getpid()))
            self.ensure_rabbitmq()
            self.start_mongo()
            if "notification" in self.names:
                self.start_devmail()
            if "payment_link" in self.names:
                self.start_payfip_simulator()
            processes = [c for i, n in enumerate(self.names) for c in self.children_for(n, i)]
            services = [c for c in processes if c.name != GATEWAY]
            for child in services:
                child.start()
                self.children.append(child)
            for child in services:
                if not self.wait_ready(child):
                    raise SystemExit(f"{child.name} did not become ready: see its output above")
            self.kiosk_tokens = {}
            if self.seed and ("agenda" in self.names or "satisfaction" in self.names):
                self.run_seed()
            for child in processes:
                if child.name == GATEWAY:
                    child.start()
                    self.children.append(child)
                    if not self.wait_ready(child):
                        raise SystemExit("the gateway did not start: see its output above")
            if GATEWAY in self.names:
                if wait_for(lambda: self.http_ok("/readyz"), 30, 0.5) or len(self.names) < 6:
                    self.print_banner()
                else:
                    log("warning: /readyz does not report every service ready")
                    self.print_banner()
            log("PARVIS-UP")
            self.monitor()
        except SystemExit as exc:
            failed = not self.stopping  # an error, not a stop asked for (shutdown() sets `stopping`)
            if failed:
                log(f"error: {exc}")
            self.shutdown()
            return 1 if failed else 0
        self.shutdown()
        return 0

    def monitor(self) -> None:
        while not self.stopping:
            for child in self.children:
                code = child.proc.poll()
                if code is None or self.stopping:
                    continue
                uptime = time.monotonic() - child.started_at
                child.restarts = 0 if uptime > 60 else child.restarts + 1
                delay = min(30, 2 ** child.restarts) if child.restarts else 1
                log(f"{child.name} exited with code {code} after {uptime:.0f}s; restarting in {delay}s")
                deadline = time.monotonic() + delay
                while time.monotonic() < deadline and not self.stopping:
                    time.sleep(0.1)
                if not self.stopping:
                    child.start()
            time.sleep(0.2)

    def _on_signal(self, signum, frame) -> None:
        if not self.stopping:
            log(f"received {signal.Signals(signum).name}: stopping")
        self.stopping = True
        raise SystemExit(0)

    def shutdown(self) -> None:
        self.stopping = True
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        # Gateway first, then the services together, database last: nothing is left calling
        # something already gone.
        groups = [[c for c in self.children if c.name == GATEWAY],
                  [c for c in self.children if c.name not in (GATEWAY, MONGO)],
                  [c for c in self.children if c.name == MONGO]]
        for group in groups:
            for child in group:
                child.terminate()
            for child in group:
                child.stop()
        (self.settings.data_dir / URLS_FILE).unlink(missing_ok=True)
        pid_file = self.settings.data_dir / PID_FILE
        if pid_file.exists() and pid_file.read_text().strip() == str(os.getpid()):
            pid_file.unlink()
        log("stopped")
