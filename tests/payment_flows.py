"""Helpers of the payment tests: the simulator, régies, bills, the payer on the simulator's pages."""
from __future__ import annotations

import os
import re
from urllib.parse import urlparse

import httpx

from tests.support import PYTHON, Platform, Proc, free_port, rpc_call

AGENT = {"role": "agent", "subject": "agent:test"}


def start_simulator() -> tuple[Proc, str]:
    port = free_port()
    proc = Proc("payfip-sim", [PYTHON, "-m", "parvis.payfip_sim", "--port", str(port)],
                {**os.environ, "PYTHONUNBUFFERED": "1"}, "PARVIS-READY payfip-sim").start(timeout=30)
    return proc, f"http://127.0.0.1:{port}"


def platform_with_simulator(mongo, broker, **env) -> tuple[Platform, Proc, str]:
    """A clean database, the simulator, and a platform whose payments go through it, reconciled every 0.5 s with
    the backoff shortened fifty times (the first question 0.6 s after « Payer »)."""
    mongo.drop_all()
    sim_proc, sim = start_simulator()
    platform = Platform(mongo, broker, PARVIS_PAYFIP_URL=sim, PARVIS_PAYMENT_SANDBOX_URL=f"{sim}/card",
                        PARVIS_PAYMENT_RECONCILE_INTERVAL="0.5", PARVIS_PAYMENT_CHECK_DELAY_SCALE="0.02", **env)
    return platform, sim_proc, sim


def sim_control(sim: str, **settings) -> dict:
    response = httpx.post(f"{sim}/_sim/control", json=settings)
    response.raise_for_status()
    return response.json()


def rpc(platform, method: str, caller: dict | None = AGENT, **kwargs):
    return rpc_call(platform.broker.url, "payment_link", method, caller=caller or {"role": "public"}, timeout=30,
                    **kwargs)


def regies(platform) -> dict[str, dict]:
    cantine = rpc(platform, "save_regie", id="regie-cantine", numcli="123456", name="Régie de la cantine",
                  services=["cantine"], provider={"provider": "payfip", "payfip_mode": "T"})
    eau = rpc(platform, "save_regie", id="regie-eau", numcli="654321", name="Régie de l'eau", services=["eau"],
              provider={"provider": "sandbox"})
    return {"cantine": cantine, "eau": eau}


def bill(regie_id: str = "regie-cantine", **changes) -> dict:
    return {"regie_id": regie_id, "amount": 4250, "reference": "FACT2026031", "description": "Cantine de mars — Léa",
            "email": "jean.dupont@example.fr", **changes}


def create(platform, key: str | None = None, caller: dict | None = AGENT, **changes) -> dict:
    return rpc(platform, "create_payment_link", caller=caller, idempotency_key=key, payment=bill(**changes))


def payfip_choose(next_url: str, choice: str) -> httpx.Response:
    """The payer on PayFiP's page: presses pay (P), refuse (R) or abandon (A)."""
    page = httpx.get(next_url)
    assert page.status_code == 200, page.text
    idop = re.search(r'name="idop" value="([^"]+)"', page.text).group(1)
    action = urlparse(next_url)._replace(query="").geturl()
    return httpx.post(action, data={"idop": idop, "resultrans": choice}, follow_redirects=False)


def card_pay(next_url: str, number: str = "4444333322221111") -> httpx.Response:
    page = httpx.get(next_url)
    assert page.status_code == 200, page.text
    return httpx.post(next_url, data={"card_number": number, "cvc": "123", "expiry": "12/30", "name": "Jean Dupont"},
                      follow_redirects=False)


class BusTap:
    """Every `payment_link.*` event published on the bus, as a test's own queue receives them (at least once: the
    same envelope delivered twice has the same event_id)."""

    def __init__(self, amqp_url: str):
        import threading

        from kombu import Connection, Exchange, Queue

        self.envelopes: list[dict] = []
        self.conn = Connection(amqp_url)
        exchange = Exchange("payment_link.events", type="topic", durable=True)
        self.queue = Queue(f"test-tap-{os.getpid()}-{id(self)}", exchange=exchange, routing_key="payment_link.#",
                           auto_delete=True, exclusive=True)
        self.running = True
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10), "the bus tap did not start"

    def _run(self) -> None:
        import socket

        with self.conn.Consumer([self.queue], callbacks=[self._on], accept=["json"]):
            self.ready.set()
            while self.running:
                try:
                    self.conn.drain_events(timeout=0.2)
                except socket.timeout:
                    pass

    def _on(self, body, message) -> None:
        self.envelopes.append(body)
        message.ack()

    def of(self, payment_id: str, event_type: str | None = None) -> list[dict]:
        """Distinct events (by event_id) about one payment, in arrival order."""
        seen, out = set(), []
        for env in list(self.envelopes):
            data = env.get("data") or {}
            if data.get("payment_id") == payment_id and (event_type is None or env["type"] == event_type) \
                    and env["event_id"] not in seen:
                seen.add(env["event_id"])
                out.append(env)
        return out

    def close(self) -> None:
        self.running = False
        self.thread.join(5)
        self.conn.release()
