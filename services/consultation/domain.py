"""Pure rules of a consultation's life: its window on the clock, its states and the agents' transitions, what may
change in each state, who sees what, one participation per citizen and its origins, panel keys, keyset cursors and
amounts written in French; nothing here does I/O.

The form (questions.py), the participatory budget (budget.py), survey results (results.py), receipts, secret
ballots and paper entries (ballots.py) and the Pabulib format (pabulib.py) have their own modules.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from contracts.consultation import ConsultationInput, Scope
from contracts.errors import BadInput, Conflict, Forbidden

PARIS = ZoneInfo("Europe/Paris")
PUBLIC_PATH = "/consultations/{id}"
RESULTS_PATH = "/consultations/{id}/results"
MAX_TITLE = 160
MAX_SUMMARY = 600
MAX_DESCRIPTION = 20_000


# -- time ------------------------------------------------------------------------------------------
def to_utc(value: datetime) -> datetime:
    """A naive datetime is Europe/Paris wall time; an aware one is converted. Result: aware UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=PARIS)
    return value.astimezone(timezone.utc)


def to_paris(value: datetime) -> datetime:
    return to_utc(value).astimezone(PARIS)


def french_datetime(value: datetime) -> str:
    """'30/03/2026 à 10:00' in Paris time, for messages."""
    local = to_paris(value)
    return f"{local:%d/%m/%Y} à {local:%H:%M}"


# -- money ------------------------------------------------------------------------------------------
NNBSP, NBSP = "\u202f", "\u00a0"  # French thousands separator, and the space before the currency sign


def format_euros(cents: int) -> str:
    """150000_00 -> '150 000 €', 123456 -> '1 234,56 €' (French typography: narrow no-break spaces)."""
    sign = "-" if cents < 0 else ""
    euros, rest = divmod(abs(cents), 100)
    whole = f"{euros:,}".replace(",", NNBSP)
    return f"{sign}{whole}{',%02d' % rest if rest else ''}{NBSP}€"


# -- states ----------------------------------------------------------------------------------------
STATES = ("DRAFT", "SCHEDULED", "OPEN", "CLOSED", "RESULTS_PUBLISHED", "ARCHIVED")
STATE_LABELS = {"DRAFT": "brouillon", "SCHEDULED": "programmée", "OPEN": "ouverte", "CLOSED": "close",
                "RESULTS_PUBLISHED": "résultats publiés", "ARCHIVED": "archivée"}
ACTION_LABELS = {"schedule": "programmer", "unschedule": "déprogrammer", "open": "ouvrir", "close": "clore",
                 "publish_results": "publier les résultats", "archive": "archiver"}

# (state, agent action) -> new state. The clock does the rest: SCHEDULED opens at opens_at, OPEN closes at
# closes_at (see clock_transitions). Nothing reopens: a closed consultation's count is final.
TRANSITIONS: dict[tuple[str, str], str] = {
    ("DRAFT", "schedule"): "SCHEDULED",
    ("SCHEDULED", "unschedule"): "DRAFT",
    ("SCHEDULED", "open"): "OPEN",
    ("OPEN", "close"): "CLOSED",
    ("CLOSED", "publish_results"): "RESULTS_PUBLISHED",
    ("DRAFT", "archive"): "ARCHIVED",
    ("CLOSED", "archive"): "ARCHIVED",
    ("RESULTS_PUBLISHED", "archive"): "ARCHIVED",
}
EVENT_OF_STATE = {"SCHEDULED": "consultation.scheduled", "OPEN": "consultation.opened",
                  "CLOSED": "consultation.closed", "RESULTS_PUBLISHED": "consultation.results_published",
                  "ARCHIVED": "consultation.archived"}


@dataclass(frozen=True)
class Transition:
    """A change of state at an instant, and the event that announces it (None: going back to draft)."""

    before: str
    after: str
    at: datetime

    @property
    def event_type(self) -> str | None:
        return EVENT_OF_STATE.get(self.after)


@dataclass(frozen=True)
class Acted:
    """What an agent's action leaves: the new state and window (an early opening or closing moves it)."""

    state: str
    opens_at: datetime | None
    closes_at: datetime | None
    transition: Transition


def clock_transitions(state: str, opens_at: datetime | None, closes_at: datetime | None,
                      now: datetime) -> list[Transition]:
    """The transitions the clock owes a consultation at `now`, oldest first, each at its own instant.

    A timer that was down may owe two (opened, then closed): both are announced, in order, so that nobody misses
    that a consultation was open. DRAFT does not follow the clock (it is not scheduled), nor do later states."""
    out: list[Transition] = []
    if state == "SCHEDULED" and opens_at is not None and opens_at <= now:
        out.append(Transition("SCHEDULED", "OPEN", opens_at))
        state = "OPEN"
    if state == "OPEN" and closes_at is not None and closes_at <= now:
        out.append(Transition("OPEN", "CLOSED", closes_at))
    return out


def state_at(state: str, opens_at: datetime | None, closes_at: datetime | None, now: datetime) -> str:
    """The state a consultation is in at `now`: its stored state moved on by the clock."""
    moves = clock_transitions(state, opens_at, closes_at, now)
    return moves[-1].after if moves else state


def apply_action(state: str, action: str, opens_at: datetime | None, closes_at: datetime | None,
                 now: datetime) -> Acted:
    """An agent's action on a consultation whose stored state the clock has already brought up to `now`.

    Raises Conflict (French, naming the state) when the action does not apply. Opening early moves opens_at to
    now; closing early moves closes_at to now, so the window always says when it really was open."""
    new_state = TRANSITIONS.get((state, action))
    if new_state is None:
        raise Conflict(f"Impossible de {ACTION_LABELS.get(action, action)} : la consultation est "
                       f"« {STATE_LABELS.get(state, state)} ».", "state")
    if action == "schedule":
        check_window(opens_at, closes_at, now)
    elif action == "open":
        opens_at = now
        if closes_at is not None and closes_at <= now:
            raise Conflict("Impossible d'ouvrir : la date de clôture est passée ; changez-la d'abord.", "closes_at")
    elif action == "close":
        closes_at = now
    return Acted(new_state, opens_at, closes_at, Transition(state, new_state, now))


def check_window(opens_at: datetime | None, closes_at: datetime | None, now: datetime) -> None:
    """A window a consultation can be scheduled with: both ends, in this order, closing in the future."""
    if opens_at is None:
        raise BadInput("Date d'ouverture : obligatoire pour programmer la consultation.", "opens_at")
    if closes_at is None:
        raise BadInput("Date de clôture : obligatoire pour programmer la consultation.", "closes_at")
    if closes_at <= opens_at:
        raise BadInput(f"La clôture ({french_datetime(closes_at)}) doit suivre l'ouverture "
                       f"({french_datetime(opens_at)}).", "closes_at")
    if closes_at <= now:
        raise BadInput(f"La date de clôture ({french_datetime(closes_at)}) est passée.", "closes_at")


# -- the consultation's own fields ----------------------------------------------------------------
_DANGEROUS = re.compile(r"<\s*/?\s*(script|iframe|object|embed|style|form)\b|javascript\s*:|\bon[a-z]+\s*=", re.I)


def _text(value: str, field: str, label: str, limit: int, required: bool = False) -> str:
    value = (value or "").strip()
    if required and not value:
        raise BadInput(f"{label} : obligatoire.", field)
    if len(value) > limit:
        raise BadInput(f"{label} : {limit} caractères au plus ({len(value)} reçus).", field)
    if _DANGEROUS.search(value):
        raise BadInput(f"{label} : le code HTML ou JavaScript n'est pas accepté ici.", field)
    return value


def validate_consultation(data: ConsultationInput, communes: set[str]) -> dict:
    """The fields of a consultation to store, checked; raises BadInput naming the first bad field.

    The description is HTML that the service sanitises (as agenda descriptions): only its length is checked here.
    Windows are checked when scheduling (`check_window`), so that a draft may be saved without dates. A BUDGET's
    window is its phases' (budget.budget_window), checked with them."""
    title = _text(data.title, "title", "Titre", MAX_TITLE, required=True)
    summary = _text(data.summary, "summary", "Résumé", MAX_SUMMARY)
    description = (data.description or "").strip()
    if len(description) > MAX_DESCRIPTION:
        raise BadInput(f"Description : {MAX_DESCRIPTION} caractères au plus ({len(description)} reçus).",
                       "description")
    scope = validate_scope(data.scope, communes)
    if (data.kind == "BUDGET") != (data.budget is not None):
        raise BadInput("Un budget participatif (et lui seul) a ses phases, sections et règle de vote.", "budget")
    if data.kind == "BUDGET" and (data.opens_at or data.closes_at):
        raise BadInput("Un budget participatif s'ouvre et se clôt avec ses phases : ne donnez pas d'autres dates.",
                       "opens_at" if data.opens_at else "closes_at")
    opens_at = to_utc(data.opens_at) if data.opens_at else None
    closes_at = to_utc(data.closes_at) if data.closes_at else None
    if opens_at and closes_at and closes_at <= opens_at:
        raise BadInput(f"La clôture ({french_datetime(closes_at)}) doit suivre l'ouverture "
                       f"({french_datetime(opens_at)}).", "closes_at")
    meetings = []
    for i, m in enumerate(data.meetings):
        if m.commune not in communes:
            raise BadInput(f"Réunion : « {m.commune} » n'est pas une commune du Sicoval.", f"meetings.{i}.commune")
        start, end = to_utc(m.starts_at), to_utc(m.ends_at)
        if end <= start:
            raise BadInput("Réunion : la fin doit suivre le début.", f"meetings.{i}.ends_at")
        meetings.append({"title": _text(m.title, f"meetings.{i}.title", "Réunion", MAX_TITLE, required=True),
                         "starts_at": start, "ends_at": end,
                         "place": _text(m.place, f"meetings.{i}.place", "Lieu", 200),
                         "commune": m.commune})
    return {"title": title, "summary": summary, "description": description, "kind": data.kind, "scope": scope,
            "audience": data.audience, "secret": is_secret(data.kind, data.secret), "opens_at": opens_at,
            "closes_at": closes_at, "meetings": meetings}


def validate_scope(scope: Scope, communes: set[str]) -> dict:
    if scope.kind == "TERRITORY":
        if scope.communes:
            raise BadInput("Tout le territoire : ne listez pas de communes.", "scope.communes")
        return {"kind": "TERRITORY", "communes": []}
    if not scope.communes:
        raise BadInput("Communes concernées : choisissez-en au moins une.", "scope.communes")
    for slug in scope.communes:
        if slug not in communes:
            raise BadInput(f"« {slug} » n'est pas une commune du Sicoval.", "scope.communes")
    return {"kind": "COMMUNES", "communes": sorted(set(scope.communes))}


def is_secret(kind: str, secret: bool) -> bool:
    """Budget votes are always secret ballots; other kinds when the agent says so."""
    return kind == "BUDGET" or secret


# What an update may change, by state. Before opening nobody has answered: everything. Once open, the terms under
# which people answer stay as they were; only words (typos, clarifications), meetings and the closing time move.
# Once closed, only words. The form has its own rule (questions.py: typo fixes once a response exists).
TEXT_FIELDS = frozenset({"title", "summary", "description"})
UPDATABLE = {
    "DRAFT": None,  # everything
    "SCHEDULED": None,
    "OPEN": TEXT_FIELDS | {"meetings", "closes_at"},
    "CLOSED": TEXT_FIELDS,
    "RESULTS_PUBLISHED": TEXT_FIELDS,
    "ARCHIVED": frozenset(),
}
FIELD_LABELS = {"kind": "le type", "scope": "les communes concernées", "audience": "le public", "secret": "le secret",
                "opens_at": "l'ouverture", "closes_at": "la clôture", "meetings": "les réunions", "budget": "le budget",
                "title": "le titre", "summary": "le résumé", "description": "la description"}


def check_update(state: str, old: dict, new: dict, now: datetime) -> list[str]:
    """The fields an update changes, when the state allows them; Conflict naming the first that may not change."""
    changed = [k for k in new if old.get(k) != new[k]]
    allowed = UPDATABLE[state]
    for field in changed:
        if allowed is not None and field not in allowed:
            raise Conflict(f"La consultation est « {STATE_LABELS[state]} » : {FIELD_LABELS.get(field, field)} "
                           f"ne peut plus changer.", field)
    if state == "OPEN" and "closes_at" in changed and (new["closes_at"] is None or new["closes_at"] <= now):
        raise BadInput("Consultation ouverte : la nouvelle clôture doit être à venir (ou closez-la).", "closes_at")
    return changed


# -- who sees what ----------------------------------------------------------------------------------
STAFF = frozenset({"agent", "operator"})
PUBLIC_STATES = frozenset({"SCHEDULED", "OPEN", "CLOSED", "RESULTS_PUBLISHED", "ARCHIVED"})


def visible_states(role: str) -> frozenset[str]:
    """Drafts are the agents' work; anything scheduled or later is public (a PANEL's too: its members find it)."""
    return frozenset(STATES) if role in STAFF else PUBLIC_STATES


def results_visible(state: str, results_published_at: datetime | None) -> bool:
    """Counts are hidden from everyone, agents included, until an agent publishes them after closing."""
    return state == "RESULTS_PUBLISHED" or (state == "ARCHIVED" and results_published_at is not None)


def participation_visible(state: str) -> bool:
    """While open only the number of participants shows; before opening there is none to show."""
    return state in ("OPEN", "CLOSED", "RESULTS_PUBLISHED", "ARCHIVED")


# -- taking part ----------------------------------------------------------------------------------
ORIGIN_PLACES = {"WEB": "en ligne", "BOOTH": "au bureau de vote", "LETTER": "par courrier"}


def check_can_take_part(role: str, state: str, audience: str, panel_member: bool) -> None:
    """Who may answer or vote now: a signed-in citizen (not an organisation: CONSUL's `organization` refusal), while
    open, a member when the audience is a panel."""
    if role in ("public", "kiosk") or role is None:
        raise Forbidden("Connectez-vous avec votre adresse électronique pour participer.")
    if role != "citizen":
        raise Forbidden("Seuls les citoyens participent : les comptes d'agent ou d'organisation ne votent pas.")
    if state != "OPEN":
        raise Conflict(f"La consultation n'est pas ouverte (elle est « {STATE_LABELS.get(state, state)} »).", "state")
    if audience == "PANEL" and not panel_member:
        raise Forbidden("Cette consultation est réservée aux membres de son panel.")


def check_participation(existing: str | None, new: str, final: bool) -> None:
    """One participation per citizen and consultation, whatever the channel (CONSUL's Poll::Voter: a booth vote
    blocks the online vote and the other way round). `existing` is the origin already recorded, if any; `final`
    says that a recorded online participation may not be replaced (a secret ballot, once cast). A non-secret
    online response may be changed until closing: the last one counts."""
    if existing is None:
        return
    if new == "WEB":
        if existing == "WEB":
            if final:
                raise Conflict("Vous avez déjà voté : un vote secret est définitif.", "participation")
            return
        raise Conflict(f"Vous avez déjà voté {ORIGIN_PLACES[existing]} : un seul vote par personne.", "participation")
    raise Conflict(f"Cette personne a déjà voté {ORIGIN_PLACES[existing]}.", "participation")


def participation_total(web: int, booth: int, letter: int, paper_ballots: int) -> int:
    """Participants: online voters plus offline ones. Offline voters are known twice — checked in at a booth (or by
    letter) and as paper ballots counted; where a booth only counts ballots (Decidim's totals) there are no
    check-ins. Both count the same people, so the larger of the two is taken, never their sum."""
    return web + max(booth + letter, paper_ballots)


# -- identities: panel members and booth check-ins --------------------------------------------------
_EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]{2,}$")


def normalise_email(text: str) -> str | None:
    """'  Jeanne.Dupont@Exemple.FR ' -> 'jeanne.dupont@exemple.fr'; None when it is no address. A '<…>' form
    ('Jeanne <j@x.fr>') keeps the address."""
    text = (text or "").strip()
    bracket = re.search(r"<([^<>]+)>", text)
    if bracket:
        text = bracket.group(1).strip()
    text = unicodedata.normalize("NFC", text).lower()
    return text if _EMAIL.match(text) and len(text) <= 254 else None


def normalise_phone(text: str) -> str | None:
    """French numbers to E.164: '06 12 34 56 78' -> '+33612345678'; '+32 …' kept international; None otherwise."""
    digits = re.sub(r"[\s.\-()]", "", text or "")
    if re.fullmatch(r"0[1-9]\d{8}", digits):
        return "+33" + digits[1:]
    if re.fullmatch(r"0033[1-9]\d{8}", digits):
        return "+" + digits[2:]
    if re.fullmatch(r"\+[1-9]\d{7,14}", digits):
        return digits
    return None


def identity_key(secret: bytes, kind: str, value: str) -> str:
    """A keyed hash (HMAC-SHA256) of a normalised email or phone: what is stored instead of the address, for panel
    members and check-ins. Without the service's secret nobody can test a guessed address against it."""
    return hmac.new(secret, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def parse_panel_emails(lines: list[str]) -> tuple[list[str], list[str]]:
    """(valid addresses, normalised and without duplicates, in order; invalid pieces to show the agent). A line may
    hold several addresses separated by commas, semicolons or spaces (a pasted column or a mail header)."""
    valid: list[str] = []
    seen: set[str] = set()
    invalid: list[str] = []
    for line in lines:
        pieces = []
        for chunk in re.split(r"[,;\n]", line or ""):
            chunk = chunk.strip()
            pieces += [chunk] if "<" in chunk else chunk.split()  # 'Jeanne Dupont <j@x.fr>' is one address
        for piece in pieces:
            email = normalise_email(piece)
            if email is None:
                invalid.append(piece)
            elif email not in seen:
                seen.add(email)
                valid.append(email)
    return valid, invalid


# -- keyset cursors ---------------------------------------------------------------------------------
def encode_cursor(*key: str | int | float) -> str:
    """An opaque cursor holding the sort key of the last item seen (its sort value and id, say)."""
    return base64.urlsafe_b64encode(json.dumps(list(key), separators=(",", ":")).encode()).decode()


def decode_cursor(cursor: str | None, arity: int) -> tuple | None:
    """The key of a cursor of `arity` parts, None without cursor; BadInput for anything else."""
    if not cursor:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()).decode())
        if not isinstance(key, list) or len(key) != arity or not all(isinstance(k, (str, int, float)) for k in key):
            raise ValueError
        return tuple(key)
    except (ValueError, UnicodeDecodeError):
        raise BadInput("Curseur invalide : reprenez la liste depuis le début.", "after") from None
