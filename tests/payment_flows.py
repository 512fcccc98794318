"""Helpers of the payment tests: the simulator, régies, bills, the payer on the simulator's pages."""
from __future__ import annotations

import os
import re
from urllib.parse import urlparse

import httpx

from tests.support import PYTHON, Proc, free_port, rpc_call

AGENT = {"role": "agent", "subject": "agent:test"}


def start_simulator() -> tuple[Proc, str]:
    port = free_port()
    proc = Proc("payfip-sim", [PYTHON, "-m", "parvis.payfip_sim", "--port", str(port)],
                {**os.environ, "PYTHONUNBUFFERED": "1"}, "PARVIS-READY payfip-sim").start(timeout=30)
    return proc, f"http://127.0.0.1:{port}"


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
