"""Test support: the real infrastructure, started per test session and isolated from a dev stack.

- MongoDB: an nx-27017 server on a free port with a temporary data dir, unless MONGO_URL is set
  (then that server is used, e.g. a real MongoDB 7).
- RabbitMQ: the broker at AMQP_URL (default local), in a vhost of its own made for the session
  with rabbitmqctl, so a `make run` on the same machine does not share queues with the tests.
- Processes: `parvis service NAME`, `parvis gateway` and `parvis up` as real subprocesses.
"""
from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TEST_SECRET = "parvis-test-secret-not-for-production"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port_block(n: int) -> int:
    """A base port with n free ports after it, below the kernel's ephemeral range when there is room there.

    In the ephemeral range, the client side of every connection closed lately sits in TIME_WAIT for a minute: after a
    bench's 10,000 webhooks no block of 15 free ports was left there ("no free port block"). Below it, only servers
    bind, so a port is busy only while something listens on it (or a server that closed first left it in TIME_WAIT:
    the probe below sees that too, binding as the services' metrics servers do, without SO_REUSEADDR)."""
    low = _ephemeral_low()
    below = low - n > 20000
    rng = random.Random()
    for _ in range(50):
        base = rng.randrange(20000, low - n) if below else free_port()
        if base + n > 65000:
            continue
        ok = True
        for p in range(base, base + n):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free port block")


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.1, message: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message} (last: {last!r})")


class Mongo:
    def __init__(self):
        self.proc = None
        self.tmp = None
        self.url = os.environ.get("MONGO_URL")

    def start(self) -> "Mongo":
        if self.url:
            return self
        self.tmp = tempfile.mkdtemp(prefix="parvis-mongo-")
        port = free_port()
        self.proc = subprocess.Popen([PYTHON, "-m", "parvis.nxdb", "--data-dir", self.tmp, "--host", "127.0.0.1",
                                      "-p", str(port), "--pid-file", f"{self.tmp}/nx.pid",
                                      "--log-file", f"{self.tmp}/nx.log"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     cwd=ROOT)
        self.url = f"mongodb://127.0.0.1:{port}/"
        wait_until(lambda: _port_open(port), 30, message="nx-27017")
        return self

    _client = None

    def client(self):
        """One shared client for the session's test code (closed with the session)."""
        from pymongo import MongoClient

        if self._client is None:
            self._client = MongoClient(self.url, tz_aware=True, serverSelectionTimeoutMS=5000)
        return self._client

    def drop_all(self) -> None:
        client = self.client()
        for name in client.list_database_names():
            if name.startswith("parvis_"):
                client.drop_database(name)

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                # reaped, or its Popen, collected while it still runs, warns (an error under the suite's filters)
                self.proc.wait(10)
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.3):
            return True
    except OSError:
        return False


class Broker:
    """A vhost of our own on the broker at AMQP_URL (made with rabbitmqctl when it is local)."""

    def __init__(self):
        self.base = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
        self.vhost = None
        self.url = self.base

    def start(self) -> "Broker":
        parsed = urllib.parse.urlparse(self.base)
        if shutil.which("rabbitmqctl") and parsed.hostname in ("127.0.0.1", "localhost"):
            vhost = f"parvis-test-{uuid.uuid4().hex[:8]}"
            subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True, capture_output=True)
            subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", vhost, parsed.username or "guest",
                            ".*", ".*", ".*"], check=True, capture_output=True)
            self.vhost = vhost
            self.url = parsed._replace(path="/" + urllib.parse.quote(vhost, safe="")).geturl()
        return self

    def stop(self) -> None:
        if self.vhost:
            subprocess.run(["rabbitmqctl", "-q", "delete_vhost", self.vhost], capture_output=True)


class Proc:
    """A Parvis process with its output collected (and echoed on failure by the tests)."""

    def __init__(self, name: str, argv: list[str], env: dict, ready_line: str | None):
        self.name, self.argv, self.env, self.ready_line = name, argv, env, ready_line
        self.lines: list[str] = []
        self.proc = None
        self._ready = threading.Event()

    def start(self, timeout: float = 60.0) -> "Proc":
        self._ready.clear()
        self.proc = subprocess.Popen(self.argv, env=self.env, cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1, start_new_session=True)
        self._thread = threading.Thread(target=self._pump, args=(self.proc,), daemon=True)
        self._thread.start()
        if self.ready_line:
            if not self._ready.wait(timeout):
                self.kill()
                raise AssertionError(f"{self.name} not ready in {timeout}s:\n" + self.output()[-4000:])
        return self

    def _pump(self, proc) -> None:
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if self.ready_line and self.ready_line in line:
                self._ready.set()

    def output(self) -> str:
        return "\n".join(self.lines)

    def json_logs(self) -> list[dict]:
        out = []
        for line in list(self.lines):
            text = line.split("| ", 1)[1] if "| {" in line else line
            if text.startswith("{"):
                try:
                    out.append(json.loads(text))
                except ValueError:
                    pass
        return out

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._close()

    def _close(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            self._thread.join(5)
            self.proc.stdout.close()

    def kill(self) -> None:
        self.kill9()

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
        self._close()
        return self.proc.returncode


class Platform:
    """Environment for Parvis processes bound to the session's database and vhost."""

    def __init__(self, mongo: Mongo, broker: Broker, **extra_env):
        self.mongo, self.broker = mongo, broker
        self.data_dir = tempfile.mkdtemp(prefix="parvis-data-")
        self.http_port = free_port()
        self.metrics_base = free_port_block(15)  # up to three replicas of each service (parvis up --replicas)
        self.env = {
            **os.environ,
            "MONGO_URL": mongo.url,
            "AMQP_URL": broker.url,
            "PARVIS_DATA_DIR": self.data_dir,
            "PARVIS_SECRET": TEST_SECRET,
            "PARVIS_HTTP_PORT": str(self.http_port),
            "PARVIS_METRICS_PORT_BASE": str(self.metrics_base),
            "PARVIS_METRICS_ADDR": "127.0.0.1",
            "PARVIS_RETRY_DELAYS": "0.2,0.4",
            "PARVIS_OUTBOX_INTERVAL": "0.2",
            "PYTHONUNBUFFERED": "1",
            **{k: str(v) for k, v in extra_env.items()},
        }
        self.procs: list[Proc] = []

    def service(self, name: str, **env) -> Proc:
        proc = Proc(name, [PYTHON, "-m", "parvis.cli", "service", name], {**self.env, **env}, f"PARVIS-READY {name}")
        self.procs.append(proc)
        return proc.start()

    def gateway(self, **env) -> Proc:
        proc = Proc("gateway", [PYTHON, "-m", "parvis.cli", "gateway"], {**self.env, **env}, None)
        self.procs.append(proc)
        proc.start()
        port = int(env.get("PARVIS_HTTP_PORT", self.http_port))
        wait_until(lambda: http_status(f"http://127.0.0.1:{port}/healthz") == 200, 30, message="gateway /healthz")
        return proc

    def up(self, *names: str, **env) -> Proc:
        proc = Proc("up", [PYTHON, "-m", "parvis.cli", "up", *names], {**self.env, **env}, "PARVIS-UP")
        self.procs.append(proc)
        return proc.start(timeout=240)  # ten services and more on 2 shared cores may take a while

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def graphql_data(self, query: str, variables: dict | None = None, token: str | None = None) -> dict:
        """POST a GraphQL operation to the gateway; assert it has no errors and return its data."""
        import httpx

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        body = httpx.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}},
                          headers=headers, timeout=10).json()
        assert "errors" not in body, body
        return body["data"]

    def stop_reporting_crashes(self, expected=(None, 0, -15, -9)) -> None:
        """Stop, first printing the output of any process that ended unexpectedly (for the test log)."""
        for proc in self.procs:
            if proc.proc is not None and proc.proc.poll() not in expected:
                print(f"--- {proc.name} ---\n{proc.output()[-3000:]}")
        self.stop()

    def metrics_port(self, service: str, replica: int = 1) -> int:
        """A service's metrics port, as `parvis up` gives it to the replica (1, 2…); `service()` uses the first."""
        from core.settings import SERVICES

        return self.metrics_base + (replica - 1) * len(SERVICES) + list(SERVICES).index(service)

    def metric(self, service: str, name: str, /, replica: int = 1, **labels) -> float | None:
        """One sample from a service's /metrics, matched on its exact label set (None if absent)."""
        port = self.metrics_port(service, replica)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as resp:
            text = resp.read().decode()
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            if not labels and line.startswith(name + " "):  # a metric without labels
                return float(line.rsplit(" ", 1)[1])
            if line.startswith(name + "{"):
                got = ",".join(sorted(line[line.index("{") + 1:line.index("}")].split(",")))
                if got == want:
                    return float(line.rsplit(" ", 1)[1])
        return None

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except Exception:  # noqa: BLE001
        return None


def token(role: str, **kw) -> str:
    from gateway import auth

    return auth.issue(TEST_SECRET, role, **kw).value


def rpc_call(amqp_url: str, service: str, method: str, caller: dict | None = None, timeout: float = 10.0, **kwargs):
    """One RPC through the gateway's asyncio client, from synchronous test code."""
    import asyncio

    from gateway.rpc import RpcClient

    async def go():
        client = RpcClient(amqp_url, secret=TEST_SECRET)
        try:
            return await client.call(service, method, timeout=timeout,
                                     context={"caller": caller or {"role": "operator", "subject": "test"}}, **kwargs)
        finally:
            await client.close()

    return asyncio.run(go())


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-quic", "--no-first-run", "--disable-sync"]


def launch_chromium(playwright):
    """Debian's Chromium under Playwright (test tools cannot download a browser on these machines)."""
    if not os.path.exists(CHROMIUM):
        raise AssertionError("chromium is missing: run `make install` (infra/scripts/system-deps.sh installs it)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@contextlib.contextmanager
def smtp_server(handler, **controller_kwargs):
    """A local aiosmtpd server on a free port around `handler`: yields its port, stops it after."""
    from aiosmtpd.controller import Controller

    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **controller_kwargs)
    controller.start()
    try:
        yield controller.port
    finally:
        controller.stop()


RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"


class RabbitNode:
    """A RabbitMQ node of our own (Debian's rabbitmq-server) on free ports, with its own name, data and logs, for
    the tests that stop and start the broker. The machine's broker (5672, rabbit@localhost) is left alone: its
    rabbitmq.conf pins 5672, so this node gets a config file of its own; it runs as the `rabbitmq` user (whose
    Erlang cookie rabbitmqctl shares), in a directory that user owns. `plugins` adds e.g. rabbitmq_prometheus
    (its port is `prometheus_port`)."""

    def __init__(self, plugins: tuple[str, ...] = ()):
        self.dir = tempfile.mkdtemp(prefix="parvis-rabbit-")
        self.name = f"parvis-{uuid.uuid4().hex[:8]}@localhost"
        self.port, self.dist_port, self.prometheus_port = free_port(), free_port(), free_port()
        self.plugins = plugins
        self.proc: subprocess.Popen | None = None
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"
        Path(self.dir, "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            f"prometheus.tcp.port = {self.prometheus_port}\nprometheus.tcp.ip = 127.0.0.1\n"
            "log.console = false\nlog.file.level = warning\n")
        Path(self.dir, "enabled_plugins").write_text(f"[{','.join(plugins)}].\n")
        subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", self.dir], check=True)

    def _env(self) -> dict:
        return {"HOME": "/var/lib/rabbitmq", "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "RABBITMQ_NODENAME": self.name, "RABBITMQ_NODE_PORT": str(self.port),
                "RABBITMQ_DIST_PORT": str(self.dist_port), "RABBITMQ_CONFIG_FILE": f"{self.dir}/rabbitmq",
                "RABBITMQ_MNESIA_BASE": f"{self.dir}/mnesia", "RABBITMQ_LOG_BASE": f"{self.dir}/log",
                "RABBITMQ_ENABLED_PLUGINS_FILE": f"{self.dir}/enabled_plugins", "RABBITMQ_PID_FILE": f"{self.dir}/pid",
                "RABBITMQ_CONF_ENV_FILE": f"{self.dir}/rabbitmq-env.conf"}

    def start(self, timeout: float = 60.0) -> "RabbitNode":
        env = [f"{k}={v}" for k, v in self._env().items()]
        with open(f"{self.dir}/server.out", "ab") as out:
            self.proc = subprocess.Popen(["runuser", "-u", "rabbitmq", "--", "env", "-i", *env, RABBITMQ_SERVER],
                                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        try:
            wait_until(lambda: self._amqp_ok() or self.proc.poll() is not None, timeout, 0.2,
                       f"RabbitMQ node {self.name} on {self.port}")
        except AssertionError as exc:
            tail = self.log_tail()
            self.destroy()  # not left running behind a failed fixture
            raise AssertionError(f"{exc}; last AMQP error: {self.last_error!r}\n{tail}") from None
        if self.proc.poll() is not None:
            raise AssertionError(f"RabbitMQ node {self.name} exited:\n{self.log_tail()}")
        return self

    last_error: Exception | None = None

    def _amqp_ok(self) -> bool:
        from kombu import Connection

        try:
            with Connection(self.url, connect_timeout=1) as conn:
                conn.connect()
            return True
        except Exception as exc:  # noqa: BLE001 - not up yet; said if it never comes
            self.last_error = exc
            return False

    def ctl(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
        return subprocess.run(["rabbitmqctl", "-n", self.name, *args], capture_output=True, text=True, timeout=timeout)

    def stop(self, timeout: float = 60.0) -> None:
        """A clean stop of the whole node (the Erlang VM ends); its data stays for the next start."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.ctl("stop", timeout=timeout)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def queues(self, *columns: str) -> list[dict]:
        cols = columns or ("name", "type", "durable", "messages")
        out = self.ctl("list_queues", "-q", "--formatter", "json", *cols)
        if out.returncode != 0:
            raise AssertionError(out.stderr)
        return json.loads(out.stdout or "[]")

    def log_tail(self, n: int = 4000) -> str:
        texts = []
        for path in [Path(self.dir, "server.out"), *Path(self.dir, "log").glob("*.log")]:
            with contextlib.suppress(OSError):
                texts.append(f"== {path.name}\n" + path.read_text(errors="replace")[-n:])
        return "\n".join(texts)

    def destroy(self) -> None:
        self.stop(30)
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
