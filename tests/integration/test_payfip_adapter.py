"""The payment providers' adapters against the real simulator process (parvis/payfip_sim.py) over real HTTP:
the PayFiP adapter through zeep and SOAP, the sandbox card adapter through its JSON API. The payer's pages
are driven with plain HTTP (GET the page, POST the choice), and notifications reach a local receiver.
Nothing here is mocked: the same adapter code talks to the DGFiP in production."""
import json
import os
import re
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from contracts.errors import BadInput, ServiceUnavailable
from services.payment_link import domain
from services.payment_link.providers import (
    PaymentProvider,
    ProviderRefused,
    ProviderUnavailable,
    SessionRequest,
    build_providers,
)
from services.payment_link.providers.payfip import PayfipProvider
from services.payment_link.providers.sandbox import SandboxCardProvider
from tests.support import PYTHON, Proc, free_port, wait_until


class Receiver(BaseHTTPRequestHandler):
    """Our notification URL, as the service will expose it: records what the provider posts."""

    received: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        Receiver.received.append((self.path, self.headers.get("Content-Type"), body.decode()))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def receiver():
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def sim():
    port = free_port()
    proc = Proc("payfip-sim", [PYTHON, "-m", "parvis.payfip_sim", "--port", str(port)],
                {**os.environ, "PYTHONUNBUFFERED": "1"}, "PARVIS-READY payfip-sim").start(timeout=30)
    yield f"http://127.0.0.1:{port}"
    proc.stop()


@pytest.fixture(autouse=True)
def fresh(sim):
    httpx.post(f"{sim}/_sim/reset").raise_for_status()
    Receiver.received.clear()


@pytest.fixture(scope="module")
def payfip(sim):
    return PayfipProvider(sim, timeout=5)


@pytest.fixture(scope="module")
def card(sim):
    return SandboxCardProvider(f"{sim}/card", timeout=5)


def control(sim, **settings):
    response = httpx.post(f"{sim}/_sim/control", json=settings)
    response.raise_for_status()
    return response.json()


def bill(receiver, **changes) -> SessionRequest:
    fields = dict(payment_id="pay-1", amount=4250, reference="FACT2026031", description="Cantine de mars — Léa",
                  objet=domain.payfip_objet("Cantine de mars — Léa"), email="jean.dupont@example.fr", language="fr",
                  notify_url=f"{receiver}/pay/notify/payfip", return_url=f"{receiver}/pay/pay-1/retour",
                  exer="2026", numcli="123456", payfip_mode="T")
    return SessionRequest(**{**fields, **changes})


def pay_on_payfip(next_url: str, choice: str) -> httpx.Response:
    """The payer: opens PayFiP's page (French), then presses the button of `choice` (P, V, R or A)."""
    page = httpx.get(next_url)
    assert page.status_code == 200, page.text
    assert '<html lang="fr">' in page.text and "Payer votre facture" in page.text
    idop = re.search(r'name="idop" value="([^"]+)"', page.text).group(1)
    action = urlparse(next_url)._replace(query="").geturl()
    return httpx.post(action, data={"idop": idop, "resultrans": choice}, follow_redirects=False)


def notifications(path_part: str) -> list:
    return [r for r in Receiver.received if path_part in r[0]]


def test_both_adapters_implement_the_interface(payfip, card, sim):
    assert isinstance(payfip, PaymentProvider) and isinstance(card, PaymentProvider)
    assert not payfip.capabilities.refunds and card.capabilities.refunds
    providers = build_providers(payfip_url=sim, sandbox_url=f"{sim}/card")
    assert set(providers) == {"payfip", "sandbox"} and providers["payfip"].service_url == f"{sim}/tpa/services/securite"
    assert build_providers()["payfip"].service_url == "https://www.payfip.gouv.fr/tpa/services/securite"


# -- PayFiP ----------------------------------------------------------------------------------------------
def test_pay_then_the_notification_names_the_idop_and_only_the_read_back_says_paid(payfip, receiver):
    started = datetime.now(timezone.utc)
    session = payfip.start_session(bill(receiver))
    assert session.next_url.endswith(f"/tpa/paiementws.web?idop={session.provider_id}")
    assert payfip.fetch_result(session.provider_id).status == "P5"  # not paid yet

    page = httpx.get(session.next_url)
    assert "42,50" in page.text and "FACT2026031" in page.text and "Cantine de mars Lea" in page.text
    answer = pay_on_payfip(session.next_url, "P")
    assert answer.status_code == 303 and answer.headers["location"] == f"{receiver}/pay/pay-1/retour"

    wait_until(lambda: notifications("/pay/notify/payfip"), 10, message="PayFiP's notification")
    [(path, content_type, body)] = notifications("/pay/notify/payfip")
    assert content_type == "application/x-www-form-urlencoded" and parse_qs(body) == {"idOp": [session.provider_id]}
    assert payfip.notification_id(body, content_type) == session.provider_id

    result = payfip.fetch_result(session.provider_id)
    assert (result.status, result.amount, result.reference, result.numcli) == ("P", 4250, "FACT2026031", "123456")
    assert result.email == "jean.dupont@example.fr" and result.authorisation_code
    assert abs(result.paid_at - started) < timedelta(minutes=2)  # dattrans/heurtrans, Paris time, to the minute
    outcome = domain.payfip_outcome(result.status, started, datetime.now(timezone.utc))
    assert domain.decide("started", outcome, notified=True).state == "success"
    assert domain.detail_mismatches({"amount": 4250, "reference": "FACT2026031", "numcli": "123456"},
                                    {"amount": result.amount, "reference": result.reference,
                                     "numcli": result.numcli}) == []


def test_the_page_serves_an_idop_once(payfip, receiver):
    session = payfip.start_session(bill(receiver))
    pay_on_payfip(session.next_url, "P")
    again = httpx.get(session.next_url)
    assert again.status_code == 410 and "déjà été utilisée" in again.text and "P3" in again.text


@pytest.mark.parametrize("choice, kind, code", [("R", "failed", "P0010"), ("V", "success", None)])
def test_refuse_or_direct_debit(payfip, receiver, choice, kind, code):
    started = datetime.now(timezone.utc)
    session = payfip.start_session(bill(receiver))
    assert pay_on_payfip(session.next_url, choice).status_code == 303
    result = payfip.fetch_result(session.provider_id)
    assert result.status == choice
    outcome = domain.payfip_outcome(result.status, started, datetime.now(timezone.utc))
    assert (outcome.kind, outcome.failure_code) == (kind, code)


def test_abandon_is_final_only_once_the_idop_can_no_longer_be_paid(payfip, receiver):
    started = datetime.now(timezone.utc)
    session = payfip.start_session(bill(receiver))
    pay_on_payfip(session.next_url, "A")
    wait_until(lambda: notifications("/pay/notify/payfip"), 10, message="the notification of an abandon")
    result = payfip.fetch_result(session.provider_id)
    assert result.status == "A" and result.paid_at is None
    now = outcome_time = datetime.now(timezone.utc)
    assert domain.payfip_outcome("A", started, now).provisional == "abandoned"
    later = domain.payfip_outcome("A", started, outcome_time + domain.PAYFIP_IDOP_LIFETIME)
    assert (later.kind, later.failure_code) == ("failed", "P0030")


def test_p5_for_a_while_then_p(payfip, sim, receiver):
    started = datetime.now(timezone.utc)
    session = payfip.start_session(bill(receiver))
    control(sim, idop=session.provider_id, p5_seconds=1.5)
    pay_on_payfip(session.next_url, "P")
    wait_until(lambda: notifications("/pay/notify/payfip"), 10, message="the notification")
    first = payfip.fetch_result(session.provider_id)
    assert first.status == "P5"  # notified, but the result is not known yet: keep polling
    outcome = domain.payfip_outcome(first.status, started, datetime.now(timezone.utc))
    assert domain.decide("started", outcome, notified=True).state == "submitted"
    final = wait_until(lambda: (r := payfip.fetch_result(session.provider_id)).status == "P" and r, 10, interval=0.3,
                       message="P after P5")
    assert final.amount == 4250


def test_unknown_idop_is_p1(payfip):
    result = payfip.fetch_result("00000000-0000-0000-0000-000000000000")
    assert result.status == "P1" and "IdOp incorrect" in result.raw["libelle"]
    young = domain.payfip_outcome("P1", datetime.now(timezone.utc), datetime.now(timezone.utc))
    assert young.kind == "pending"  # PayFiP may not have it yet; later it means cleaned away unpaid


@pytest.mark.parametrize("changes, code, field", [
    ({"numcli": "12345"}, "T1", "numcli"),
    ({"payfip_mode": "Q"}, "S1", "payfip_mode"),
    ({"exer": "26"}, "E1", "exer"),
    ({"amount": 50}, "M3", "amount"),
    ({"amount": 10_000_001}, "M5", "amount"),
    ({"email": ""}, "A1", "email"),
    ({"email": "jean.dupont"}, "A2", "email"),
    ({"reference": "ABCD"}, "R3", "reference"),
    ({"reference": "FACT-2026"}, "R3", "reference"),
    ({"objet": "Crèche"}, "O1", "description"),
    ({"notify_url": "ftp://x/"}, "N1", "notify_url"),
    ({"return_url": "nowhere"}, "D1", "return_url"),
])
def test_functional_faults_become_clear_refusals(payfip, receiver, changes, code, field):
    with pytest.raises(ProviderRefused) as exc:
        payfip.start_session(bill(receiver, **changes))
    error = exc.value
    assert (error.provider_code, error.field, error.retryable) == (code, field, False)
    assert error.message.startswith(f"PayFiP a refusé la demande ({code}) : ")
    converted = error.to_parvis_error()
    assert isinstance(converted, BadInput) and converted.field == field


def test_an_unknown_numcli_is_t2(payfip, sim, receiver):
    control(sim, numcli=["654321"])
    with pytest.raises(ProviderRefused) as exc:
        payfip.start_session(bill(receiver))
    assert exc.value.provider_code == "T2" and "pré-existant" in exc.value.message
    assert payfip.client_details("654321")["numcli"] == "654321"


@pytest.mark.parametrize("fault, text", [("indisponible", "indisponible"), ("dysfonctionnement", "dysfonctionnement"),
                                         ("http500", "HTTP 502")])
def test_technical_faults_are_retryable_and_pass(payfip, sim, receiver, fault, text):
    control(sim, fault=fault, fault_count=1)
    with pytest.raises(ProviderUnavailable) as exc:
        payfip.start_session(bill(receiver))
    assert exc.value.retryable and text in exc.value.message
    assert isinstance(exc.value.to_parvis_error(), ServiceUnavailable)
    assert payfip.start_session(bill(receiver)).provider_id  # the next call goes through


def test_a_late_answer_is_a_timeout(sim, receiver):
    control(sim, delay_seconds=2)
    impatient = PayfipProvider(sim, timeout=0.5)
    began = time.monotonic()
    with pytest.raises(ProviderUnavailable, match="n'a pas répondu dans les 0.5 secondes"):
        impatient.fetch_result("whatever")
    assert time.monotonic() - began < 1.9


def test_an_unreachable_payfip(receiver):
    with pytest.raises(ProviderUnavailable, match="injoignable"):
        PayfipProvider(f"http://127.0.0.1:{free_port()}", timeout=2).start_session(bill(receiver))


def test_an_idop_expires(payfip, sim, receiver):
    control(sim, lifetime=0.5, forget_after=1.5)
    started = datetime.now(timezone.utc)
    session = payfip.start_session(bill(receiver))
    time.sleep(0.6)
    page = httpx.get(session.next_url)
    assert page.status_code == 410 and "expiré" in page.text and "P4" in page.text
    late = httpx.post(urlparse(session.next_url)._replace(query="").geturl(),
                      data={"idop": session.provider_id, "resultrans": "P"}, follow_redirects=False)
    assert late.status_code == 410
    assert payfip.fetch_result(session.provider_id).status == "P5"  # never paid: PayFiP keeps saying P5…
    wait_until(lambda: payfip.fetch_result(session.provider_id).status == "P1", 5, interval=0.2,
               message="P1 once forgotten")  # …until its nightly cleaning forgets the idOp
    expired = domain.payfip_outcome("P1", started, started + domain.PAYFIP_IDOP_LIFETIME)
    assert (expired.kind, expired.failure_code) == ("failed", "P0020")
    assert not notifications("/pay/notify/payfip")


@pytest.mark.parametrize("mode, count", [("twice", 2), ("never", 0)])
def test_notify_twice_or_never(payfip, sim, receiver, mode, count):
    session = payfip.start_session(bill(receiver))
    control(sim, idop=session.provider_id, notify=mode)
    pay_on_payfip(session.next_url, "P")
    if count:
        wait_until(lambda: len(notifications("/pay/notify/payfip")) == count, 10, message=f"{count} notifications")
    else:
        time.sleep(0.5)
    assert len(notifications("/pay/notify/payfip")) == count
    assert payfip.fetch_result(session.provider_id).status == "P"  # the result is there all the same
    replay = httpx.post(f"{sim}/_sim/notify", json={"idop": session.provider_id})
    assert replay.status_code == 200 and len(notifications("/pay/notify/payfip")) == count + 1


def test_a_forged_notification_names_nothing_trusted(payfip):
    assert payfip.notification_id("idOp=abc&idOp=def", "application/x-www-form-urlencoded") is None
    assert payfip.notification_id("resultrans=P", "application/x-www-form-urlencoded") is None
    assert payfip.notification_id("", None) is None


def test_payfip_has_no_refund_nor_cancel(payfip):
    with pytest.raises(ProviderRefused, match="comptable public"):
        payfip.refund("idop", 100, 100, "r1")
    with pytest.raises(ProviderRefused):
        payfip.cancel_session("idop")


def test_the_simulator_serves_the_wsdl_with_its_own_address(sim):
    wsdl = httpx.get(f"{sim}/tpa/services/securite?wsdl")
    assert wsdl.status_code == 200 and f'location="{sim}/tpa/services/securite"' in wsdl.text


# -- the sandbox card provider ------------------------------------------------------------------------------
def pay_by_card(next_url: str, number: str | None, action: str = "pay") -> httpx.Response:
    page = httpx.get(next_url)
    assert page.status_code == 200 and '<label for="card_number">Numéro de carte</label>' in page.text
    return httpx.post(next_url, data={"card_number": number or "", "action": action}, follow_redirects=False)


def card_bill(receiver, **changes):
    return bill(receiver, notify_url=f"{receiver}/pay/notify/sandbox", **changes)


def test_card_pays_then_refunds_with_the_amount_available_guard(card, receiver):
    started = datetime.now(timezone.utc)
    session = card.start_session(card_bill(receiver))
    assert card.fetch_result(session.provider_id).status == "created"
    answer = pay_by_card(session.next_url, "4444 3333 2222 1111")
    assert answer.status_code == 303 and answer.headers["location"] == f"{receiver}/pay/pay-1/retour"
    wait_until(lambda: notifications("/pay/notify/sandbox"), 10, message="the card notification")
    [(_, content_type, body)] = notifications("/pay/notify/sandbox")
    assert card.notification_id(body, content_type) == session.provider_id
    result = card.fetch_result(session.provider_id)
    assert (result.status, result.amount) == ("success", 4250) and result.paid_at and result.authorisation_code
    assert domain.provider_outcome("sandbox", result.status, started, datetime.now(timezone.utc)).kind == "success"

    refund = card.refund(session.provider_id, 1000, 4250, "ref-1")
    assert refund.status == "success" and refund.provider_refund_id == "ref-1"
    with pytest.raises(ProviderRefused) as exc:  # the second refund still believes 42,50 € are refundable
        card.refund(session.provider_id, 1000, 4250, "ref-2")
    assert exc.value.provider_code == "P0604"
    with pytest.raises(ProviderRefused):
        card.refund(session.provider_id, 3251, 3250, "ref-3")
    assert card.refund(session.provider_id, 3250, 3250, "ref-4").status == "success"


@pytest.mark.parametrize("number, status, code", [("4000000000000002", "declined", "P0010"),
                                                  ("4000000000000069", "declined", "P0010"),
                                                  ("4000000000000119", "error", "P0050")])
def test_declined_and_failing_cards(card, receiver, number, status, code):
    started = datetime.now(timezone.utc)
    session = card.start_session(card_bill(receiver))
    assert pay_by_card(session.next_url, number).status_code == 303
    result = card.fetch_result(session.provider_id)
    assert result.status == status and result.paid_at is None
    assert domain.provider_outcome("sandbox", status, started, datetime.now(timezone.utc)).failure_code == code


def test_card_payer_cancels_or_types_an_unknown_number(card, receiver):
    session = card.start_session(card_bill(receiver))
    unknown = pay_by_card(session.next_url, "1234567812345678")
    assert unknown.status_code == 422 and 'role="alert"' in unknown.text
    assert pay_by_card(session.next_url, None, action="cancel").status_code == 303
    assert card.fetch_result(session.provider_id).status == "cancelled"


def test_card_session_cancelled_by_the_service_and_unknown_ids(card, receiver):
    session = card.start_session(card_bill(receiver))
    card.cancel_session(session.provider_id)
    assert card.fetch_result(session.provider_id).status == "cancelled"
    assert httpx.get(session.next_url).status_code == 410
    with pytest.raises(ProviderRefused):
        card.cancel_session(session.provider_id)
    with pytest.raises(ProviderRefused):
        card.fetch_result("nope")
    assert card.notification_id(json.dumps({"payment_id": 5}), "application/json") is None
    assert card.notification_id("not json", "application/json") is None


def test_an_xml_answer_without_a_soap_fault_is_unavailable_not_a_crash():
    import zeep.exceptions

    from services.payment_link.providers.payfip import fault_error

    error = fault_error(zeep.exceptions.Fault("Unknown fault occured", detail=b"<html><h1>502</h1></html>"))
    assert isinstance(error, ProviderUnavailable) and "page d'erreur" in error.message


def test_a_card_session_expires(card, sim, receiver):
    session = card.start_session(card_bill(receiver))
    control(sim, card=session.provider_id, card_lifetime=0.3)
    time.sleep(0.4)
    assert httpx.get(session.next_url).status_code == 410
    assert card.fetch_result(session.provider_id).status == "expired"
