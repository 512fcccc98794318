"""The PayFiP simulator, for development and tests only: PayFiP's SOAP web service and payment page on
loopback, plus the sandbox card provider of the demo (/card). Never for production.

  python -m parvis.payfip_sim --port 8090      # prints PARVIS-READY payfip-sim http://127.0.0.1:8090

PayFiP, as the real one behaves (eopayment's recorded exchanges, integrators' notes):
- POST /tpa/services/securite (WSDL at ?wsdl): creerPaiementSecurise checks its input and answers an idOp or a
  FonctionnelleErreur fault (T1 numcli, T2 unknown numcli, S1 saisie, M1/M3/M5 montant, A1/A2 mel, R3 refdet,
  O1 objet, E1 exer, N1 urlnotif, D1 urlredirect); recupererDetailPaiementSecurise answers the detail, P5
  while the result is not known, P1 for an unknown (or forgotten) idOp.
- GET /tpa/paiementws.web?idop=… is the payer's page (French): pay (P), refuse (R), abandon (A). The choice
  is recorded, `idOp=…` is posted form-encoded and unsigned to urlnotif, and the payer is sent to
  urlredirect. An idOp opens the page for 15 minutes (then P4), once (then P3).

It can be told, globally or per idOp, through POST /_sim/control (JSON), to answer late (`p5_seconds`:
P5 for that long after the payer's choice), to notify `once`, `twice` or `never` (after `notify_delay`),
to shorten `lifetime` (page), `forget_after` (P5 → P1) and `card_lifetime`, to fail the next `fault_count` SOAP calls
(`fault`: indisponible | dysfonctionnement | http500) or to answer every call `delay_seconds` late, and to
know only some `numcli`. GET /_sim/operations lists what happened; POST /_sim/notify {idop} sends a
notification again (a replay); POST /_sim/reset forgets everything.

The sandbox card provider: POST /card/api/payments, GET /card/api/payments/<id>, POST …/refunds, …/cancel,
and the page /card/pay/<id> where a GOV.UK Pay test card number pays (4444333322221111, 4242424242424242…),
is declined (4000000000000002, 4000000000000069 expired card, 4000000000000127 wrong CVC) or fails
(4000000000000119); notifications are `{"payment_id": …}` posted as JSON.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import threading
import urllib.error
import urllib.request
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from jinja2 import Environment
from lxml import etree
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

DEFAULT_PORT = 8090
PARIS = ZoneInfo("Europe/Paris")
WSDL = Path(__file__).resolve().parent.parent / "services" / "payment_link" / "providers" / "payfip.wsdl"
NS = ("http://securite.service.tpa.cp.finances.gouv.fr/services/mas_securite/"
      "contrat_paiement_securise/PaiementSecuriseService")
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
FAULT_CLASS = "fr.gouv.finances.cp.tpa.webservice.exceptions."
MIN_AMOUNT, MAX_AMOUNT = 100, 10_000_000
REFDET = re.compile(r"^[A-Za-z0-9]{6,30}$")  # the real service refused a 4-character refdet (R3)
OBJET = re.compile(r"^[A-Za-z0-9 ]{0,100}$")
MEL = re.compile(r"^[^@\s]+@[^@\s]+$")


class SimFault(Exception):
    """A FonctionnelleErreur (or a technical fault) as PayFiP answers it."""

    def __init__(self, code: str, libelle: str, kind: str = "FonctionnelleErreur"):
        super().__init__(code, libelle)
        self.code, self.libelle, self.kind = code, libelle, kind


@dataclass
class Behaviour:
    """How the simulator answers; global defaults, overridden per idOp or card payment."""

    p5_seconds: float = 0.0
    notify: str = "once"  # once | twice | never
    notify_delay: float = 0.0
    lifetime: float = 900.0  # seconds an idOp opens the page (PayFiP: about 15 minutes)
    card_lifetime: float = 5400.0  # seconds a card session stays open (GOV.UK Pay: 90 minutes)
    forget_after: float = 86400.0  # seconds before an unpaid idOp is forgotten (P1), as PayFiP's nightly cleaning
    delay_seconds: float = 0.0  # every SOAP answer this late (client timeouts)
    fault: str | None = None  # indisponible | dysfonctionnement | http500, for the next fault_count calls
    fault_count: int = 0

    def merged(self, override: dict) -> "Behaviour":
        return Behaviour(**{**asdict(self), **override})


FIELDS = set(Behaviour.__dataclass_fields__)


@dataclass
class Operation:
    idop: str
    numcli: str
    exer: str
    montant: str
    mel: str
    objet: str
    refdet: str
    saisie: str
    urlnotif: str
    urlredirect: str
    created: float
    resultrans: str | None = None
    decided: float | None = None
    dattrans: str | None = None
    heurtrans: str | None = None
    numauto: str | None = None
    notifications: list = field(default_factory=list)  # (when, HTTP status or error)
    overrides: dict = field(default_factory=dict)


@dataclass
class CardPayment:
    id: str
    amount: int
    reference: str
    description: str
    email: str
    return_url: str
    notify_url: str
    created: float
    status: str = "created"  # created | success | declined | cancelled | expired | error
    authorised_at: str | None = None
    authorisation_code: str | None = None
    card_last4: str | None = None
    refunds: list = field(default_factory=list)
    notifications: list = field(default_factory=list)
    overrides: dict = field(default_factory=dict)


# GOV.UK Pay's sandbox cards (alphagov/pay-connector, SandboxCardNumbers).
GOOD_CARDS = {"4444333322221111", "4242424242424242", "4000056655665556", "5105105105105100", "5200828282828210",
              "371449635398431", "3566002020360505", "6011000990139424", "36148900647913", "4000180000000002",
              "5101180000000007", "4131840000000003"}
DECLINED_CARDS = {"4000000000000002": "Paiement refusé par la banque.",
                  "4000000000000069": "Carte expirée.",
                  "4000000000000127": "Cryptogramme visuel incorrect."}
ERROR_CARDS = {"4000000000000119": "Le paiement n'a pas pu être traité."}


class Simulator:
    def __init__(self, clock=None):
        import time

        self.clock = clock or time.time
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.defaults = Behaviour()
            self.operations: dict[str, Operation] = {}
            self.cards: dict[str, CardPayment] = {}
            self.known_numcli: set[str] | None = None  # None: any well-formed numcli exists
            self.soap_calls: deque[str] = deque(maxlen=1000)  # the operations called, newest last

    def behaviour(self, overrides: dict) -> Behaviour:
        return self.defaults.merged(overrides)

    def control(self, body: dict) -> dict:
        """Sets the defaults, or one idOp's / card payment's behaviour when `idop` / `card` is given."""
        target = body.get("idop") or body.get("card")
        changes = {k: v for k, v in body.items() if k in FIELDS}
        unknown = set(body) - FIELDS - {"idop", "card", "numcli"}
        if unknown:
            raise ValueError(f"unknown settings: {sorted(unknown)}")
        with self.lock:
            if "numcli" in body:
                self.known_numcli = None if body["numcli"] is None else set(body["numcli"])
            if target:
                item = self.operations.get(target) or self.cards.get(target)
                if item is None:
                    raise KeyError(target)
                item.overrides.update(changes)
                return asdict(self.behaviour(item.overrides))
            self.defaults = self.defaults.merged(changes)
            return asdict(self.defaults)

    def take_fault(self) -> SimFault | str | None:
        with self.lock:
            if self.defaults.fault and self.defaults.fault_count > 0:
                self.defaults.fault_count -= 1
                kind = self.defaults.fault
                if kind == "http500":
                    return "http500"
                return SimFault("T0" if kind == "indisponible" else "T9",
                                "Service momentanément indisponible." if kind == "indisponible"
                                else "Dysfonctionnement technique.",
                                "TechIndisponibiliteErreur" if kind == "indisponible" else "TechDysfonctionnementErreur")
        return None

    # -- PayFiP's operations ---------------------------------------------------------------------------
    def creer(self, arg: dict) -> str:
        numcli, saisie, montant = arg.get("numcli") or "", arg.get("saisie") or "", arg.get("montant") or ""
        mel, refdet, objet = arg.get("mel") or "", arg.get("refdet") or "", arg.get("objet") or ""
        if not re.fullmatch(r"[0-9]{6}", numcli):
            raise SimFault("T1", "Le numéro de client est incorrect.")
        if self.known_numcli is not None and numcli not in self.known_numcli:
            raise SimFault("T2", "Le N° du client doit être pré-existant dans la base PayFiP.")
        if saisie not in ("T", "X", "W"):
            raise SimFault("S1", "Le mode de saisie est incorrect.")
        if not re.fullmatch(r"[0-9]{4}", arg.get("exer") or ""):
            raise SimFault("E1", "Le format du paramètre EXER n'est pas conforme")
        if not re.fullmatch(r"[0-9]{1,11}", montant):
            raise SimFault("M1", "Le format du montant n'est pas correct.")
        if int(montant) < MIN_AMOUNT:
            raise SimFault("M3", "Le montant doit être supérieur ou égal à 1 euro.")
        if int(montant) > MAX_AMOUNT:
            raise SimFault("M5", "Le montant dépasse le maximum autorisé.")
        if not mel:
            raise SimFault("A1", "Adresse mél non renseignée.")
        if not (6 <= len(mel) <= 80 and MEL.match(mel)):
            raise SimFault("A2", "Adresse mél incorrecte. ")
        if not REFDET.match(refdet):
            raise SimFault("R3", "Le format du paramètre REFDET n'est pas conforme")
        if not OBJET.match(objet):
            raise SimFault("O1", "Le format du paramètre OBJET n'est pas conforme")
        for name, code in (("urlnotif", "N1"), ("urlredirect", "D1")):
            value = arg.get(name) or ""
            if len(value) > 250 or urlparse(value).scheme not in ("http", "https") or not urlparse(value).netloc:
                raise SimFault(code, f"Le format du paramètre {name.upper()} n'est pas conforme")
        op = Operation(idop=str(uuid.uuid1()), numcli=numcli, exer=arg["exer"], montant=str(int(montant)), mel=mel,
                       objet=objet, refdet=refdet, saisie=saisie, urlnotif=arg["urlnotif"],
                       urlredirect=arg["urlredirect"], created=self.clock())
        with self.lock:
            self.operations[op.idop] = op
        return op.idop

    def detail(self, idop: str) -> dict:
        op = self.operations.get(idop)
        now = self.clock()
        if op is None:
            raise SimFault("P1", "IdOp incorrect.")
        b = self.behaviour(op.overrides)
        if op.resultrans is None:
            if now - op.created >= b.forget_after:
                raise SimFault("P1", "IdOp incorrect.")
            raise SimFault("P5", "Résultat de la transaction non connu.")
        if now - op.decided < b.p5_seconds:
            raise SimFault("P5", "Résultat de la transaction non connu.")
        return {"dattrans": op.dattrans, "exer": op.exer, "heurtrans": op.heurtrans, "idOp": op.idop, "mel": op.mel,
                "montant": op.montant, "numauto": op.numauto, "numcli": op.numcli, "objet": op.objet,
                "refdet": op.refdet, "resultrans": op.resultrans, "saisie": op.saisie}

    def client(self, numcli: str) -> dict:
        if not re.fullmatch(r"[0-9]{6}", numcli or "") or (self.known_numcli is not None and numcli not in self.known_numcli):
            raise SimFault("T2", "Le N° du client doit être pré-existant dans la base PayFiP.")
        return {"libelleN1": "REGIE DE RECETTES (SIMULATEUR)", "libelleN2": "SICOVAL", "libelleN3": "PARVIS",
                "numcli": numcli}

    def page_problem(self, op: Operation | None) -> tuple[str, str] | None:
        """(code, French message) when the page cannot be used with this idOp."""
        if op is None:
            return "P1", "Cette opération de paiement est inconnue."
        if op.resultrans is not None:
            return "P3", "Cette opération de paiement a déjà été utilisée."
        if self.clock() - op.created >= self.behaviour(op.overrides).lifetime:
            return "P4", "Cette opération de paiement a expiré (plus de 15 minutes). Retournez sur le site du " \
                         "service pour recommencer."
        return None

    def choose(self, idop: str, resultrans: str) -> Operation:
        with self.lock:
            op = self.operations.get(idop)
            problem = self.page_problem(op)
            if problem:
                raise SimFault(*problem)
            now = self.clock()
            local = datetime.fromtimestamp(now, PARIS)
            op.resultrans, op.decided = resultrans, now
            op.dattrans, op.heurtrans = local.strftime("%d%m%Y"), local.strftime("%H%M")
            op.numauto = f"{uuid.uuid4().int % 10**12:012d}-sim" if resultrans in ("P", "V") else None
            return op


SIM = Simulator()


# -- notifications ------------------------------------------------------------------------------------------
def _post(url: str, body: bytes, content_type: str) -> str:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return str(response.status)
    except urllib.error.HTTPError as exc:
        return str(exc.code)
    except Exception as exc:  # noqa: BLE001 - recorded for /_sim/operations; PayFiP does not retry either
        return f"error: {exc}"


async def notify(item, url: str, body: bytes, content_type: str, behaviour: Behaviour, force: bool = False) -> None:
    times = 1 if force else {"once": 1, "twice": 2, "never": 0}.get(behaviour.notify, 1)
    if times and behaviour.notify_delay and not force:
        await asyncio.sleep(behaviour.notify_delay)
    for _ in range(times):
        outcome = await asyncio.to_thread(_post, url, body, content_type)
        item.notifications.append((datetime.now(timezone.utc).isoformat(), outcome))


def _spawn(coro) -> None:
    task = asyncio.get_running_loop().create_task(coro)
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)


_TASKS: set = set()


# -- SOAP ---------------------------------------------------------------------------------------------------
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, remove_blank_text=True)


def _envelope(body: str) -> str:
    return (f'<?xml version="1.0" encoding="UTF-8"?><S:Envelope xmlns:S="{SOAP_ENV}"><S:Body>{body}'
            f'</S:Body></S:Envelope>')


def _fields_xml(values: dict) -> str:
    return "".join(f"<{k}>{escape(v)}</{k}>" if v is not None else "" for k, v in values.items())


def soap_answer(operation: str, values: dict) -> str:
    """As JAX-WS writes it: the operation's response element in PayFiP's namespace, `return` unqualified."""
    return _envelope(f'<ns2:{operation}Response xmlns:ns2="{NS}"><return>{_fields_xml(values)}</return>'
                     f'</ns2:{operation}Response>')


def soap_fault(fault: SimFault) -> str:
    # PayFiP's own shape (recorded by eopayment): faultcode S:Server, the Java class as faultstring,
    # the detail element named after the fault with code, descriptif, libelle, severite.
    return _envelope(
        f'<S:Fault xmlns:ns4="http://www.w3.org/2003/05/soap-envelope"><faultcode>S:Server</faultcode>'
        f'<faultstring>{FAULT_CLASS}{fault.kind}</faultstring><detail><ns2:{fault.kind} xmlns:ns2="{NS}">'
        f'<code>{escape(fault.code)}</code><descriptif/><libelle>{escape(fault.libelle)}</libelle>'
        f'<severite>2</severite></ns2:{fault.kind}></detail></S:Fault>')


async def _form(request: Request) -> dict[str, str]:
    """A form-encoded body (the pages' forms), without python-multipart: a form here is small and flat."""
    fields = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in fields.items()}


def _xml(text: str, status: int = 200) -> Response:
    return Response(text, status_code=status, media_type="text/xml; charset=utf-8")


async def soap(request: Request) -> Response:
    if request.method == "GET":
        if "wsdl" not in {k.lower() for k in request.query_params}:
            return Response("PayFiP (simulateur) : ajoutez ?wsdl", media_type="text/plain; charset=utf-8")
        address = str(request.url.replace(query=""))
        wsdl = WSDL.read_text(encoding="utf-8").replace("https://www.payfip.gouv.fr/tpa/services/securite", address)
        return _xml(wsdl)
    body = await request.body()
    try:
        root = etree.fromstring(body, _PARSER)
        call = root.find(f"{{{SOAP_ENV}}}Body")[0]
    except (etree.XMLSyntaxError, TypeError, IndexError):
        return _xml(soap_fault(SimFault("", "Message SOAP illisible.", "TechProtocolaireErreur")), 500)
    operation = etree.QName(call).localname
    arg0 = call.find("arg0")
    arg = {etree.QName(child).localname: (child.text or "") for child in (arg0 if arg0 is not None else [])}
    SIM.soap_calls.append(operation)
    behaviour = SIM.defaults
    if behaviour.delay_seconds:
        await asyncio.sleep(behaviour.delay_seconds)
    fault = SIM.take_fault()
    if fault == "http500":
        # What a reverse proxy in front of PayFiP answers when PayFiP is down: no SOAP at all.
        return Response("502 Proxy Error: the upstream server is unavailable.", status_code=502,
                        media_type="text/plain")
    try:
        if fault:
            raise fault
        if operation == "creerPaiementSecurise":
            return _xml(soap_answer(operation, {"idOp": SIM.creer(arg)}))
        if operation == "recupererDetailPaiementSecurise":
            return _xml(soap_answer(operation, SIM.detail(arg.get("idOp") or "")))
        if operation == "recupererDetailClient":
            return _xml(soap_answer(operation, SIM.client(arg.get("numCli") or "")))
        raise SimFault("", f"Opération inconnue : {operation}", "TechProtocolaireErreur")
    except SimFault as exc:
        return _xml(soap_fault(exc), 500)


# -- pages --------------------------------------------------------------------------------------------------
_ENV = Environment(autoescape=True)
_ENV.filters["euros"] = lambda cents: f"{int(cents) // 100:,}".replace(",", "\u202f") + f",{int(cents) % 100:02d}\u00a0€"
_BASE = """<!doctype html>
<html lang="fr"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }} – {{ brand }} (simulateur)</title>
<style>
body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#1e1e1e}
.sim{background:#fff3cd;border:2px solid #8a6d00;padding:.5rem 1rem}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem}dt{font-weight:bold}
button{font-size:1.1rem;padding:.6rem 1.2rem;margin:.3rem .5rem .3rem 0;border:2px solid #000091;border-radius:4px;cursor:pointer}
.primary{background:#000091;color:#fff}.secondary{background:#fff;color:#000091}
label{display:block;font-weight:bold;margin-top:1rem}input{font-size:1.1rem;padding:.4rem;width:100%;max-width:22rem}
:focus{outline:3px solid #ffbf47;outline-offset:2px}
</style></head><body>
<header><p class="sim" role="note"><strong>Simulateur de développement</strong> : aucun paiement réel n'est fait ici.</p>
<p>{{ brand }}</p></header>
<main>{{ content }}</main></body></html>"""
_PAYFIP_PAGE = _ENV.from_string("""
<h1>Payer votre facture</h1>
<dl><dt>Montant</dt><dd>{{ op.montant|euros }}</dd>
<dt>Référence</dt><dd>{{ op.refdet }}</dd>
{% if op.objet %}<dt>Objet</dt><dd>{{ op.objet }}</dd>{% endif %}
<dt>Client PayFiP</dt><dd>{{ op.numcli }}</dd>
<dt>Adresse électronique</dt><dd>{{ op.mel }}</dd></dl>
<form method="post" action="/tpa/paiementws.web">
<input type="hidden" name="idop" value="{{ op.idop }}">
<fieldset><legend>Résultat à simuler</legend>
<button class="primary" type="submit" name="resultrans" value="P">Payer par carte</button>
<button class="secondary" type="submit" name="resultrans" value="V">Payer par prélèvement</button>
<button class="secondary" type="submit" name="resultrans" value="R">Simuler un refus de la carte</button>
<button class="secondary" type="submit" name="resultrans" value="A">Abandonner</button>
</fieldset></form>""")
_PROBLEM = _ENV.from_string("""<h1>{{ heading }}</h1><p role="alert">{{ message }}</p>{% if code %}<p>Code : {{ code }}</p>{% endif %}""")
_CARD_PAGE = _ENV.from_string("""
<h1>Payer par carte</h1>
<dl><dt>Montant</dt><dd>{{ p.amount|euros }}</dd><dt>Référence</dt><dd>{{ p.reference }}</dd>
<dt>Objet</dt><dd>{{ p.description }}</dd></dl>
{% if error %}<p role="alert">{{ error }}</p>{% endif %}
<form method="post" action="/card/pay/{{ p.id }}">
<label for="card_number">Numéro de carte</label>
<input id="card_number" name="card_number" inputmode="numeric" autocomplete="off" aria-describedby="card_help">
<p id="card_help">Cartes de test : 4444 3333 2222 1111 (acceptée), 4000 0000 0000 0002 (refusée),
4000 0000 0000 0119 (erreur).</p>
<button class="primary" type="submit" name="action" value="pay">Payer {{ p.amount|euros }}</button>
<button class="secondary" type="submit" name="action" value="cancel">Annuler le paiement</button>
</form>""")


def _page(brand: str, title: str, content: str, status: int = 200) -> HTMLResponse:
    from markupsafe import Markup

    return HTMLResponse(_ENV.from_string(_BASE).render(brand=brand, title=title, content=Markup(content)),
                        status_code=status)


def _problem(brand: str, code: str | None, message: str, status: int) -> HTMLResponse:
    return _page(brand, "Paiement impossible", _PROBLEM.render(heading="Paiement impossible", message=message,
                                                                code=code), status)


async def payfip_page(request: Request) -> Response:
    brand = "PayFiP – paiement des services publics locaux"
    if request.method == "GET":
        idop = request.query_params.get("idop", "")
        op = SIM.operations.get(idop)
        problem = SIM.page_problem(op)
        if problem:
            return _problem(brand, problem[0], problem[1], 410 if problem[0] in ("P3", "P4") else 404)
        return _page(brand, "Payer votre facture", _PAYFIP_PAGE.render(op=op))
    form = await _form(request)
    choice = form.get("resultrans", "")
    if choice not in ("P", "V", "R", "Z", "A"):
        return _problem(brand, None, "Choix inconnu.", 400)
    try:
        op = SIM.choose(form.get("idop", ""), choice)
    except SimFault as exc:
        return _problem(brand, exc.code, exc.libelle, 410)
    _spawn(notify(op, op.urlnotif, urlencode({"idOp": op.idop}).encode(), "application/x-www-form-urlencoded",
                  SIM.behaviour(op.overrides)))
    return RedirectResponse(op.urlredirect, status_code=303)


# -- the sandbox card provider ------------------------------------------------------------------------------
def _card_json(p: CardPayment) -> dict:
    refunded = sum(r["amount"] for r in p.refunds if r["status"] in ("submitted", "success"))
    return {"id": p.id, "status": p.status, "amount": p.amount, "reference": p.reference, "email": p.email,
            "description": p.description, "authorised_at": p.authorised_at,
            "authorisation_code": p.authorisation_code, "card_last4": p.card_last4, "refunds": p.refunds,
            "refund_amount_available": p.amount - refunded if p.status == "success" else 0,
            "next_url": None}


def _error(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, "field": field}, status_code=status)


async def card_create(request: Request) -> Response:
    body = await request.json()
    amount = body.get("amount")
    if not isinstance(amount, int) or isinstance(amount, bool) or not 1 <= amount <= MAX_AMOUNT:
        return _error(422, "amount", "Montant invalide.", "amount")
    for name in ("return_url", "notify_url"):
        if urlparse(body.get(name) or "").scheme not in ("http", "https"):
            return _error(422, name, "Adresse invalide.", name)
    p = CardPayment(id=uuid.uuid4().hex, amount=amount, reference=str(body.get("reference", ""))[:60],
                    description=str(body.get("description", ""))[:255], email=str(body.get("email", ""))[:254],
                    return_url=body["return_url"], notify_url=body["notify_url"], created=SIM.clock())
    with SIM.lock:
        SIM.cards[p.id] = p
    answer = _card_json(p)
    answer["next_url"] = f"{str(request.base_url).rstrip('/')}/card/pay/{p.id}"
    return JSONResponse(answer, status_code=201)


def _card_or_404(request: Request) -> CardPayment | None:
    return SIM.cards.get(request.path_params["id"])


def _expire_card(p: CardPayment) -> None:
    if p.status == "created" and SIM.clock() - p.created >= SIM.behaviour(p.overrides).card_lifetime:
        p.status = "expired"


async def card_get(request: Request) -> Response:
    p = _card_or_404(request)
    if p is None:
        return _error(404, "not_found", "Paiement inconnu.")
    _expire_card(p)
    return JSONResponse(_card_json(p))


async def card_refund(request: Request) -> Response:
    p = _card_or_404(request)
    if p is None:
        return _error(404, "not_found", "Paiement inconnu.")
    body = await request.json()
    amount, seen = body.get("amount"), body.get("refund_amount_available")
    with SIM.lock:
        available = _card_json(p)["refund_amount_available"]
        if p.status != "success":
            return _error(400, "P0601", "Seul un paiement réussi peut être remboursé.")
        if seen != available:  # GOV.UK Pay's guard against racing refunds (412, P0604)
            return _error(412, "P0604", f"Le montant remboursable est {available} centimes.", "amount_available")
        if not isinstance(amount, int) or not 1 <= amount <= available:
            return _error(400, "P0603", "Montant du remboursement invalide.", "amount")
        refund = {"refund_id": body.get("refund_id") or uuid.uuid4().hex, "amount": amount, "status": "success",
                  "created": datetime.now(timezone.utc).isoformat()}
        p.refunds.append(refund)
    return JSONResponse(refund, status_code=201)


async def card_cancel(request: Request) -> Response:
    p = _card_or_404(request)
    if p is None:
        return _error(404, "not_found", "Paiement inconnu.")
    with SIM.lock:
        if p.status != "created":
            return _error(409, "P0502", "Ce paiement est terminé : il ne peut plus être annulé.")
        p.status = "cancelled"
    return JSONResponse(_card_json(p))


async def card_page(request: Request) -> Response:
    brand = "Paiement par carte – bac à sable"
    p = _card_or_404(request)
    if p is None:
        return _problem(brand, None, "Ce paiement est inconnu.", 404)
    _expire_card(p)
    if p.status != "created":
        return _problem(brand, None, "Ce paiement est terminé ou a expiré.", 410)
    if request.method == "GET":
        return _page(brand, "Payer par carte", _CARD_PAGE.render(p=p))
    form = await _form(request)
    if form.get("action") == "cancel":
        p.status = "cancelled"
    else:
        number = re.sub(r"[\s-]", "", form.get("card_number", ""))
        if number in GOOD_CARDS:
            p.status, p.authorised_at = "success", datetime.now(timezone.utc).isoformat()
            p.authorisation_code = f"{uuid.uuid4().int % 10**6:06d}"
        elif number in DECLINED_CARDS:
            p.status = "declined"
        elif number in ERROR_CARDS:
            p.status = "error"
        else:
            return _page(brand, "Payer par carte", _CARD_PAGE.render(
                p=p, error="Numéro de carte inconnu du bac à sable : utilisez une carte de test."), 422)
        p.card_last4 = number[-4:]
    _spawn(notify(p, p.notify_url, json.dumps({"payment_id": p.id}).encode(), "application/json",
                  SIM.behaviour(p.overrides)))
    return RedirectResponse(p.return_url, status_code=303)


# -- control ------------------------------------------------------------------------------------------------
async def control(request: Request) -> Response:
    try:
        return JSONResponse(SIM.control(await request.json()))
    except KeyError:
        return _error(404, "not_found", "idOp ou paiement inconnu.")
    except (ValueError, TypeError) as exc:
        return _error(400, "bad_setting", str(exc))


async def operations(request: Request) -> Response:
    def view(item):
        data = asdict(item)
        data["behaviour"] = asdict(SIM.behaviour(item.overrides))
        return data

    return JSONResponse({"defaults": asdict(SIM.defaults), "operations": [view(o) for o in SIM.operations.values()],
                         "cards": [view(c) for c in SIM.cards.values()], "soap_calls": list(SIM.soap_calls)})


async def resend(request: Request) -> Response:
    """Sends a notification again (a replay), whatever the behaviour says."""
    body = await request.json()
    key = body.get("idop") or body.get("card") or ""
    op, card = SIM.operations.get(key), SIM.cards.get(key)
    if op is not None:
        await notify(op, op.urlnotif, urlencode({"idOp": op.idop}).encode(), "application/x-www-form-urlencoded",
                     SIM.behaviour(op.overrides), force=True)
        return JSONResponse({"notifications": op.notifications})
    if card is not None:
        await notify(card, card.notify_url, json.dumps({"payment_id": card.id}).encode(), "application/json",
                     SIM.behaviour(card.overrides), force=True)
        return JSONResponse({"notifications": card.notifications})
    return _error(404, "not_found", "idOp ou paiement inconnu.")


async def reset(request: Request) -> Response:
    SIM.reset()
    return JSONResponse({"reset": True})


async def healthz(request: Request) -> Response:
    return JSONResponse({"ok": True})


def app() -> Starlette:
    return Starlette(routes=[
        Route("/tpa/services/securite", soap, methods=["GET", "POST"]),
        Route("/tpa/paiementws.web", payfip_page, methods=["GET", "POST"]),
        Route("/card/api/payments", card_create, methods=["POST"]),
        Route("/card/api/payments/{id}", card_get, methods=["GET"]),
        Route("/card/api/payments/{id}/refunds", card_refund, methods=["POST"]),
        Route("/card/api/payments/{id}/cancel", card_cancel, methods=["POST"]),
        Route("/card/pay/{id}", card_page, methods=["GET", "POST"]),
        Route("/_sim/control", control, methods=["POST"]),
        Route("/_sim/operations", operations, methods=["GET"]),
        Route("/_sim/notify", resend, methods=["POST"]),
        Route("/_sim/reset", reset, methods=["POST"]),
        Route("/_sim/healthz", healthz, methods=["GET"]),
    ])


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PARVIS_PAYFIP_SIM_PORT", DEFAULT_PORT)))
    parser.add_argument("--lifetime", type=float, default=None, help="seconds an idOp opens the page (900)")
    args = parser.parse_args(argv)
    if args.lifetime is not None:
        SIM.defaults.lifetime = args.lifetime
    server = uvicorn.Server(uvicorn.Config(app(), host=args.host, port=args.port, log_level="warning",
                                           access_log=False, lifespan="off"))

    async def run() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.05)
        if server.started:
            print(f"PARVIS-READY payfip-sim http://{args.host}:{args.port}", flush=True)
        await task

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
