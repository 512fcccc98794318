"""A small closed-loop HTTP/1.1 load generator for the benchmarks: N keep-alive connections over asyncio
streams, each sending its next request when the previous answer has been read.

Why not httpx: on this 2-core machine httpx's AsyncClient tops out near 200 requests/s at 50 connections even
against a Starlette endpoint that returns a constant, so it measured itself rather than the server. This client
costs a few tens of microseconds per request; `python bench/httpload.py` prints its ceiling against a trivial
endpoint, so that a figure near that ceiling is read as "client-bound".
"""
from __future__ import annotations

import asyncio
import os
import json
import time
from typing import Callable
from urllib.parse import urlencode, urlsplit


class Response:
    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: dict, body: bytes):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)


class Connection:
    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    async def request(self, method: str, path: str, body: bytes = b"", headers: dict | None = None) -> Response:
        if self.writer is None:
            await self.open()
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        hdrs = {}
        for line in header_lines:
            if line:
                k, _, v = line.partition(":")
                hdrs[k.strip().lower()] = v.strip()
        if "content-length" in hdrs:
            data = await self.reader.readexactly(int(hdrs["content-length"]))
        elif hdrs.get("transfer-encoding") == "chunked":
            chunks = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                chunks.append(chunk[:-2])
            data = b"".join(chunks)
        else:
            data = await self.reader.read()
            self.close()
            self.writer = None
        return Response(int(status_line.split()[1]), hdrs, data)

    async def post_json(self, path: str, payload) -> Response:
        return await self.request("POST", path, json.dumps(payload).encode(), {"Content-Type": "application/json"})

    async def get(self, path: str, params: dict | None = None) -> Response:
        return await self.request("GET", path + ("?" + urlencode(params) if params else ""))


IDLE_EXPIRY = 4.0  # seconds an idle keep-alive connection is reused (uvicorn closes its side after 5)


async def open_loop(base_url: str, send: Callable, items: list, rate: float, max_connections: int = 400) -> dict:
    """`send(connection, item)` for each item at `rate` a second, at evenly spaced instants whatever the answers
    (citizens do not wait for each other), on keep-alive connections taken from a pool (a new one when all are busy,
    up to `max_connections`). Each latency runs from the instant the request was due, not from when a connection
    was free: a server that falls behind is charged with the wait (no coordinated omission). Returns the elapsed
    time, the latencies in seconds, the answers (send's return values, None for an error) and the connections used."""
    parts = urlsplit(base_url)
    free: list[tuple[Connection, float]] = []  # idle connections and when each was last used, oldest first
    opened = 0
    slots = asyncio.Semaphore(max_connections)
    latencies: list[float] = [0.0] * len(items)
    answers: list = [None] * len(items)
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def one(i: int, item, due: float) -> None:
        nonlocal opened
        async with slots:
            # A connection idle for IDLE_EXPIRY is closed rather than reused: the server (uvicorn) closes its side
            # after 5 s, and a request sent on it then fails (as httpx's keepalive_expiry does).
            while free and loop.time() - free[0][1] > IDLE_EXPIRY:
                free.pop(0)[0].close()
            if free:
                conn = free.pop()[0]
            else:
                conn = Connection(parts.hostname, parts.port)
                opened += 1
            try:
                answers[i] = await send(conn, item)
                free.append((conn, loop.time()))
            except Exception:  # noqa: BLE001 - counted as an error; that connection is dropped
                conn.close()
            latencies[i] = loop.time() - due

    tasks = []
    for i, item in enumerate(items):
        due = started + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, item, due)))
    await asyncio.gather(*tasks)
    for conn, _ in free:
        conn.close()
    return {"elapsed": loop.time() - started, "latencies": latencies, "answers": answers, "connections": opened}


async def closed_loop(base_url: str, make_request: Callable, clients: int, seconds: float):
    """Runs `make_request(connection)` on `clients` connections for `seconds`; returns
    (requests/s, latencies in seconds, errors). A response is an error unless it is a 200 without GraphQL errors."""
    parts = urlsplit(base_url)
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker():
        nonlocal errors
        conn = Connection(parts.hostname, parts.port)
        try:
            while time.perf_counter() < deadline:
                t = time.perf_counter()
                try:
                    r = await make_request(conn)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    errors += 1
                    conn.close()
                    conn = Connection(parts.hostname, parts.port)
                    latencies.append(time.perf_counter() - t)
                    continue
                latencies.append(time.perf_counter() - t)
                if r.status != 200 or (r.headers.get("content-type", "").startswith("application/json")
                                       and b'"errors"' in r.body[:20] and "errors" in r.json()):
                    errors += 1
        finally:
            conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, latencies, errors


TRIVIAL_APP = r'''
import sys
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
import uvicorn
async def ok(request):
    return JSONResponse({"ok": True})
uvicorn.run(Starlette(routes=[Route("/", ok)]), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            access_log=False)
'''


def ceiling(clients: int = 50, seconds: float = 3.0) -> float:
    """Requests/s of this client against a trivial Starlette endpoint (one uvicorn process)."""
    import subprocess
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.support import free_port, http_status, wait_until

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", TRIVIAL_APP, str(port)])
    try:
        wait_until(lambda: http_status(f"http://127.0.0.1:{port}/") == 200, 30)
        rps, _, _ = asyncio.run(closed_loop(f"http://127.0.0.1:{port}", lambda c: c.get("/"), clients, seconds))
        return rps
    finally:
        proc.kill()
        proc.wait(10)


if __name__ == "__main__":
    print(f"httpload ceiling: {ceiling():.0f} req/s against a trivial Starlette endpoint, 50 connections")


class CpuMeter:
    """CPU seconds (user + system, their waited-for children included) that named processes spend between `start()`
    and `stop()`, read from /proc/<pid>/stat: where the CPU of a request goes, process by process."""

    def __init__(self, pids: dict[str, int]):
        self.pids = {name: pid for name, pid in pids.items() if pid}
        self.tick = os.sysconf("SC_CLK_TCK")
        self.begin: dict[str, float] = {}

    def _read(self, pid: int) -> float:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return sum(int(v) for v in fields[11:15]) / self.tick  # utime stime cutime cstime

    def start(self) -> None:
        self.begin = {name: self._read(pid) for name, pid in self.pids.items()}

    def stop(self) -> dict[str, float]:
        return {name: self._read(pid) - self.begin.get(name, 0.0) for name, pid in self.pids.items()}

    @staticmethod
    def per_item(spent: dict[str, float], items: int) -> str:
        """«gateway 1.20 ms, consultation 0.80 ms, … = 3.10 ms a ballot» for `items` done meanwhile."""
        if not items:
            return "nothing done"
        parts = [f"{name} {seconds / items * 1000:.2f}" for name, seconds in spent.items()]
        return ", ".join(parts) + f" = {sum(spent.values()) / items * 1000:.2f} ms"


def rabbitmq_pid() -> int | None:
    """The local RabbitMQ node's Erlang VM (beam.smp), if one runs."""
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"beam.smp") and any(b"rabbit" in a for a in argv):
                return int(entry.name)
    return None
