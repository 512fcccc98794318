"""Pure helpers of ballot secrecy, receipts and paper: receipt codes with a check character, the secret ballot
document (nothing in it joins it to its voter), a secure shuffle, what of a ballot may be published against its
receipt, and double entry of paper sheets (two agents, compared, agreed or flagged); no I/O.

Randomness always comes from a `random_bytes(n) -> bytes` callable, `secrets.token_bytes` in the service, so that
tests can pass a deterministic one.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Callable, Iterable, Sequence, TypeVar

from contracts.consultation import Answer, EnterPaperTotals, HeadingBallot, PaperBallot
from contracts.errors import BadInput, Conflict

RandomBytes = Callable[[int], bytes]
T = TypeVar("T")

# -- receipt codes ---------------------------------------------------------------------------------
# Crockford's base 32: digits and capitals without I, L, O, U, so that a code read aloud or copied by hand from a
# screen or a printed receipt survives (0/O and 1/I/L are read as the same symbol).
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
DATA_CHARS = 11  # 55 bits: guessing one of 50,000 codes succeeds once in ~7e11 tries; and a code reveals nothing
CODE_LENGTH = DATA_CHARS + 1
_READ_AS = {"O": "0", "I": "1", "L": "1"}


def _luhn_mod_n(payload: str) -> str:
    """Luhn mod N check character: catches every single wrong character and most swaps of neighbours."""
    n = len(ALPHABET)
    factor, total = 2, 0
    for ch in reversed(payload):
        addend = factor * ALPHABET.index(ch)
        factor = 1 if factor == 2 else 2
        total += addend // n + addend % n
    return ALPHABET[(n - total % n) % n]


def _group(code: str) -> str:
    return "-".join(code[i:i + 4] for i in range(0, len(code), 4))


def new_receipt_code(random_bytes: RandomBytes = secrets.token_bytes) -> str:
    """A receipt code 'XXXX-XXXX-XXXX': 11 random characters and a check character. 256 is a multiple of 32, so
    each byte modulo 32 is a uniform character."""
    payload = "".join(ALPHABET[b % 32] for b in random_bytes(DATA_CHARS))
    return _group(payload + _luhn_mod_n(payload))


def normalise_receipt_code(text: str) -> str | None:
    """The canonical 'XXXX-XXXX-XXXX' form of what a voter typed (any case, spaces or dashes, O for 0, I or L for 1),
    None when it is not a valid code (wrong length, unknown character, check character wrong)."""
    raw = re.sub(r"[\s\-_.]", "", (text or "").upper())
    raw = "".join(_READ_AS.get(ch, ch) for ch in raw)
    if len(raw) != CODE_LENGTH or any(ch not in ALPHABET for ch in raw):
        return None
    if _luhn_mod_n(raw[:-1]) != raw[-1]:
        return None
    return _group(raw)


def parse_receipt_code(text: str) -> str:
    code = normalise_receipt_code(text)
    if code is None:
        raise BadInput("Code de reçu invalide : 12 caractères (chiffres et lettres), tirets facultatifs ; "
                       "vérifiez-le sur votre reçu.", "receipt_code")
    return code


# -- randomness ---------------------------------------------------------------------------------------
def random_below(n: int, random_bytes: RandomBytes) -> int:
    """A uniform integer in [0, n) (rejection sampling: no modulo bias)."""
    if n <= 0:
        raise ValueError("n must be positive")
    size = ((n - 1).bit_length() + 7) // 8 or 1
    limit = (256 ** size // n) * n
    while True:
        value = int.from_bytes(random_bytes(size), "big")
        if value < limit:
            return value % n


def shuffled(items: Sequence[T], random_bytes: RandomBytes = secrets.token_bytes) -> list[T]:
    """A uniformly shuffled copy (Fisher-Yates): what exports and published lists use, so that no order they show
    is the order of arrival."""
    out = list(items)
    for i in range(len(out) - 1, 0, -1):
        j = random_below(i + 1, random_bytes)
        out[i], out[j] = out[j], out[i]
    return out


def random_id(random_bytes: RandomBytes = secrets.token_bytes) -> str:
    """128 random bits in hex: a ballot's id, carrying neither time nor sequence (unlike an ObjectId, whose first
    bytes are its creation time)."""
    return random_bytes(16).hex()


# -- secret ballots -----------------------------------------------------------------------------------
def secret_ballot(consultation_id: str, receipt_code: str, *, headings: list[HeadingBallot] | None = None,
                  answers: list[Answer] | None = None, random_bytes: RandomBytes = secrets.token_bytes) -> dict:
    """The stored document of a secret online ballot: its content and receipt, under a random id. No voter id, no
    hash of one, no time (not even a day: on a day with one voter a day would name him), no sequence. The record
    that a citizen took part is written apart (participation_record) and carries nothing of this one.

    The random id is also the ballots' ordering key: sorted by it, ballots come in an order that says nothing of
    their arrival. It does not change the order a database keeps documents in (MongoDB's natural order is the
    order of insertion), so the service never reads ballots back unsorted nor publishes them in that order."""
    doc: dict[str, Any] = {"_id": random_id(random_bytes), "consultation_id": consultation_id,
                           "receipt": receipt_code}
    if headings is not None:
        doc["headings"] = [h.model_dump() for h in headings]
    if answers is not None:
        doc["answers"] = [a.model_dump(exclude_none=True, exclude_defaults=True) for a in answers]
    return doc


def participation_record(consultation_id: str, voter_key: str, origin: str, at: datetime,
                         booth_id: str | None = None) -> dict:
    """That a voter took part, once per consultation: the id is (consultation, voter), so that a second ballot of
    the same voter, from any device or channel, meets a unique key instead of a read-then-write race. It says when
    and how, and never which ballot."""
    doc = {"_id": f"{consultation_id}:{voter_key}", "consultation_id": consultation_id, "voter": voter_key,
           "origin": origin, "at": at}
    if booth_id is not None:
        doc["booth_id"] = booth_id
    return doc


def identity_leaks(document: Any, identities: Iterable[str], path: str = "") -> list[str]:
    """Paths in a stored document that could join it to a voter: a value equal to (or containing) one of the voter's
    identities (id, email, keyed hash), or any date or time. The secrecy test runs it over every ballot."""
    idents = [i for i in identities if i]
    found: list[str] = []
    if isinstance(document, dict):
        for key, value in document.items():
            found += identity_leaks(value, idents, f"{path}.{key}" if path else str(key))
    elif isinstance(document, (list, tuple)):
        for i, value in enumerate(document):
            found += identity_leaks(value, idents, f"{path}.{i}")
    elif isinstance(document, (datetime, date)):
        found.append(path)
    elif isinstance(document, str) and any(i in document for i in idents):
        found.append(path)
    return found


def public_content(answers: list[Answer]) -> list[Answer]:
    """What of a secret survey ballot is published against its receipt: the choices, never a free text (a sentence
    may name its author). Answers that were only text disappear."""
    out = []
    for a in answers:
        kept = a.model_copy(update={"text": None, "other_text": None})
        if kept.choices or kept.rating is not None or kept.rows:
            out.append(kept)
    return out


# -- paper entries ------------------------------------------------------------------------------------
def check_paper_entry_allowed(state: str, results_visible: bool) -> None:
    """Paper is entered while the consultation is open and after it closed, until its results are published."""
    if state not in ("OPEN", "CLOSED") or results_visible:
        raise Conflict("Les bulletins papier se saisissent pendant la consultation et après sa clôture, jusqu'à la "
                       "publication des résultats.", "state")


def sheet_content(ballots: list[PaperBallot], check: Callable[[PaperBallot], dict]) -> list[dict]:
    """A sheet's ballots in a comparable, storable form, in the sheet's order: blank and null papers as such, the
    others through `check` (the service's validation of a ballot or a response, returning its stored form).

    A paper that breaks the rules is spoiled: the agent enters it as null, on purpose. So a refusal names the
    ballot and says so, rather than quietly dropping lines as CONSUL's ballot sheets do."""
    out = []
    for i, b in enumerate(ballots, start=1):
        if b.blank or b.null:
            if b.headings or b.answers or (b.blank and b.null):
                raise BadInput(f"Bulletin {i} : il est blanc, ou nul, ou porte des choix ; une seule de ces "
                               "possibilités.", f"ballots.{i}")
            out.append({"blank": True} if b.blank else {"null": True})
            continue
        try:
            out.append(check(b))
        except BadInput as exc:
            where = f"ballots.{i}" + (f".{exc.field}" if exc.field else "")
            raise BadInput(f"Bulletin {i} : {exc.message} S'il est ainsi sur le papier, saisissez-le comme nul.",
                           where) from None
    return out


def totals_content(entry: EnterPaperTotals) -> dict:
    """A booth's count in a comparable, storable form."""
    return {"ballots": entry.ballots, "blank": entry.blank, "null": entry.null,
            "projects": {t.project_id: t.votes for t in entry.projects},
            "options": {":".join(x for x in (t.question_id, t.row_id, t.option_id) if x): t.votes
                        for t in entry.options}}


def parse_ballot_sheet_text(text: str) -> list[list[str]]:
    """CONSUL's typed ballot sheet: ballots separated by ';' or new lines, project ids by ','."""
    ballots = []
    for chunk in re.split(r"[;\n]", text or ""):
        ids = [x.strip() for x in chunk.split(",") if x.strip()]
        if ids:
            ballots.append(ids)
    return ballots


@dataclass(frozen=True)
class Difference:
    path: str
    first: str | None
    second: str | None


def _flat(value: Any, path: str, out: dict[str, str]) -> None:
    def join(key) -> str:
        return f"{path}.{key}" if path else str(key)

    if isinstance(value, dict):
        for k in sorted(value):
            _flat(value[k], join(k), out)
    elif isinstance(value, list):
        if all(not isinstance(v, (dict, list)) for v in value):
            out[path] = ",".join(str(v) for v in value)
        else:
            for i, v in enumerate(value, start=1):  # numbered from 1, as the agent numbers the sheet's ballots
                _flat(v, join(i), out)
    else:
        out[path] = str(value)


def compare_entries(first: Any, second: Any) -> list[Difference]:
    """What differs between two agents' entries of the same sheet, by path ('3.headings.1.project_ids': the 3rd
    ballot's first heading; 'projects.p12': a project's total); empty when they agree."""
    a: dict[str, str] = {}
    b: dict[str, str] = {}
    _flat(first, "", a)
    _flat(second, "", b)
    return [Difference(p, a.get(p), b.get(p)) for p in sorted(a.keys() | b.keys()) if a.get(p) != b.get(p)]


@dataclass(frozen=True)
class DoubleEntry:
    status: str  # AWAITING_SECOND_ENTRY | MATCHED | MISMATCH
    agreed: Any = None
    differences: tuple[Difference, ...] = ()


def double_entry(entries: Sequence[tuple[str, Any]]) -> DoubleEntry:
    """The state of a sheet from its entries (agent, content), oldest first. An agent's later entry replaces his
    earlier one (he corrects himself); the sheet counts once two different agents agree, and is flagged while they
    do not — kept out of the count until a further entry agrees with one of them. Two agreeing pairs that disagree
    with each other (four agents) are a mismatch again."""
    latest: dict[str, Any] = {}
    for agent, content in entries:
        latest.pop(agent, None)
        latest[agent] = content  # re-inserted: the dict's order is the order of each agent's latest entry
    agents = list(latest)
    if len(agents) < 2:
        return DoubleEntry("AWAITING_SECOND_ENTRY")
    agreed = []
    for i, x in enumerate(agents):
        for y in agents[i + 1:]:
            if latest[x] == latest[y] and all(latest[x] != c for c in agreed):
                agreed.append(latest[x])
    if len(agreed) == 1:
        return DoubleEntry("MATCHED", agreed[0])
    previous, last = latest[agents[-2]], latest[agents[-1]]
    return DoubleEntry("MISMATCH", None, tuple(compare_entries(previous, last)))
