"""Pure payment-link rules: the state machine, the bill's checks, PayFiP's objet, expiries, idempotency,
refunds, the providers' answers mapped onto our states, and the accountant's reconciliation. No I/O.

The payment's states are GOV.UK Pay's (contracts/payment_link.py). Two clocks bound a payment: the link
(valid until the end of its due date, Europe/Paris) and a provider session (90 minutes after the payer
pressed « Payer »). Every refusal a person can act on is a BadInput or a Conflict naming the field.
"""
from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Iterable, Literal, Mapping
from urllib.parse import urlparse
from zoneinfo import ZoneInfo

from email_validator import EmailNotValidError, validate_email

from contracts.errors import BadInput, Conflict
from contracts.payment_link import (
    IDEMPOTENCY_KEY_MAX,
    MAX_AMOUNT,
    METADATA_MAX_KEY,
    METADATA_MAX_KEYS,
    METADATA_MAX_VALUE,
    MIN_AMOUNT,
    NUMCLI_PATTERN,
    REFERENCE_PATTERN,
)
from core.french import euros

PARIS = ZoneInfo("Europe/Paris")

SESSION_LIFETIME = timedelta(minutes=90)  # GOV.UK Pay: the payer has 90 minutes
PAYFIP_IDOP_LIFETIME = timedelta(minutes=15)  # PayFiP: an idOp opens its payment page for about 15 minutes
DEFAULT_LINK_DAYS = 30  # a link without a due date: the issue is silent, a month is a bill's usual term
MAX_LINK_DAYS = 366
IDEMPOTENCY_WINDOW = timedelta(hours=24)  # Stripe keeps keys at least 24 h
PAYFIP_MIN_REFDET = 6  # PayFiP answered R3 to a 4-character refdet (eopayment's recorded exchange)
MAX_DESCRIPTION = 255  # GOV.UK Pay's description limit
OBJET_MAX = 100
EMAIL_MIN, EMAIL_MAX = 6, 80  # PayFiP's mel

# -- the state machine ----------------------------------------------------------------------------------
CREATED, STARTED, SUBMITTED = "created", "started", "submitted"
SUCCESS, FAILED, CANCELLED, ERROR = "success", "failed", "cancelled", "error"
FINISHED = frozenset({SUCCESS, FAILED, CANCELLED, ERROR})
TRANSITIONS: dict[str, frozenset[str]] = {
    # created: the payer starts a session; the service cancels; the link expires (failed P0020).
    CREATED: frozenset({STARTED, CANCELLED, FAILED}),
    # started: the payer came back or the provider notified without a result yet (submitted), or the result
    # is read at once; cancelling needs a provider that can stop its session (not PayFiP).
    STARTED: frozenset({SUBMITTED, SUCCESS, FAILED, CANCELLED, ERROR}),
    SUBMITTED: frozenset({SUCCESS, FAILED, CANCELLED, ERROR}),
    **{state: frozenset() for state in FINISHED},  # a finished payment never changes
}

REJECTED, EXPIRED, CANCELLED_BY_PAYER, CANCELLED_BY_SERVICE, PROVIDER_ERROR = (
    "P0010", "P0020", "P0030", "P0040", "P0050")
FAILURE_STATE = {REJECTED: FAILED, EXPIRED: FAILED, CANCELLED_BY_PAYER: FAILED,
                 CANCELLED_BY_SERVICE: CANCELLED, PROVIDER_ERROR: ERROR}
FAILURE_MESSAGES = {
    REJECTED: "Le paiement a été refusé par la banque ou le prestataire de paiement. Aucune somme n'a été prélevée.",
    EXPIRED: "Le délai pour payer est dépassé. Aucune somme n'a été prélevée.",
    CANCELLED_BY_PAYER: "Le paiement a été abandonné. Aucune somme n'a été prélevée.",
    CANCELLED_BY_SERVICE: "Ce lien de paiement a été annulé par le service.",
    PROVIDER_ERROR: "Le prestataire de paiement a rencontré une erreur. Le service qui vous a envoyé ce lien "
                    "a été prévenu.",
}
STATE_EVENTS = {
    CREATED: "payment_link.created", STARTED: "payment_link.started", SUBMITTED: "payment_link.submitted",
    SUCCESS: "payment_link.succeeded", FAILED: "payment_link.failed", CANCELLED: "payment_link.cancelled",
    ERROR: "payment_link.errored",
}


def is_finished(state: str) -> bool:
    return state in FINISHED


def check_transition(current: str, target: str) -> None:
    """Refuses any move outside the machine; a finished payment refuses every move."""
    if target not in TRANSITIONS.get(current, frozenset()):
        if current in FINISHED:
            raise Conflict(f"Ce paiement est terminé ({STATE_LABELS[current]}) : il ne peut plus changer.", "state")
        raise Conflict(f"Un paiement {STATE_LABELS.get(current, current)} ne peut pas passer à "
                       f"« {STATE_LABELS.get(target, target)} ».", "state")


STATE_LABELS = {CREATED: "à payer", STARTED: "en cours", SUBMITTED: "en cours de confirmation", SUCCESS: "payé",
                FAILED: "échoué", CANCELLED: "annulé", ERROR: "en erreur"}


def failure(code: str) -> dict:
    return {"code": code, "message": FAILURE_MESSAGES[code]}


# -- time -----------------------------------------------------------------------------------------------
def as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def paris_day(moment: datetime) -> date:
    return as_utc(moment).astimezone(PARIS).date()


def end_of_day(day: date) -> datetime:
    """The first instant after `day` in Europe/Paris, as UTC (DST-proof: midnight of the next day)."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=PARIS).astimezone(timezone.utc)


def link_expires_at(due_date: date | None, created_at: datetime) -> datetime:
    """A link stays valid until the end of its due date; without one, DEFAULT_LINK_DAYS after creation."""
    return end_of_day(due_date or paris_day(created_at) + timedelta(days=DEFAULT_LINK_DAYS))


def session_expires_at(started_at: datetime) -> datetime:
    return as_utc(started_at) + SESSION_LIFETIME


def payfip_exer(now: datetime) -> str:
    """PayFiP's `exer`: the budget year, taken as the current year in Paris (as eopayment does)."""
    return str(paris_day(now).year)


# -- the bill's checks ----------------------------------------------------------------------------------
_REFERENCE = re.compile(REFERENCE_PATTERN)
_NUMCLI = re.compile(NUMCLI_PATTERN)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def check_amount(amount: int, field: str = "amount") -> int:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise BadInput("Montant : un nombre entier de centimes est attendu.", field)
    if not MIN_AMOUNT <= amount <= MAX_AMOUNT:
        raise BadInput(f"Montant : entre {euros(MIN_AMOUNT)} et {euros(MAX_AMOUNT)} (en centimes : "
                       f"{MIN_AMOUNT} à {MAX_AMOUNT}), {amount} reçu.", field)
    return amount


def check_reference(reference: str, provider: str, field: str = "reference") -> str:
    value = (reference or "").strip()
    if not _REFERENCE.match(value):
        raise BadInput("Référence : 1 à 30 lettres ou chiffres, sans espace ni accent (le numéro de la facture).",
                       field)
    if provider == "payfip" and len(value) < PAYFIP_MIN_REFDET:
        raise BadInput(f"Référence : PayFiP demande {PAYFIP_MIN_REFDET} à 30 lettres ou chiffres "
                       f"({len(value)} reçus).", field)
    return value


def check_email(email: str, field: str = "email") -> str:
    """The payer's address, normalised as the notification service does (so a citizen's token finds it),
    within PayFiP's 6 to 80 characters."""
    try:
        value = validate_email((email or "").strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        raise BadInput("Adresse électronique du payeur invalide.", field) from None
    if not EMAIL_MIN <= len(value) <= EMAIL_MAX:
        raise BadInput(f"Adresse électronique du payeur : {EMAIL_MIN} à {EMAIL_MAX} caractères "
                       f"({len(value)} reçus).", field)
    return value


def check_description(text: str, field: str = "description") -> str:
    value = " ".join((text or "").split())
    if not value:
        raise BadInput("Description : obligatoire (ce que le payeur règle, par exemple « Cantine — mars »).", field)
    if len(value) > MAX_DESCRIPTION:
        raise BadInput(f"Description : {MAX_DESCRIPTION} caractères au plus ({len(value)} reçus).", field)
    if _CONTROL.search(value):
        raise BadInput("Description : caractères de contrôle refusés.", field)
    if not payfip_objet(value):
        raise BadInput("Description : au moins une lettre ou un chiffre.", field)
    return value


def check_metadata(metadata: Mapping[str, object] | None, field: str = "metadata") -> dict:
    """GOV.UK Pay's limits: 15 keys at most, a key 1 to 30 characters, a value (text, number or yes/no)
    100 characters at most. Set at creation, never changed (check_metadata_unchanged)."""
    metadata = dict(metadata or {})
    if len(metadata) > METADATA_MAX_KEYS:
        raise BadInput(f"Métadonnées : {METADATA_MAX_KEYS} clés au plus ({len(metadata)} reçues).", field)
    for key, value in metadata.items():
        if not isinstance(key, str) or not 1 <= len(key) <= METADATA_MAX_KEY:
            raise BadInput(f"Métadonnées : une clé a 1 à {METADATA_MAX_KEY} caractères ({key!r}).", f"{field}.{key}")
        if isinstance(value, str):
            if len(value) > METADATA_MAX_VALUE:
                raise BadInput(f"Métadonnées : la valeur de « {key} » a {METADATA_MAX_VALUE} caractères au plus.",
                               f"{field}.{key}")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise BadInput(f"Métadonnées : la valeur de « {key} » n'est pas un nombre.", f"{field}.{key}")
        elif not isinstance(value, (bool, int)):
            raise BadInput(f"Métadonnées : la valeur de « {key} » doit être un texte, un nombre ou vrai/faux.",
                           f"{field}.{key}")
    return metadata


def check_metadata_unchanged(current: Mapping, proposed: Mapping) -> None:
    """Metadata are frozen once the payment exists (GOV.UK Pay): a change is refused, an equal copy is not."""
    if dict(current) != dict(proposed):
        raise Conflict("Métadonnées : elles ne peuvent plus changer après la création du paiement.", "metadata")


def _loopback(host: str | None) -> bool:
    return host in ("localhost", "127.0.0.1", "::1") or bool(host and host.endswith(".localhost"))


def check_return_url(url: str | None, field: str = "return_url") -> str | None:
    """https, as GOV.UK Pay requires; http only for a loopback host (development)."""
    if url is None or not url.strip():
        return None
    value = url.strip()
    parsed = urlparse(value)
    if (not parsed.netloc or " " in value or len(value) > 2000
            or not (parsed.scheme == "https" or (parsed.scheme == "http" and _loopback(parsed.hostname)))):
        raise BadInput("Adresse de retour : une adresse https:// de 2000 caractères au plus.", field)
    return value


def check_due_date(due: date | None, now: datetime, field: str = "due_date") -> date | None:
    if due is None:
        return None
    today = paris_day(now)
    if due < today:
        raise BadInput("Date d'échéance : elle est passée.", field)
    if due > today + timedelta(days=MAX_LINK_DAYS):
        raise BadInput("Date d'échéance : un an au plus après aujourd'hui.", field)
    return due


def check_regie(regie: Mapping, field_prefix: str = "") -> dict:
    """A régie as saved: numcli 6 digits, a name, its services (unique), its provider settings."""
    numcli = (regie.get("numcli") or "").strip()
    if not _NUMCLI.match(numcli):
        raise BadInput("Numéro client PayFiP (numcli) : 6 chiffres, donnés par la DGFiP.", field_prefix + "numcli")
    name = " ".join((regie.get("name") or "").split())
    if not name or len(name) > 200:
        raise BadInput("Nom de la régie : 1 à 200 caractères.", field_prefix + "name")
    services, seen = [], set()
    for i, raw in enumerate(regie.get("services") or []):
        label = " ".join((raw or "").split())
        if not label or len(label) > 80:
            raise BadInput("Services facturés : chacun 1 à 80 caractères.", f"{field_prefix}services.{i}")
        if label.casefold() in seen:
            raise BadInput(f"Services facturés : « {label} » est en double.", f"{field_prefix}services.{i}")
        seen.add(label.casefold())
        services.append(label)
    provider = dict(regie.get("provider") or {"provider": "payfip", "payfip_mode": "T"})
    return {"numcli": numcli, "name": name, "services": services, "provider": provider,
            "active": bool(regie.get("active", True))}


@dataclass(frozen=True)
class NewPayment:
    """A checked bill, ready to store: normalised fields, PayFiP's objet and the link's expiry."""

    regie_id: str
    service: str | None
    amount: int
    reference: str
    description: str
    objet: str
    email: str
    language: str
    metadata: dict
    return_url: str | None
    due_date: date | None
    expires_at: datetime
    provider: str

    def request_body(self) -> dict:
        """What the idempotency fingerprint covers: the request as understood, defaults included, so that
        two bodies that mean the same bill are the same body."""
        return {"regie_id": self.regie_id, "service": self.service, "amount": self.amount,
                "reference": self.reference, "description": self.description, "email": self.email,
                "language": self.language, "metadata": self.metadata, "return_url": self.return_url,
                "due_date": self.due_date.isoformat() if self.due_date else None}


def check_payment_input(data: Mapping, regie: Mapping, now: datetime) -> NewPayment:
    """Checks a bill against the rules and its régie (PaymentInput as a dict; the régie as stored).

    Raises BadInput naming the first bad field: nothing is stored then, not even an idempotency key."""
    if not regie.get("active", True):
        raise BadInput("Cette régie est désactivée : elle ne peut plus émettre de lien de paiement.", "regie_id")
    provider = (regie.get("provider") or {}).get("provider", "payfip")
    service = data.get("service")
    if service is not None:
        service = " ".join(service.split())
        known = {s.casefold(): s for s in regie.get("services") or []}
        if known and service.casefold() not in known:
            raise BadInput(f"Service : « {service} » n'est pas facturé par la régie « {regie.get('name')} ».",
                           "service")
        service = known.get(service.casefold(), service) or None
    description = check_description(data.get("description"))
    due = check_due_date(data.get("due_date"), now)
    return NewPayment(
        regie_id=regie["id"] if "id" in regie else regie["_id"],
        service=service,
        amount=check_amount(data.get("amount")),
        reference=check_reference(data.get("reference"), provider),
        description=description,
        objet=payfip_objet(description),
        email=check_email(data.get("email")),
        language=data.get("language") or "fr",
        metadata=check_metadata(data.get("metadata")),
        return_url=check_return_url(data.get("return_url")),
        due_date=due,
        expires_at=link_expires_at(due, now),
        provider=provider,
    )


# -- PayFiP's objet -------------------------------------------------------------------------------------
_LIGATURES = str.maketrans({"œ": "oe", "Œ": "OE", "æ": "ae", "Æ": "AE", "ß": "ss", "ø": "o", "Ø": "O",
                            "đ": "d", "Đ": "D", "ł": "l", "Ł": "L", "€": "EUR"})
_NOT_OBJET = re.compile(r"[^A-Za-z0-9]+")


def payfip_objet(text: str | None) -> str:
    """The French description as PayFiP's objet: ASCII letters, digits and spaces, 100 characters at most.

    Accents are stripped (é → e), ligatures spelt out (œ → oe), every other sign becomes a space, so that
    « Crèche — 03/2026, n°12 » stays readable as « Creche 03 2026 n 12 »; cut at a word when too long."""
    if not text:
        return ""
    kept = []
    for ch in unicodedata.normalize("NFKD", text.translate(_LIGATURES)):
        if unicodedata.category(ch) == "Mn":  # the accent of a decomposed letter
            continue
        # Signs (’ ° / — …) separate words; a letter with no ASCII form (Greek, Cyrillic) is dropped.
        kept.append(ch if ch.isascii() else ("" if ch.isalnum() else " "))
    words = _NOT_OBJET.sub(" ", "".join(kept)).split()
    out = ""
    for word in words:
        candidate = f"{out} {word}" if out else word
        if len(candidate) > OBJET_MAX:
            if not out:  # one word longer than the limit: cut it
                out = word[:OBJET_MAX]
            break
        out = candidate
    return out


# -- idempotency (Stripe's rules) ------------------------------------------------------------------------
_KEY = re.compile(r"^[\x21-\x7e]+$")


def check_idempotency_key(key: str | None, field: str = "idempotency_key") -> str | None:
    if key is None:
        return None
    if not 1 <= len(key) <= IDEMPOTENCY_KEY_MAX or not _KEY.match(key):
        raise BadInput(f"Clé d'idempotence : 1 à {IDEMPOTENCY_KEY_MAX} caractères ASCII visibles (un UUID convient).",
                       field)
    return key


def idempotency_scope(role: str, subject: str | None, org: str | None = None) -> str:
    """Keys belong to one client (Stripe: one account): two clients may use the same key."""
    return f"{role}:{org or ''}:{subject or ''}"


def request_fingerprint(body: Mapping) -> str:
    """sha256 of the canonical JSON of the understood request (sorted keys, no spaces, NFC text)."""
    def canon(value):
        if isinstance(value, str):
            return unicodedata.normalize("NFC", value)
        if isinstance(value, Mapping):
            return {canon(k): canon(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [canon(v) for v in value]
        return value

    text = json.dumps(canon(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class IdempotencyRecord:
    """What is kept of a key: written with the payment it created, never for a refused request."""

    scope: str
    key: str
    fingerprint: str
    payment_id: str
    created_at: datetime

    def expired(self, now: datetime) -> bool:
        return as_utc(now) - as_utc(self.created_at) >= IDEMPOTENCY_WINDOW


def idempotency_decision(record: IdempotencyRecord | None, fingerprint: str, now: datetime
                         ) -> tuple[Literal["new", "replay"], str | None]:
    """("replay", payment id) for the same key and body within 24 h; ("new", None) for an unknown or
    expired key; Conflict for the same key with another body (Stripe answers 409, GOV.UK Pay too)."""
    if record is None or record.expired(now):
        return "new", None
    if record.fingerprint != fingerprint:
        raise Conflict("Cette clé d'idempotence a déjà servi, dans les dernières 24 heures, pour une autre demande : "
                       "utilisez une nouvelle clé pour un autre paiement.", "idempotency_key")
    return "replay", record.payment_id


# -- sessions and expiry ------------------------------------------------------------------------------------
def check_payable(state: str, expires_at: datetime, now: datetime) -> None:
    """Whether « Payer » may start a session now (BadInput/Conflict in French for the page)."""
    if state == SUCCESS:
        raise Conflict("Cette facture est déjà payée.", "state")
    if state in FINISHED:
        raise Conflict(f"Ce lien de paiement n'est plus utilisable ({STATE_LABELS[state]}).", "state")
    if state == CREATED and as_utc(now) >= as_utc(expires_at):
        raise Conflict("Ce lien de paiement a expiré : la date d'échéance est passée.", "expires_at")


def session_action(state: str, expires_at: datetime, session_started_at: datetime | None, now: datetime,
                   reuse_window: timedelta) -> Literal["new", "reuse"]:
    """« Payer » pressed: a new session for a payment still to pay; the running one again when pressed twice
    within `reuse_window` (PayFiP: the idOp's 15 minutes), so that two tabs cannot start two payments;
    afterwards, wait for the running session's result (the payment may be under way at the provider)."""
    check_payable(state, expires_at, now)
    if state == CREATED:
        return "new"
    if session_started_at is not None and as_utc(now) < as_utc(session_started_at) + reuse_window:
        return "reuse"
    raise Conflict("Un paiement est déjà en cours pour cette facture. Son résultat s'affichera ici dès que le "
                   "prestataire de paiement l'aura confirmé ; revenez sur cette page dans quelques minutes.", "state")


def expiry_outcome(state: str, expires_at: datetime, session_started_at: datetime | None, now: datetime
                   ) -> str | None:
    """EXPIRED (P0020) when a link never started is past its due date, or when a session has run 90 minutes
    without a result; else None. A running session is never cut by the due date: the payer is paying."""
    now = as_utc(now)
    if state == CREATED and now >= as_utc(expires_at):
        return EXPIRED
    if state in (STARTED, SUBMITTED) and session_started_at is not None and now >= session_expires_at(session_started_at):
        return EXPIRED
    return None


def can_retry(state: str, failure_code: str | None, expires_at: datetime, now: datetime) -> bool:
    """A bill whose payment was refused, abandoned or whose session expired may be paid through a new payment
    (retry_of) while its link is valid; a cancelled or erroneous one may not (an agent decides)."""
    return (state == FAILED and failure_code in (REJECTED, CANCELLED_BY_PAYER, EXPIRED)
            and as_utc(now) < as_utc(expires_at))


def check_cancel(state: str, can_cancel_session: bool) -> None:
    """The service cancels a link not yet paid (P0040). While a provider session runs, only a provider that
    can stop it may be cancelled: PayFiP cannot, and the payer might be paying at that very moment."""
    check_transition(state, CANCELLED)
    if state in (STARTED, SUBMITTED) and not can_cancel_session:
        raise Conflict("Un paiement est en cours chez le prestataire : attendez son résultat (90 minutes au plus) "
                       "avant d'annuler ce lien.", "state")


# -- the providers' answers -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    """What a provider's answer means for us: `pending` (no result yet) or a final state with its code."""

    kind: Literal["pending", "success", "failed", "error"]
    failure_code: str | None = None
    provider_status: str | None = None
    provisional: str | None = None  # e.g. "abandoned": shown to the payer, not final yet

    @property
    def state(self) -> str | None:
        return None if self.kind == "pending" else {"success": SUCCESS, "failed": FAILED, "error": ERROR}[self.kind]


PAYFIP_PAID, PAYFIP_REFUSED, PAYFIP_ABANDONED = frozenset("PV"), frozenset("RZ"), "A"
PAYFIP_NOT_KNOWN, PAYFIP_UNKNOWN_IDOP = "P5", "P1"


def payfip_outcome(code: str, session_started_at: datetime, now: datetime) -> Outcome:
    """PayFiP's `resultrans` (P/V paid, R/Z refused, A abandoned) or its fault code on
    recupererDetailPaiementSecurise (P5 not known yet, P1 unknown idOp) as an Outcome.

    - A is provisional while the idOp can still be paid (15 minutes): the payer may go back to PayFiP's page
      and pay with the same idOp (eopayment waits too), so A becomes P0030 only after that.
    - P5 keeps us polling until the session's 90 minutes, then P0020: the idOp can no longer be paid.
    - P1 right after the start means "not received yet" (eopayment's notes); after the idOp's lifetime, the
      idOp was cleaned away unpaid (PayFiP cleans unused idOps at night): P0020.
    """
    age = as_utc(now) - as_utc(session_started_at)
    if code in PAYFIP_PAID:
        return Outcome("success", provider_status=code)
    if code in PAYFIP_REFUSED:
        return Outcome("failed", REJECTED, code)
    if code == PAYFIP_ABANDONED:
        if age < PAYFIP_IDOP_LIFETIME:
            return Outcome("pending", provider_status=code, provisional="abandoned")
        return Outcome("failed", CANCELLED_BY_PAYER, code)
    if code == PAYFIP_NOT_KNOWN:
        return Outcome("failed", EXPIRED, code) if age >= SESSION_LIFETIME else Outcome("pending", provider_status=code)
    if code == PAYFIP_UNKNOWN_IDOP:
        return Outcome("failed", EXPIRED, code) if age >= PAYFIP_IDOP_LIFETIME else Outcome("pending", provider_status=code)
    return Outcome("error", PROVIDER_ERROR, code)


CARD_STATUSES = {"success": Outcome("success", provider_status="success"),
                 "declined": Outcome("failed", REJECTED, "declined"),
                 "cancelled": Outcome("failed", CANCELLED_BY_PAYER, "cancelled"),
                 "expired": Outcome("failed", EXPIRED, "expired"),
                 "error": Outcome("error", PROVIDER_ERROR, "error")}


def card_outcome(status: str, session_started_at: datetime, now: datetime) -> Outcome:
    """The sandbox card provider's status (GOV.UK Pay's sandbox cards: authorised, declined, error)."""
    if status in CARD_STATUSES:
        return CARD_STATUSES[status]
    if status in ("created", "started"):
        if as_utc(now) >= session_expires_at(session_started_at):
            return Outcome("failed", EXPIRED, status)
        return Outcome("pending", provider_status=status)
    return Outcome("error", PROVIDER_ERROR, status)


def provider_outcome(provider: str, status: str, session_started_at: datetime, now: datetime) -> Outcome:
    """The Outcome of a provider's trusted answer, by provider."""
    if provider == "payfip":
        return payfip_outcome(status, session_started_at, now)
    return card_outcome(status, session_started_at, now)


def detail_mismatches(expected: Mapping, detail: Mapping) -> list[str]:
    """Fields where the provider's trusted detail disagrees with our payment (amount, reference, numcli):
    a success that does not match what we asked for is not a success of this bill."""
    out = []
    for field in ("amount", "reference", "numcli"):
        if detail.get(field) is not None and expected.get(field) is not None and str(detail[field]) != str(expected[field]):
            out.append(field)
    return out


@dataclass(frozen=True)
class Decision:
    """What to do with a payment after a provider's answer (or a notification, or a clock)."""

    state: str | None  # the new state, or None: no change
    failure_code: str | None = None
    anomaly: str | None = None  # set when the provider contradicts a finished payment: an agent must look


def decide(state: str, outcome: Outcome, notified: bool, mismatches: list[str] = ()) -> Decision:
    """The transition an Outcome leads to from `state`.

    A pending outcome moves a started payment to submitted when the provider (or the returning payer) told
    us it is over on their side; a final outcome ends the payment. A finished payment never changes: a
    success reported for a payment already failed or cancelled is an anomaly (money taken for a closed
    link: to refund), never a silent change."""
    if mismatches and outcome.kind == "success":
        outcome = Outcome("error", PROVIDER_ERROR, outcome.provider_status)
    if state in FINISHED:
        if outcome.kind == "success" and state != SUCCESS:
            return Decision(None, anomaly="paid_after_finish")
        return Decision(None)
    if outcome.kind == "pending":
        return Decision(SUBMITTED if state == STARTED and notified else None)
    target = outcome.state
    if state == CREATED:  # a result for a payment that never started a session here: not ours to apply
        return Decision(None, anomaly="result_without_session")
    check_transition(state, target)
    return Decision(target, outcome.failure_code)


# -- refunds (GOV.UK Pay's arithmetic) ----------------------------------------------------------------------
REFUND_COUNTED = ("submitted", "success")  # a refund in flight already takes its amount


def refund_summary(state: str, amount: int, refunds: Iterable[Mapping]) -> dict:
    """{status, amount_available, amount_submitted}: pending before a result, unavailable when not paid,
    then available or full; refunds submitted or done count, failed ones give their amount back."""
    submitted = sum(int(r["amount"]) for r in refunds if r.get("status") in REFUND_COUNTED)
    if state in (CREATED, STARTED, SUBMITTED):
        return {"status": "pending", "amount_available": 0, "amount_submitted": submitted}
    if state != SUCCESS:
        return {"status": "unavailable", "amount_available": 0, "amount_submitted": submitted}
    available = max(amount - submitted, 0)
    return {"status": "available" if available > 0 else "full", "amount_available": available,
            "amount_submitted": submitted}


def check_refund(state: str, amount: int, refunds: Iterable[Mapping], requested: int, seen_available: int) -> dict:
    """Checks a refund request; returns the summary it was checked against.

    The caller states the amountAvailable it saw: when another refund changed it meanwhile, Conflict (GOV.UK
    Pay's 412, P0604). The store then writes only while amountAvailable still has that value, so two refunds
    racing cannot both pass, and no refund can exceed what was paid."""
    summary = refund_summary(state, amount, list(refunds))
    if summary["status"] == "pending":
        raise Conflict("Ce paiement n'est pas encore confirmé : il ne peut pas être remboursé.", "state")
    if summary["status"] == "unavailable":
        raise Conflict("Seul un paiement réussi peut être remboursé.", "state")
    if seen_available != summary["amount_available"]:
        raise Conflict(f"Le montant remboursable a changé : {euros(summary['amount_available'])} à présent "
                       f"(un autre remboursement vient d'être fait). Vérifiez avant de recommencer.",
                       "amount_available")
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
        raise BadInput("Montant du remboursement : un nombre entier de centimes, 1 au moins.", "amount")
    if requested > summary["amount_available"]:
        raise BadInput(f"Montant du remboursement : {euros(summary['amount_available'])} au plus.", "amount")
    return summary


def refund_kind(provider_refunds: bool) -> Literal["provider", "accountant"]:
    """PayFiP has no refund call: its refunds go through the public accountant, then an agent marks them."""
    return "provider" if provider_refunds else "accountant"


def check_settle_refund(refund: Mapping) -> None:
    """Only an accountant's refund (PayFiP) is marked by hand, once."""
    if refund.get("kind") != "accountant":
        raise Conflict("Ce remboursement est suivi par le prestataire : il ne se marque pas à la main.", "refund_id")
    if refund.get("status") != "submitted":
        raise Conflict("Ce remboursement est déjà réglé.", "refund_id")


# -- reconciliation ------------------------------------------------------------------------------------
CHECK_DELAYS = (30, 60, 120, 300, 600, 900)  # seconds between two questions to the provider, then every 15 min


def needs_provider_check(state: str, provider_id: str | None) -> bool:
    """The timer asks the provider about every payment whose session has not given its result."""
    return state in (STARTED, SUBMITTED) and bool(provider_id)


def next_check_at(checks_done: int, now: datetime) -> datetime:
    """Backoff between two questions about one payment: soon after the start (most payers finish within
    minutes), then every 15 minutes until the session's 90 minutes end it."""
    return as_utc(now) + timedelta(seconds=CHECK_DELAYS[min(checks_done, len(CHECK_DELAYS) - 1)])


def reconciliation_rows(payments: Iterable[Mapping], day: date) -> list[dict]:
    """The day's finished payments (finished in Europe/Paris on `day`), by régie then finish time."""
    rows = []
    for p in payments:
        finished_at = p.get("finished_at")
        if p.get("state") not in FINISHED or finished_at is None or paris_day(finished_at) != day:
            continue
        refunded = sum(int(r["amount"]) for r in p.get("refunds") or [] if r.get("status") in REFUND_COUNTED)
        rows.append({"date": day, "regie_id": p["regie_id"], "payment_id": p["id"], "reference": p["reference"],
                     "amount": int(p["amount"]), "state": p["state"],
                     "failure_code": (p.get("failure") or {}).get("code"), "provider": p["provider"],
                     "provider_id": p.get("provider_id"), "authorisation_code": p.get("authorisation_code"),
                     "finished_at": as_utc(finished_at), "refunded": refunded})
    rows.sort(key=lambda r: (r["regie_id"], r["finished_at"], r["payment_id"]))
    return rows


def regie_totals(rows: Iterable[Mapping], day: date) -> list[dict]:
    totals: dict[str, dict] = {}
    for r in rows:
        t = totals.setdefault(r["regie_id"], {"regie_id": r["regie_id"], "date": day, "succeeded_count": 0,
                                              "succeeded_amount": 0, "failed_count": 0, "cancelled_count": 0,
                                              "error_count": 0, "refunded_amount": 0, "net_amount": 0})
        if r["state"] == SUCCESS:
            t["succeeded_count"] += 1
            t["succeeded_amount"] += r["amount"]
            t["refunded_amount"] += r["refunded"]
        else:
            t[{FAILED: "failed_count", CANCELLED: "cancelled_count", ERROR: "error_count"}[r["state"]]] += 1
        t["net_amount"] = t["succeeded_amount"] - t["refunded_amount"]
    return [totals[k] for k in sorted(totals)]


CSV_HEADER = ["date", "regie", "reference", "montant", "etat", "code_echec", "fournisseur", "id_fournisseur",
              "numero_autorisation", "rembourse", "id_paiement"]


def _csv_euros(cents: int) -> str:
    return f"{cents // 100},{cents % 100:02d}"


def report_csv(rows: Iterable[Mapping]) -> str:
    """The accountant's CSV: `;`-separated, decimal comma, UTF-8 with a BOM (as a French spreadsheet opens
    it); amounts in euros, states in French."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for r in rows:
        writer.writerow([r["date"].isoformat(), r["regie_id"], r["reference"], _csv_euros(r["amount"]),
                         STATE_LABELS[r["state"]], r.get("failure_code") or "", r["provider"],
                         r.get("provider_id") or "", r.get("authorisation_code") or "", _csv_euros(r["refunded"]),
                         r["payment_id"]])
    return out.getvalue()


# -- keyset cursors ------------------------------------------------------------------------------------
def encode_cursor(created_at: datetime, payment_id: str) -> str:
    return base64.urlsafe_b64encode(f"k:{as_utc(created_at).isoformat()}|{payment_id}".encode()).decode()


def decode_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    """(created_at, id) of the last item seen; lists are newest first, ties broken by id."""
    if not cursor:
        return None
    try:
        kind, _, value = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        key, _, payment_id = value.partition("|")
        moment = datetime.fromisoformat(key)
        if kind != "k" or not payment_id or moment.tzinfo is None:
            raise ValueError
        return moment, payment_id
    except (ValueError, UnicodeDecodeError, base64.binascii.Error):
        raise BadInput("Curseur invalide.", "after") from None
