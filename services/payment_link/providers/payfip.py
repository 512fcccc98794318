"""PayFiP (DGFiP) through its SOAP web service with zeep: creerPaiementSecurise opens a session (idOp),
the payer pays on PayFiP's page, and only recupererDetailPaiementSecurise(idOp) says what happened.

The WSDL travels with the package (payfip.wsdl); the service address is PayFiP's base URL + /tpa/services/securite,
so the same adapter talks to the DGFiP or to the simulator (parvis/payfip_sim.py). PayFiP's faults become
ProviderRefused (FonctionnelleErreur: our request was refused, naming our field) or ProviderUnavailable
(technical faults, timeouts, unreadable answers). P5 (result not known yet) and P1 (unknown idOp) are
answers, not failures: fetch_result returns them as the result's status.

zeep sends its POSTs through PayfipTransport, straight onto a urllib3 pool (what requests uses underneath), not
through a requests.Session: requests' own machinery (Session.request, prepare, merge of the settings,
HTTPAdapter.send) was a third of the service's CPU while it read back 200 results a second. A call costs 28-31 %
less CPU (1.14 ms, now 0.78 ms, on the simulator).
"""
from __future__ import annotations

import logging
import os
from datetime import datetime, timezone
from http.client import RemoteDisconnected
from pathlib import Path
from urllib.parse import parse_qs, quote
from zoneinfo import ZoneInfo

import requests
import requests.utils
import urllib3
import urllib3.exceptions
import zeep
import zeep.exceptions
from lxml import etree
from zeep.transports import Transport

from services.payment_link.domain import PAYFIP_IDOP_LIFETIME
from services.payment_link.providers import (
    Capabilities,
    ProviderRefused,
    ProviderResult,
    ProviderUnavailable,
    RefundResult,
    Session,
    SessionRequest,
)

DGFIP_URL = "https://www.payfip.gouv.fr"
WSDL_PATH = Path(__file__).with_name("payfip.wsdl")
NAMESPACE = ("http://securite.service.tpa.cp.finances.gouv.fr/services/mas_securite/"
             "contrat_paiement_securise/PaiementSecuriseService")
BINDING = f"{{{NAMESPACE}}}PaiementSecuriseServicePortBinding"
SERVICE_PATH = "/tpa/services/securite"
PAGE_PATH = "/tpa/paiementws.web"
FAULTS = ("FonctionnelleErreur", "TechDysfonctionnementErreur", "TechIndisponibiliteErreur", "TechProtocolaireErreur")
PARIS = ZoneInfo("Europe/Paris")
ANSWER_CODES = ("P5", "P1")  # faults of recupererDetailPaiementSecurise that are answers

# The first letter of PayFiP's functional codes names the parameter (its guide's annex; eopayment's and
# other integrators' recorded answers: R3 refdet, A2 mel, P1 idOp, P5…): our field for each.
FIELD_OF_CODE = {"T": "numcli", "S": "payfip_mode", "M": "amount", "A": "email", "R": "reference",
                 "O": "description", "N": "notify_url", "D": "return_url", "E": "exer", "P": "provider_id"}

log = logging.getLogger(__name__)


class PayfipProvider:
    name = "payfip"
    # No refund call in the web service; an idOp cannot be withdrawn; its page stays open ~15 minutes.
    capabilities = Capabilities(refunds=False, cancel_session=False, reuse_window=PAYFIP_IDOP_LIFETIME)

    def __init__(self, base_url: str = DGFIP_URL, timeout: float = 15.0, session: requests.Session | None = None):
        base = base_url.rstrip("/")
        self.service_url = base + SERVICE_PATH
        self.page_url = base + PAGE_PATH
        self.timeout = timeout
        # operation_timeout bounds each SOAP call (connect and read); eopayment uses 15 s against PayFiP.
        # A requests.Session given by the caller goes through zeep's own Transport, as before.
        transport = (Transport(session=session, timeout=timeout, operation_timeout=timeout) if session is not None
                     else PayfipTransport(self.service_url, timeout=timeout))
        settings = zeep.Settings(strict=True, xml_huge_tree=False, forbid_dtd=True, forbid_entities=True,
                                 forbid_external=True)
        self.client = zeep.Client(str(WSDL_PATH), transport=transport, settings=settings)
        self.service = self.client.create_service(BINDING, self.service_url)

    # -- the interface -----------------------------------------------------------------------------------
    def start_session(self, request: SessionRequest) -> Session:
        arg0 = {"exer": request.exer, "mel": request.email, "montant": str(request.amount),
                "numcli": request.numcli, "objet": request.objet or None, "refdet": request.reference,
                "saisie": request.payfip_mode, "urlnotif": request.notify_url, "urlredirect": request.return_url}
        answer = self._call("creerPaiementSecurise", arg0)
        idop = answer if isinstance(answer, str) else getattr(answer, "idOp", None)
        if not idop:
            raise ProviderUnavailable("PayFiP n'a pas donné d'identifiant d'opération (idOp).")
        return Session(provider_id=idop, next_url=f"{self.page_url}?idop={quote(idop, safe='')}")

    def fetch_result(self, provider_id: str) -> ProviderResult:
        try:
            detail = self._call("recupererDetailPaiementSecurise", {"idOp": provider_id})
        except ProviderRefused as exc:
            if exc.provider_code in ANSWER_CODES:
                return ProviderResult(self.name, provider_id, exc.provider_code, raw={"code": exc.provider_code,
                                                                                   "libelle": exc.detail})
            raise
        raw = {name: getattr(detail, name, None) for name in (
            "dattrans", "exer", "heurtrans", "idOp", "mel", "montant", "numauto", "numcli", "objet", "refdet",
            "resultrans", "saisie")}
        status = (raw["resultrans"] or "").strip()
        if not status:
            raise ProviderUnavailable("PayFiP a répondu sans résultat de transaction (resultrans vide).")
        return ProviderResult(
            provider=self.name, provider_id=provider_id, status=status,
            amount=_int_or_none(raw["montant"]), reference=raw["refdet"], numcli=raw["numcli"], email=raw["mel"],
            paid_at=transaction_time(raw["dattrans"], raw["heurtrans"]) if status in ("P", "V") else None,
            authorisation_code=raw["numauto"] or None, raw=raw)

    def notification_id(self, body: str, content_type: str | None) -> str | None:
        """PayFiP posts `idOp=…` form-encoded, unsigned: only a name to read back, never a result."""
        fields = parse_qs(body or "", keep_blank_values=False)
        values = fields.get("idOp") or fields.get("idop") or []
        value = values[0].strip() if len(values) == 1 else ""
        return value if 0 < len(value) <= 100 else None

    def refund(self, provider_id: str, amount: int, amount_available: int, refund_id: str) -> RefundResult:
        raise ProviderRefused("PayFiP n'a pas de remboursement en ligne : le comptable public rembourse, puis un "
                              "agent le note comme fait.", field="amount")

    def cancel_session(self, provider_id: str) -> None:
        raise ProviderRefused("PayFiP ne permet pas d'annuler une opération en cours.", field="state")

    def client_details(self, numcli: str) -> dict:
        """recupererDetailClient: the labels PayFiP holds for a numcli (checks a régie's settings)."""
        answer = self._call("recupererDetailClient", {"numCli": numcli})
        return {name: getattr(answer, name, None) for name in ("numcli", "libelleN1", "libelleN2", "libelleN3")}

    # -- SOAP ----------------------------------------------------------------------------------------------
    def _call(self, operation: str, arg0: dict):
        try:
            try:
                return getattr(self.service, operation)(arg0=arg0)
            except requests.ConnectionError as exc:
                if isinstance(exc, requests.ConnectTimeout) or not _dropped(exc):
                    raise
                # A kept-alive connection that PayFiP closed as we sent on it (its idle timeout): the request did
                # not get there; once more on a new connection. (A caller's requests.Session: PayfipTransport does this
                # itself.)
                log.info("PayFiP closed a kept-alive connection (%s): sent again", exc)
                return getattr(self.service, operation)(arg0=arg0)
        except zeep.exceptions.Fault as fault:
            raise fault_error(fault) from None
        except urllib3.exceptions.NewConnectionError as exc:  # refused, no such host: urllib3 files it under timeouts
            raise ProviderUnavailable("PayFiP est injoignable pour le moment.", detail=str(exc)) from None
        except (requests.Timeout, urllib3.exceptions.TimeoutError):
            raise ProviderUnavailable(f"PayFiP n'a pas répondu dans les {self.timeout:g} secondes.") from None
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            raise ProviderUnavailable("PayFiP est injoignable pour le moment.", detail=str(exc)) from None
        except zeep.exceptions.TransportError as exc:
            raise ProviderUnavailable(f"PayFiP a répondu par une erreur HTTP {exc.status_code}.",
                                      detail=str(exc)[:500]) from None
        except (zeep.exceptions.Error, etree.XMLSyntaxError) as exc:
            raise ProviderUnavailable("PayFiP a donné une réponse illisible.", detail=str(exc)[:500]) from None


POOL_SIZE = 64  # kept-alive connections to PayFiP: one per green thread calling at once (nameko workers: 40)


class PayfipTransport(Transport):
    """zeep's Transport whose POSTs go straight onto a urllib3 pool. With requests, each call went through
    Session.request, prepare, the merge of the settings and HTTPAdapter.send before reaching urllib3: a third of
    the service's CPU at 200 read-backs a second. Against the simulator on loopback, 2,000 fetch_result a round, the
    session and this transport in turn (6 rounds each): 1.14 ms of CPU a call before, 0.78 ms now (-31 %); under
    eventlet's monkey-patching 1.25 ms, 0.90 ms (-28 %). zeep still builds and reads the messages; load() is zeep's
    own (the WSDL is a local file).

    As the requests.Session it replaces: operation_timeout bounds the connect and each read; up to POOL_SIZE
    connections kept alive; the environment's proxy and CA bundle read once (provider_pool); requests' default
    headers; gzip answers decoded. A call whose kept-alive connection PayFiP closed before answering (its idle
    timeout) is sent once more on a new connection: only that case, never after a timeout, an unreadable answer or
    once an answer began. Two differences: a redirect is not followed (the session followed it, a 302 turning the
    SOAP call into a GET elsewhere; now a 3xx is an HTTP error), and no cookie jar (the web service has no use for
    one: each call names its idOp or numcli)."""

    def __init__(self, url: str, timeout: float | None):
        super().__init__(timeout=timeout, operation_timeout=timeout)
        self.pool = provider_pool(url)
        self.headers = {"User-Agent": self.session.headers["User-Agent"],
                        "Accept-Encoding": requests.utils.DEFAULT_ACCEPT_ENCODING, "Accept": "*/*",
                        "Connection": "keep-alive"}
        self._timeout = (None, None)  # (operation_timeout, its urllib3.Timeout): zeep's settings() may change it

    def post(self, address, message, headers):
        headers = {**self.headers, **headers}
        if self._timeout[0] != self.operation_timeout:
            seconds = self.operation_timeout
            self._timeout = (seconds, urllib3.Timeout(connect=seconds, read=seconds))
        timeout = self._timeout[1]
        try:
            answer = self._send(address, message, headers, timeout)
        except urllib3.exceptions.ProtocolError as exc:
            if not _dropped(exc):
                raise
            # A kept-alive connection that PayFiP closed as we sent on it (its idle timeout): the request did not get
            # there; once more on a new connection.
            log.info("PayFiP closed a kept-alive connection (%s): sent again", exc)
            answer = self._send(address, message, headers, timeout)
        try:
            content = answer.read()  # read here, outside the retry: an answer cut short is not sent again
        finally:
            answer.release_conn()
        return Reply(answer.status, content, answer.headers)

    def _send(self, address, message, headers, timeout):
        return self.pool.urlopen("POST", address, body=message, headers=headers, timeout=timeout, retries=False,
                                 redirect=False, preload_content=False)

    def close(self) -> None:
        """Closes the kept-alive connections (zeep's Client calls it on leaving a `with`)."""
        self.pool.clear()


class Reply:
    """What zeep reads of an HTTP answer, under requests.Response's names; headers are case-insensitive."""

    __slots__ = ("status_code", "content", "headers")

    def __init__(self, status_code: int, content: bytes, headers):
        self.status_code, self.content, self.headers = status_code, content, headers

    @property
    def encoding(self) -> str | None:
        return requests.utils.get_encoding_from_headers(self.headers)


def provider_pool(url: str) -> urllib3.PoolManager:
    """The connections to PayFiP, built once per process: kept alive for as many calls at once as the service makes
    (POOL_SIZE; requests kept 10 and opened a new connection for the others, each time), and the environment's proxy
    (HTTPS_PROXY…, unless NO_PROXY names the host) and CA bundle (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, else certifi's)
    read once here, as requests reads them (with `trust_env`, requests read the whole environment again on every
    call: 1.5 ms of CPU a call, measured with bench/payments.py)."""
    ca = (os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
          or requests.utils.DEFAULT_CA_BUNDLE_PATH)
    settings = {"num_pools": 4, "maxsize": POOL_SIZE, "block": False, "retries": False, "cert_reqs": "CERT_REQUIRED",
                ("ca_cert_dir" if os.path.isdir(ca) else "ca_certs"): ca}
    proxy = requests.utils.select_proxy(url, requests.utils.get_environ_proxies(url))
    if not proxy:
        return urllib3.PoolManager(**settings)
    proxy = requests.utils.prepend_scheme_if_needed(proxy, "http")
    username, password = requests.utils.get_auth_from_url(proxy)
    if proxy.lower().startswith("socks"):
        from urllib3.contrib.socks import SOCKSProxyManager  # needs PySocks, as requests did

        return SOCKSProxyManager(proxy, username=username or None, password=password or None, **settings)
    auth = urllib3.util.make_headers(proxy_basic_auth=f"{username}:{password}") if username else None
    return urllib3.ProxyManager(proxy, proxy_headers=auth, **settings)


def _dropped(exc: Exception) -> bool:
    """Whether the connection was closed by the other end before any answer (RemoteDisconnected, a reset), not
    refused nor timed out: urllib3's ProtocolError("Connection aborted.", …) or requests' ConnectionError around it."""
    if isinstance(exc, urllib3.exceptions.ProtocolError):
        return len(exc.args) > 1 and isinstance(exc.args[1], (RemoteDisconnected, ConnectionResetError))
    text = repr(exc)
    return "Connection aborted" in text or "RemoteDisconnected" in text or "ConnectionResetError" in text


def _local(tag) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def fault_error(fault: zeep.exceptions.Fault) -> ProviderRefused | ProviderUnavailable:
    """A SOAP fault as a ProviderError: FonctionnelleErreur{code, descriptif, libelle, severite} refuses our
    request; the three technical faults (dysfonctionnement, indisponibilité, protocole) are retryable."""
    kind, fields = None, {}
    if fault.detail is not None and not isinstance(fault.detail, etree._Element):
        # zeep read an XML answer without a SOAP fault in it (an intermediary's error page): no PayFiP answer.
        return ProviderUnavailable("PayFiP a répondu par une page d'erreur au lieu d'un message SOAP. "
                                   "Réessayez plus tard.", detail=repr(fault.detail)[:500])
    if fault.detail is not None:
        for element in fault.detail.iter():
            if _local(element.tag) in FAULTS:
                kind = _local(element.tag)
                fields = {_local(child.tag): (child.text or "").strip() for child in element}
                break
    if kind is None:
        kind = next((name for name in FAULTS if name in (fault.message or "")), None)
    code = fields.get("code") or None
    text = fields.get("libelle") or fields.get("descriptif") or fields.get("message") or ""
    if kind == "FonctionnelleErreur":
        field = FIELD_OF_CODE.get(code[0]) if code else None
        label = f" ({code})" if code else ""
        return ProviderRefused(f"PayFiP a refusé la demande{label} : {text or 'motif non précisé'}".rstrip(" .") + ".",
                               provider_code=code, field=field, detail=text)
    reason = {"TechIndisponibiliteErreur": "PayFiP est indisponible pour le moment",
              "TechDysfonctionnementErreur": "PayFiP rencontre un dysfonctionnement",
              "TechProtocolaireErreur": "PayFiP n'a pas compris l'échange (erreur de protocole)"}.get(
        kind, "PayFiP a répondu par une erreur technique")
    return ProviderUnavailable(f"{reason}{f' ({code})' if code else ''}. Réessayez plus tard.", provider_code=code,
                               detail=text or fault.message)


def transaction_time(dattrans: str | None, heurtrans: str | None) -> datetime | None:
    """PayFiP's dattrans (DDMMYYYY) and heurtrans (HHMM), Paris time, as UTC; None when absent or odd."""
    try:
        local = datetime.strptime(f"{dattrans}{heurtrans}", "%d%m%Y%H%M")
    except (TypeError, ValueError):
        return None
    return local.replace(tzinfo=PARIS).astimezone(timezone.utc)


def _int_or_none(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
