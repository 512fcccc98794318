"""Pure satisfaction rules: vote checks, repeated presses, buckets, the Happy Index and alert rules.

Happy Index: a scale of n levels (4 or 5) has ratings 1 (très satisfait) ... n (très insatisfait);
rating r is worth 100 * (n - r) / (n - 1) (4 levels: 100, 66.7, 33.3, 0; 5 levels: 100, 75, 50, 25, 0);
the index is the mean of the values of the counted votes, 0-100, undefined without votes.
A vote is negative when it is in the lower half of the scale: 3-4 of 4, 4-5 of 5.
"""
from __future__ import annotations

import re
import uuid
from functools import lru_cache
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")
MAX_AGE = timedelta(days=30)
CLOCK_SKEW = timedelta(seconds=60)  # a kiosk clock a little ahead is not "the future"


def rating_value(rating: int, scale: int) -> float:
    return 100.0 * (scale - rating) / (scale - 1)


def is_negative(rating: int, scale: int) -> bool:
    return rating > scale // 2 + (scale % 2)  # 4: 3,4 ; 5: 4,5


def happy_index(score_sum: float, total: int) -> float | None:
    return round(score_sum / total, 1) if total else None


def check_vote(vote, scale: int, now: datetime, follow_up_choices: list[str] | None) -> str | None:
    """Why a vote is refused (French, for the kiosk's logs), or None when it is acceptable."""
    try:
        uuid.UUID(vote.id)
    except ValueError:
        return "identifiant invalide (UUID attendu)"
    if not 1 <= vote.rating <= scale:
        return f"note hors de l'échelle 1 à {scale}"
    pressed = as_utc(vote.pressed_at)
    if pressed > now + CLOCK_SKEW:
        return "pressedAt est dans le futur"
    if pressed < now - MAX_AGE:
        return "pressedAt a plus de 30 jours"
    if vote.follow_up is not None and (not follow_up_choices or vote.follow_up not in follow_up_choices):
        return "choix de suivi inconnu"
    return None


def ts(value: datetime) -> float:
    """Epoch seconds (votes, counters and kiosks keep their times so: see store.py)."""
    return as_utc(value).timestamp()


def from_ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(float(value), timezone.utc)


def as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


_LINK = re.compile(r"(https?://|www\.|\.(com|ru|xyz|net|info)\b)", re.I)
_REPEAT = re.compile(r"(.)\1{6,}")
_BANNED = re.compile(r"\b(viagra|casino|crypto|bitcoin|porn\w*|connard\w*|salope\w*|encul\w*)\b", re.I)


def comment_is_spam(text: str) -> bool:
    """A short visitor comment is kept unless it looks like spam or abuse (links, floods, banned words)."""
    stripped = text.strip()
    if not stripped or len(stripped) > 500:
        return True
    letters = sum(ch.isalpha() for ch in stripped)
    return bool(_LINK.search(stripped) or _REPEAT.search(stripped) or _BANNED.search(stripped)
                or letters < len(stripped) * 0.4)


def flag_repeats(pressed: list[datetime], last_pressed: datetime | None, seconds: int) -> list[bool]:
    """For presses of one kiosk (in any order): True for those within `seconds` after the previous press.

    The previous press is the one before in time among this batch and the kiosk's latest press already
    stored (`last_pressed`). Flagged votes are kept but not counted, so the rule can be replayed.
    """
    order = sorted(range(len(pressed)), key=lambda i: pressed[i])
    flags = [False] * len(pressed)
    window = timedelta(seconds=seconds)
    previous = last_pressed
    for i in order:
        p = pressed[i]
        if previous is not None and seconds > 0 and timedelta(0) <= p - previous < window:
            flags[i] = True
        if previous is None or p > previous:
            previous = p
    return flags


# -- buckets ----------------------------------------------------------------------------------------
def hour_start(t: datetime) -> datetime:
    return as_utc(t).replace(minute=0, second=0, microsecond=0)


def minute_start(t: datetime) -> datetime:
    return as_utc(t).replace(second=0, microsecond=0)


def day_start(t: datetime) -> datetime:
    """Local (Europe/Paris) midnight of the day of `t`, as UTC."""
    local = as_utc(t).astimezone(PARIS)
    return datetime(local.year, local.month, local.day, tzinfo=PARIS).astimezone(timezone.utc)


def week_start(day: datetime) -> datetime:
    local = as_utc(day).astimezone(PARIS)
    monday = local.date() - timedelta(days=local.weekday())
    return datetime(monday.year, monday.month, monday.day, tzinfo=PARIS).astimezone(timezone.utc)


@dataclass
class Tally:
    counts: list[int]
    negative: int = 0
    score: float = 0.0

    @classmethod
    def empty(cls) -> "Tally":
        return cls([0, 0, 0, 0, 0])

    @property
    def total(self) -> int:
        return sum(self.counts)

    def add_vote(self, rating: int, scale: int) -> None:
        self.counts[rating - 1] += 1
        self.negative += is_negative(rating, scale)
        self.score += rating_value(rating, scale)

    def add_counts(self, counts: list[int], scale: int) -> None:
        """Add counts[r - 1] votes of each rating r (same result as add_vote for each of them)."""
        for r, n in enumerate(counts):
            if n:
                self.counts[r] += n
                self.negative += n * is_negative(r + 1, scale)
                self.score += n * rating_value(r + 1, scale)

    def add_doc(self, doc: dict) -> None:
        for r in range(5):
            self.counts[r] += int(doc.get(f"r{r + 1}", 0))
        self.negative += int(doc.get("negative", 0))
        self.score += float(doc.get("score", 0.0))

    def inc(self) -> dict:
        inc = {f"r{r + 1}": n for r, n in enumerate(self.counts) if n}
        inc.update(total=self.total, negative=self.negative, score=round(self.score, 6))
        return inc

    def point(self, start: datetime) -> dict:
        return {"start": start, "counts": list(self.counts), "total": self.total, "negative": self.negative,
                "happy_index": happy_index(self.score, self.total)}


def _vote_key(v: dict) -> tuple[str, str, int]:
    return v["kiosk_id"], v["site_id"], v.get("scale", 4)


@lru_cache(maxsize=4096)
def _minute_buckets(minute: int) -> tuple[tuple[str, str, int], ...]:
    """(granularity, id stamp, start as epoch seconds) of the hour, day and minute of an epoch minute."""
    m = datetime.fromtimestamp(minute * 60, timezone.utc)
    return tuple((gran, start.strftime("%Y%m%dT%H%M"), int(ts(start)))
                 for gran, start in (("hour", hour_start(m)), ("day", day_start(m)), ("minute", m)))


def votes_increments(votes: list[dict], key=_vote_key) -> dict[str, dict]:
    """Counter increments of counted (not repeated) votes of any kiosks: id -> {meta, tally}.

    `key(vote)` gives (kiosk id, site id, scale); by default the vote document's own fields. Votes are
    first tallied per kiosk and minute (all votes of a minute share their five counters), then spread.
    """
    per_minute: dict[tuple, list[int]] = {}
    for v in votes:
        if v.get("repeated"):
            continue
        k = (*key(v), int(v["pressed_ts"] // 60))
        counts = per_minute.get(k)
        if counts is None:
            counts = per_minute[k] = [0, 0, 0, 0, 0]
        counts[v["rating"] - 1] += 1
    out: dict[str, dict] = {}
    for (kiosk_id, site_id, scale, minute), counts in per_minute.items():
        hour, day, minute_bucket = _minute_buckets(minute)
        for scope, ref, (gran, stamp, t) in (("kiosk", kiosk_id, hour), ("kiosk", kiosk_id, day), ("site", site_id, hour),
                                             ("site", site_id, day), ("site", site_id, minute_bucket)):
            cid = f"{scope}:{ref}:{gran}:{stamp}"
            entry = out.get(cid)
            if entry is None:
                entry = out[cid] = {"meta": {"scope": scope, "ref": ref, "gran": gran, "t": t, "site_id": site_id},
                                    "tally": Tally.empty()}
            entry["tally"].add_counts(counts, scale)
            if gran == "minute":  # the site's minute also holds each kiosk's part: the kiosks' alert windows
                kiosks = entry.setdefault("kiosks", {})
                kiosks.setdefault(kiosk_id, Tally.empty()).add_counts(counts, scale)
    return out


KIOSK_PART = "k:"  # kiosk ids are [A-Za-z0-9_-]: "k:<kiosk>:<field>" is unambiguous, and flat (no dotted path)


def entry_inc(entry: dict) -> dict:
    """The `$inc` of a counter entry of votes_increments: its tally, and on a site's minute each kiosk's part
    as flat fields `k:<kiosk>:<field>` (nx-27017 stores a dotted path of an upsert's $inc as one literal key)."""
    inc = entry["tally"].inc()
    for kiosk_id, tally in (entry.get("kiosks") or {}).items():
        inc.update({f"{KIOSK_PART}{kiosk_id}:{k}": v for k, v in tally.inc().items()})
    return inc


def kiosk_parts(doc: dict) -> dict[str, dict]:
    """The kiosks' parts of a site's minute counter document: kiosk id -> {r1.., total, negative, score}."""
    out: dict[str, dict] = {}
    for key, value in doc.items():
        if key.startswith(KIOSK_PART):
            kiosk_id, field = key[len(KIOSK_PART):].rsplit(":", 1)
            out.setdefault(kiosk_id, {})[field] = value
    return out


# -- recount (replaying the repeated-press rule) ------------------------------------------------------
MAX_RECOUNT = timedelta(days=31)


def replay_flags(votes: list[dict], prior_pressed: float | None, seconds: int) -> dict[str, bool]:
    """The `repeated` flag each vote (documents of one kiosk, any order) gets under a rule of `seconds`, as the
    ingest gives it to presses arriving in time order: True within `seconds` after the previous press, flagged
    or not. `prior_pressed` (epoch seconds) is the kiosk's latest press before these. Ties are ordered by id,
    so that a replay is deterministic (running it twice gives the same flags)."""
    ordered = sorted(votes, key=lambda v: (v["pressed_ts"], v["_id"]))
    out: dict[str, bool] = {}
    previous = prior_pressed
    for v in ordered:
        p = v["pressed_ts"]
        out[v["_id"]] = previous is not None and seconds > 0 and 0 <= p - previous < seconds
        if previous is None or p > previous:
            previous = p
    return out


def flag_flips(votes: list[dict], flags: dict[str, bool]) -> tuple[list[dict], list[dict]]:
    """(votes to flag, votes to unflag): those whose stored flag differs from the replayed one."""
    flag = [v for v in votes if flags[v["_id"]] and not v.get("repeated")]
    unflag = [v for v in votes if not flags[v["_id"]] and v.get("repeated")]
    return flag, unflag


def recount_deltas(flag: list[dict], unflag: list[dict]) -> dict[str, dict]:
    """Counter deltas of flipping flags: id -> {meta, inc}, over every field the ingest increments (kiosks'
    parts included). A vote now flagged leaves its counters, one now unflagged enters them; fields (and
    counters) whose changes cancel out are left out."""
    plus = votes_increments([{**v, "repeated": False} for v in unflag])
    minus = votes_increments([{**v, "repeated": False} for v in flag])
    out: dict[str, dict] = {}
    for cid in sorted(plus.keys() | minus.keys()):
        p = entry_inc(plus[cid]) if cid in plus else {}
        m = entry_inc(minus[cid]) if cid in minus else {}
        inc = {}
        for key in sorted(p.keys() | m.keys()):
            delta = p.get(key, 0) - m.get(key, 0)
            if key == "score" or key.endswith(":score"):
                delta = round(delta, 6)
            if delta:
                inc[key] = delta
        if any(k == "total" or k.endswith(":total") for k in inc):
            out[cid] = {"meta": (plus.get(cid) or minus[cid])["meta"], "inc": inc}
    return out


# -- alerts -----------------------------------------------------------------------------------------
def alert_holds(settings: dict, tally: Tally) -> bool:
    """The site's rule: negative share >= threshold with at least min_votes, or index below index_below."""
    if tally.total < settings.get("min_votes", 4):
        return False
    share = 100.0 * tally.negative / tally.total
    if share >= settings.get("threshold_percent", 50.0):
        return True
    below = settings.get("index_below")
    index = happy_index(tally.score, tally.total)
    return below is not None and index is not None and index < below


def alert_counts(tally: Tally) -> dict:
    total = tally.total
    return {"votes": total, "negative": tally.negative,
            "negative_percent": round(100.0 * tally.negative / total, 1) if total else 0.0,
            "happy_index": happy_index(tally.score, total)}


def alert_rule(settings: dict) -> dict:
    return {"kind": "index" if settings.get("index_below") is not None else "negative_share",
            "window_minutes": settings.get("window_minutes", 15),
            "threshold_percent": settings.get("threshold_percent", 50.0),
            "min_votes": settings.get("min_votes", 4), "index_below": settings.get("index_below")}


# -- opening hours ----------------------------------------------------------------------------------
def is_open(opening_hours: list[dict], now: datetime) -> bool:
    """No hours set means always open; otherwise inside one of the (weekday, opens, closes) slots, Paris time."""
    if not opening_hours:
        return True
    local = as_utc(now).astimezone(PARIS)
    hhmm = local.strftime("%H:%M")
    return any(h["weekday"] == local.weekday() and h["opens"] <= hhmm < h["closes"] for h in opening_hours)


# -- submits and results ---------------------------------------------------------------------------------
def vote_documents(votes: list, kiosk: dict, site: dict, now: datetime) -> list[dict]:
    """The documents of a submit's acceptable votes (checked by check_vote), with the repeated-press flags.

    Times as epoch seconds: nx-27017 encodes a datetime field by a Python call per value. `repeated` only when
    true: each field costs nx-27017 time per document (readers use .get)."""
    pressed = [as_utc(v.pressed_at) for v in votes]
    flags = flag_repeats(pressed, kiosk.get("last_pressed_at"), kiosk.get("repeat_seconds", 3))
    received = now.timestamp()
    scale = kiosk.get("scale", 4)
    docs = []
    for v, p, repeated in zip(votes, pressed, flags):
        doc = {"_id": v.id, "kiosk_id": kiosk["_id"], "site_id": site["_id"], "rating": v.rating,
               "scale": scale, "pressed_ts": p.timestamp(), "received_ts": received}
        if repeated:
            doc["repeated"] = True
        if v.follow_up is not None:
            doc["follow_up"] = v.follow_up
        if v.comment:
            if kiosk.get("comments") and not comment_is_spam(v.comment):
                doc["comment"] = v.comment.strip()
            else:
                doc["comment_refused"] = True
        docs.append(doc)
    return docs


def series(docs: list[dict], hour_docs: list[dict], granularity: str, start: datetime) -> dict:
    """Points per hour, day or week (from the counters of that granularity, weeks from days), the total of the
    period, and the time-of-day profile (Paris hours, from the hour counters)."""
    points: dict[datetime, Tally] = {}
    total = Tally.empty()
    for doc in docs:
        key = week_start(doc["start"]) if granularity == "week" else doc["start"]
        points.setdefault(key, Tally.empty()).add_doc(doc)
        total.add_doc(doc)
    profile: dict[int, Tally] = {}
    for doc in hour_docs:
        hour = as_utc(doc["start"]).astimezone(PARIS).hour
        profile.setdefault(hour, Tally.empty()).add_doc(doc)
    return {"points": [t.point(k) for k, t in sorted(points.items())], "total": total.point(start),
            "profile": [t.point(datetime(2000, 1, 1, h, tzinfo=PARIS)) for h, t in sorted(profile.items())]}


def tally_of(docs: list[dict]) -> Tally:
    tally = Tally.empty()
    for doc in docs:
        tally.add_doc(doc)
    return tally
