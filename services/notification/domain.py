"""Pure rules of the notification service: templates and personalisation, addresses, topics, backoff,
signed links and sign-in codes. No I/O here: unit-tested alone."""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import jinja2
import jinja2.meta
import phonenumbers
from email_validator import EmailNotValidError, validate_email

from contracts.errors import BadInput
from services.common import identity
from services.notification.templates import BY_KEY, LATEST, Template

CHANNELS = ("email", "sms", "in_app")
SMS_MAX = 612  # four concatenated GSM-7 segments of 153 characters
OPTIONAL_VARIABLES = frozenset({"unsubscribe_url"})  # footers test `is defined`

# Statuses: created -> sending -> delivered | temporary-failure | permanent-failure
CREATED, SENDING, DELIVERED, TEMPORARY, PERMANENT = (
    "created", "sending", "delivered", "temporary-failure", "permanent-failure")
STATUSES = (CREATED, SENDING, DELIVERED, TEMPORARY, PERMANENT)

LOGIN_CODE_TTL = timedelta(minutes=10)
LOGIN_CODE_ATTEMPTS = 5

SLUG = r"[a-z0-9]+(?:-[a-z0-9]+)*"
_BUDGET = r"consultation:budget:[A-Za-z0-9_-]{1,80}"  # a participatory budget's phases and results
_TOPICS = {
    "citizen": re.compile(rf"^(agenda:commune:{SLUG}|agenda:category:{SLUG}|consultation:new|{_BUDGET})$"),
    "agent": re.compile(rf"^(agenda:commune:{SLUG}|agenda:category:{SLUG}|consultation:new|{_BUDGET}|satisfaction:site:[A-Za-z0-9_.-]{{1,80}})$"),
}

_text_env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)
_html_env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=True)


# -- templates ---------------------------------------------------------------------------------
def template(name: str, version: int | None = None, field: str = "template") -> Template:
    found = LATEST.get(name) if version is None else BY_KEY.get((name, version))
    if found is None:
        raise BadInput(f"Modèle inconnu : {name}" + (f" (version {version})" if version else ""), field)
    return found


def _env(part: str) -> jinja2.Environment:
    return _html_env if part == "html" else _text_env


@functools.lru_cache(maxsize=256)
def _compiled(part: str, source: str) -> jinja2.Template:
    # Compiling costs a thousand times a render: a fan-out renders one template for thousands.
    return _env(part).from_string(source)


@functools.lru_cache(maxsize=256)
def _variables(part: str, source: str) -> frozenset[str]:
    return frozenset(jinja2.meta.find_undeclared_variables(_env(part).parse(source)))


def required_variables(tpl: Template, channel: str) -> set[str]:
    names: set[str] = set()
    for part, source in tpl.parts[channel].items():
        names |= _variables(part, source)
    return names - OPTIONAL_VARIABLES


def render(tpl: Template, channel: str, personalisation: dict) -> dict[str, str]:
    """Every part of `tpl` for `channel`; a missing variable or an over-long SMS is refused, never blanked."""
    if channel not in tpl.parts:
        raise BadInput(f"Le modèle {tpl.name} n'existe pas pour le canal {channel}.", "channel")
    missing = sorted(required_variables(tpl, channel) - set(personalisation))
    if missing:
        raise BadInput(f"Variable manquante pour le modèle {tpl.name} : {', '.join(missing)}",
                       f"personalisation.{missing[0]}")
    out = {}
    for part, source in tpl.parts[channel].items():
        try:
            out[part] = _compiled(part, source).render(**personalisation).strip()
        except jinja2.UndefinedError as exc:
            raise BadInput(f"Variable manquante pour le modèle {tpl.name} : {exc.message}", "personalisation") from None
    if channel == "sms" and len(out["text"]) > SMS_MAX:
        raise BadInput(f"SMS trop long : {len(out['text'])} caractères (maximum {SMS_MAX}).", "personalisation")
    return out


_LINK_MARK = "@@parvis-unsubscribe-url-5f2c@@"  # nothing that HTML escaping or strip() changes


class FanOutRenderer:
    """Renders `tpl` once for a fan-out; each recipient's own unsubscribe link is then put in by replacement.

    A render costs about as much as the rest of creating a notification, and a fan-out creates thousands
    that differ only by that link. The first recipient's parts are checked against a full render: a
    template that transforms the link (a filter) gets a full render for every recipient instead. A
    template must not otherwise branch on the link's value (none does; every template is tested for
    equality with `render` in tests/unit/test_notification_domain.py).
    """

    def __init__(self, tpl: Template, channel: str, personalisation: dict):
        self.tpl, self.channel, self.personalisation = tpl, channel, personalisation
        self.base = render(tpl, channel, {**personalisation, "unsubscribe_url": _LINK_MARK})
        self.checked = False

    def __call__(self, unsubscribe_url: str) -> dict[str, str]:
        if self.base is None:
            return render(self.tpl, self.channel, {**self.personalisation, "unsubscribe_url": unsubscribe_url})
        html_url = _compiled("html", "{{ v }}").render(v=unsubscribe_url)  # escaped as the template does
        out = {part: text.replace(_LINK_MARK, html_url if part == "html" else unsubscribe_url)
               for part, text in self.base.items()}
        if not self.checked:
            self.checked = True
            full = render(self.tpl, self.channel, {**self.personalisation, "unsubscribe_url": unsubscribe_url})
            if out != full:
                self.base = None
                return full
        return out


# -- addresses and topics ----------------------------------------------------------------------
def normalise_email(value: str, field: str = "email") -> str:
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        raise BadInput(f"Adresse électronique invalide : {value!r}", field) from None


def normalise_phone(value: str, field: str = "phone") -> str:
    """E.164; a French number may be given in national form (06 12 34 56 78)."""
    try:
        number = phonenumbers.parse(value, "FR")
    except phonenumbers.NumberParseException:
        raise BadInput(f"Numéro de téléphone invalide : {value!r}", field) from None
    if not phonenumbers.is_valid_number(number):
        raise BadInput(f"Numéro de téléphone invalide : {value!r}", field)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def check_topic(topic: str, role: str) -> str:
    pattern = _TOPICS.get("agent" if role in ("agent", "operator") else "citizen")
    if not pattern.match(topic):
        raise BadInput(f"Sujet inconnu : {topic!r} (agenda:commune:<commune>, agenda:category:<catégorie>, "
                       "consultation:new, consultation:budget:<budget>"
                       + (", satisfaction:site:<id>" if role == "agent" else "") + ")", "topic")
    return topic


def notification_id(event_id: str, recipient: str, channel: str) -> str:
    """One notification per (event, recipient, channel): the natural key, unique by construction."""
    return f"{event_id}:{recipient}:{channel}"


# -- retries -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RetryPolicy:
    base: float = 30.0  # seconds before the first retry
    cap: float = 3600.0  # longest wait between two attempts
    period: float = 86400.0  # after this long since creation, a temporary failure becomes permanent

    def next_attempt(self, created_at: datetime, attempts: int, now: datetime) -> datetime | None:
        """When to try again after `attempts` failed attempts; None once the period is over."""
        delay = min(self.cap, self.base * (2 ** max(0, attempts - 1)))
        due = now + timedelta(seconds=delay)
        if due > created_at + timedelta(seconds=self.period):
            return None
        return due


def smtp_failure_is_permanent(code: int | None) -> bool:
    """SMTP 5xx is permanent; 4xx, no answer, refused connections and timeouts are temporary."""
    return code is not None and 500 <= code < 600


# -- signed links and codes --------------------------------------------------------------------
def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret: str, purpose: str, value: str) -> str:
    mac = hmac.new(secret.encode(), f"{purpose}:{value}".encode(), hashlib.sha256).digest()[:16]
    return f"{_b64(value.encode())}.{_b64(mac)}"


def unsign(secret: str, purpose: str, token: str) -> str | None:
    try:
        encoded, mac = token.split(".", 1)
        value = _unb64(encoded).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    expected = sign(secret, purpose, value).split(".", 1)[1]
    return value if hmac.compare_digest(expected, mac) else None


def new_login_code() -> str:
    return f"{secrets.randbelow(10 ** 6):06d}"


def code_digest(secret: str, email: str, code: str) -> str:
    return hmac.new(secret.encode(), f"login:{email}:{code}".encode(), hashlib.sha256).hexdigest()


def citizen_id(secret: str, email: str) -> str:
    """A stable, opaque id for a verified address (the token's subject; the address is not in it). Derived in
    services/common/identity.py, where the consultation service derives it too (panels, booth check-ins)."""
    return identity.citizen_id(secret, email)


def webhook_signature(secret: str, body: bytes, timestamp: int) -> str:
    return "sha256=" + hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def hmac_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def pay_signature(secret: str, body: bytes) -> str:
    """GOV.UK Pay's `Pay-Signature`: the hex HMAC-SHA256 of the raw body (no timestamp), for partners whose code
    already checks Pay's webhooks; X-Parvis-Signature adds a timestamp against replays."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# -- what each partner's webhook receives -------------------------------------------------------------------
RECEIPT_TOPICS = frozenset({"notification.delivered", "notification.failed"})
PRIVATE_TEMPLATES = frozenset({"login_code"})  # never sent on request, never a partner's receipt


def check_webhook_topics(topics: list[str], regie_ids: list[str]) -> tuple[list[str], list[str]]:
    """Topics without duplicates; payment events need the partner's régies (each partner hears only of its own
    régies' payments), and régies make sense only with payment events."""
    topics = sorted(set(topics))
    regies = sorted({r.strip() for r in regie_ids if r.strip()})
    payments = [t for t in topics if t.startswith("payment_link.")]
    if payments and not regies:
        raise BadInput("Les événements de paiement ne sont envoyés que pour les régies du partenaire : indiquez-les.",
                       field="regie_ids")
    if regies and not payments:
        raise BadInput("Des régies n'ont de sens qu'avec des événements de paiement (payment_link.*).",
                       field="regie_ids")
    if any(not re.fullmatch(r"[A-Za-z0-9_-]{1,60}", r) for r in regies):
        raise BadInput("Identifiant de régie invalide.", field="regie_ids")
    return topics, regies


def webhook_targets(hooks: list[dict], receipt: dict, partner: str | None = None,
                    regie_id: str | None = None) -> list[dict]:
    """The endpoints one message goes to: a delivery receipt to the endpoints of the partner that asked for the
    message (none for the platform's own messages), a payment event to the endpoints that named its régie; each
    only if the endpoint subscribed to that type (endpoints registered before topics existed take receipts)."""
    kind = receipt["type"]

    def wants(hook: dict) -> bool:
        return kind in (hook.get("topics") or RECEIPT_TOPICS)

    if kind in RECEIPT_TOPICS:
        if not partner:
            return []
        return [h for h in hooks if h.get("partner") == partner and wants(h)]
    if regie_id is None:
        return []
    return [h for h in hooks if regie_id in (h.get("regie_ids") or ()) and wants(h)]


def webhook_secret(secret: str, hook_id: str) -> str:
    """Each endpoint's signing key, derived (not stored): shown to the partner once at creation."""
    return hmac.new(secret.encode(), f"webhook:{hook_id}".encode(), hashlib.sha256).hexdigest()


PARIS = ZoneInfo("Europe/Paris")


def quiet_until(now: datetime, start: str | None, end: str | None) -> datetime | None:
    """When a subscriber's quiet hours ("22:00"–"07:00", Paris time) end, if `now` falls in them; else None."""
    if not start or not end or start == end:
        return None
    local = now.astimezone(PARIS)
    begin, finish, t = time.fromisoformat(start), time.fromisoformat(end), local.time()
    inside = begin <= t < finish if begin < finish else (t >= begin or t < finish)
    if not inside:
        return None
    until = local.replace(hour=finish.hour, minute=finish.minute, second=0, microsecond=0)
    if until <= local:
        until = (local + timedelta(days=1)).replace(hour=finish.hour, minute=finish.minute, second=0, microsecond=0)
    return until.astimezone(timezone.utc)


# -- French dates (messages are in French, Paris time) -----------------------------------------
DAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
          "novembre", "décembre")


def french_datetime(value: datetime) -> str:
    local = value.astimezone(PARIS)
    return f"{DAYS[local.weekday()]} {local.day} {MONTHS[local.month - 1]} {local.year} à {local.hour} h {local.minute:02d}"


def french_date(value: date) -> str:
    return f"{DAYS[value.weekday()]} {value.day} {MONTHS[value.month - 1]} {value.year}"


# -- the daily digest of the agenda ------------------------------------------------------------
DIGEST_TEMPLATE = "agenda_digest"
DIGEST_CHANNELS = ("email", "in_app")  # no SMS digest: a list of events does not fit in a text message
DIGEST_LOOKBACK = timedelta(days=7)  # the longest window a digest covers (after days without a run)


def check_digest(topic: str, channel: str, digest: bool) -> None:
    """A digest is offered for agenda topics, by email or in-app."""
    if not digest:
        return
    if not topic.startswith("agenda:"):
        raise BadInput("Le résumé quotidien n'existe que pour les sujets de l'agenda.", "digest")
    if channel not in DIGEST_CHANNELS:
        raise BadInput("Le résumé quotidien n'est pas proposé par SMS : choisissez l'email ou l'application.",
                       "digest")


def digest_event_id(day: date) -> str:
    """The digest's event_id: with (recipient, channel), one notification per citizen, channel and day."""
    return f"digest:{day.isoformat()}"


def digest_link_value(recipient: str, channel: str) -> str:
    """What a digest's one-click link signs: every digest subscription of the recipient on the channel.
    Shaped as a subscription id whose topic ('digest') no subscription can have."""
    return f"{recipient}|digest|{channel}"


def parse_digest_link(value: str) -> tuple[str, str] | None:
    parts = value.split("|")
    if len(parts) == 3 and parts[1] == "digest":
        return parts[0], parts[2]
    return None


def parse_digest_hour(value: str | None) -> int | None:
    """PARVIS_DIGEST_HOUR: 0–23 (Paris time), default 7; 'off' leaves the digests to send_digests."""
    value = (value or "7").strip().lower()
    if value in ("off", "none", "no", "false", "-1"):
        return None
    hour = int(value)
    if not 0 <= hour <= 23:
        raise ValueError(f"PARVIS_DIGEST_HOUR must be 0-23 or off: {value!r}")
    return hour


def digest_day_due(now: datetime, hour: int | None) -> date | None:
    """The Paris day whose digest is due at `now` (from `hour` on, Paris time), or None before it."""
    if hour is None:
        return None
    local = now.astimezone(PARIS)
    return local.date() if local.hour >= hour else None


def digest_events(items: list[dict], topics) -> list[dict]:
    """The events of `items` published for any of `topics`, each once, sorted by start (then title).

    An item: {"_id": event id, "topics": [...], "title", "commune" (display name), "starts_ts" (epoch), "url"}.
    """
    wanted = set(topics)
    seen: dict[str, dict] = {}
    for item in items:
        if item["_id"] not in seen and wanted.intersection(item.get("topics") or ()):
            seen[item["_id"]] = item
    ordered = sorted(seen.values(), key=lambda i: (float(i["starts_ts"]), i["title"], i["_id"]))
    return [{"id": i["_id"], "title": i["title"], "commune": i["commune"], "url": i["url"],
             "starts_at": french_datetime(datetime.fromtimestamp(float(i["starts_ts"]), timezone.utc))}
            for i in ordered]


def digest_personalisation(events: list[dict], day: date) -> dict:
    return {"events": events, "count": len(events), "day": french_date(day)}


def quiet_until_any(now: datetime, subscriptions: list[dict]) -> datetime | None:
    """A message for several subscriptions waits for the end of the quiet hours of each one it falls in."""
    ends = [q for s in subscriptions if (q := quiet_until(now, s.get("quiet_from"), s.get("quiet_to"))) is not None]
    return max(ends) if ends else None
