"""The Pabulib `.pb` format (https://pabulib.org/format, the open format of participatory budgeting research): the
export of one heading of a budget with its anonymised ballots, and a parser of the same format (to read an export
back, and for anyone checking one).

A file holds one budget (Pabulib, like Decidim's exporter, has no notion of several), so a budget with several
headings gives one file per heading, the heading being the `subunit`. What we write keeps to the published
description and to the field list of Pabulib's own checker (pabulib/checker, `fields.py`): the obligatory META keys
(description, country, unit, instance, num_projects, num_votes, budget, vote_type, rule, date_begin, date_end),
known keys only, in its order, dates as DD.MM.YYYY, integer flags. Amounts are in euros (our cents divided by 100,
written without decimals when whole). Sections are semicolon-separated CSV; a field with ';' or '"' is quoted.

Anonymity: voter ids are sequence numbers given after a secure shuffle, so neither an id nor the order of lines
says anything of who voted or when (Decidim's exporter uses order ids, in order of checkout); the projects of a
vote are sorted.
"""
from __future__ import annotations

import csv
import io
import secrets
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Iterable, Mapping

from contracts.consultation import BudgetSettings, GeoPoint, Heading
from services.consultation.ballots import RandomBytes, shuffled
from services.consultation.budget import HeadingOutcome, heading_max_projects, min_share_cents
from services.consultation.domain import to_paris

REQUIRED_META = ("description", "country", "unit", "instance", "num_projects", "num_votes", "budget", "vote_type",
                 "rule", "date_begin", "date_end")
META_ORDER = ("description", "country", "unit", "district", "subunit", "instance", "num_projects", "num_votes",
              "budget", "vote_type", "rule", "date_begin", "date_end", "min_length", "max_length", "min_sum_cost",
              "max_sum_cost", "language", "currency", "fully_funded", "comment")
PROJECT_COLUMNS = ("project_id", "cost", "votes", "name", "selected", "latitude", "longitude")
VOTE_COLUMNS = ("voter_id", "vote", "voting_method")
SECTIONS = ("META", "PROJECTS", "VOTES")


class PabulibError(ValueError):
    """A .pb text that does not follow the format."""


@dataclass(frozen=True)
class PbBallot:
    """One ballot of the heading: the projects chosen, and whether it was a paper one."""

    project_ids: tuple[str, ...]
    paper: bool = False


@dataclass
class PbFile:
    meta: dict[str, str]
    projects: dict[str, dict[str, str]] = field(default_factory=dict)
    votes: dict[str, dict[str, str]] = field(default_factory=dict)


def euros(cents: int) -> str:
    """Pabulib amounts are numbers in the currency: 1500000 cents -> '15000', 1234550 -> '12345.50'."""
    return f"{cents // 100}" if cents % 100 == 0 else f"{cents // 100}.{cents % 100:02d}"


def _one_line(text: str) -> str:
    # The format is line-based: a name with a line break would be a quoted multi-line field few readers expect.
    return " ".join(text.split())


def export_heading(settings: BudgetSettings, heading: Heading, outcome: HeadingOutcome,
                   ballots: Iterable[PbBallot], *, description: str, instance: str, unit: str = "Sicoval",
                   country: str = "France", locations: Mapping[str, GeoPoint | None] | None = None,
                   random_bytes: RandomBytes = secrets.token_bytes) -> str:
    """The .pb text of one heading: its ballot projects with cost, votes (online + paper) and whether they won
    (CONSUL's rule is Pabulib's `greedy`), and its ballots, shuffled and numbered.

    Votes counted from booth totals (Decidim's paper ballot results) have no ballot to write: the projects' votes
    still include them, so that `selected` follows from `votes` by the stated rule, and a comment says how many
    votes have no line in VOTES."""
    locations = locations or {}
    balloting = next(p for p in settings.phases if p.kind == "BALLOTING" and p.enabled)
    ballots = [b for b in ballots if b.project_ids]
    counted = Counter(pid for b in ballots for pid in b.project_ids)
    ids = {p.project_id for p in outcome.projects}
    unknown = set(counted) - ids
    if unknown:
        raise PabulibError(f"ballots name projects not on the heading's ballot: {sorted(unknown)}")
    without_line = 0
    for p in outcome.projects:
        extra = p.total - counted.get(p.project_id, 0)
        if extra < 0:
            raise PabulibError(f"project {p.project_id}: {counted[p.project_id]} ballots but {p.total} votes")
        without_line += extra
    meta: dict[str, str] = {
        "description": _one_line(description), "country": country, "unit": unit,
        "subunit": heading.name if heading.communes else "", "instance": instance,
        "num_projects": str(len(outcome.projects)), "num_votes": str(len(ballots)),
        "budget": euros(heading.amount_cents), "vote_type": "approval", "rule": "greedy",
        "date_begin": f"{to_paris(balloting.starts_at):%d.%m.%Y}",
        # ends_at is the first instant after the vote: its last day is the day before that instant.
        "date_end": f"{to_paris(balloting.ends_at - timedelta(microseconds=1)):%d.%m.%Y}",
    }
    if settings.rule.kind == "KNAPSACK":
        meta["min_length"] = "1"
        least = min_share_cents(settings, heading)
        if least is not None:
            meta["min_sum_cost"] = euros(least)
        meta["max_sum_cost"] = euros(heading.amount_cents)
    else:
        meta["min_length"] = str(settings.rule.min_projects or 1)
        meta["max_length"] = str(heading_max_projects(settings, heading))
    meta["language"] = "fr"
    meta["currency"] = "EUR"
    if sum(p.price_cents for p in outcome.projects) <= heading.amount_cents:
        meta["fully_funded"] = "1"  # every project fits: the checker wants it said
    if without_line:
        meta["comment"] = (f"#1: the votes in PROJECTS include {without_line} paper votes entered as booth totals "
                           "per project, without a line in VOTES.")
    with_location = any(locations.get(p.project_id) for p in outcome.projects)
    projects = []
    for p in outcome.projects:
        row = {"project_id": p.project_id, "cost": euros(p.price_cents), "votes": str(p.total),
               "name": _one_line(p.title), "selected": "1" if p.winner else "0"}
        if with_location:
            loc = locations.get(p.project_id)
            row["latitude"] = f"{loc.lat:.6f}" if loc else ""
            row["longitude"] = f"{loc.lon:.6f}" if loc else ""
        projects.append(row)
    paper = any(b.paper for b in ballots)
    votes = []
    for n, b in enumerate(shuffled(ballots, random_bytes), start=1):
        row = {"voter_id": str(n), "vote": ",".join(sorted(b.project_ids))}
        if paper:
            row["voting_method"] = "paper" if b.paper else "internet"
        votes.append(row)
    return write_pb({k: v for k, v in meta.items() if v != ""}, projects, votes)


def write_pb(meta: Mapping[str, str], projects: list[Mapping[str, str]], votes: list[Mapping[str, str]]) -> str:
    """A .pb text from its three sections (META keys in the checker's order; columns in the known order)."""
    missing = [k for k in REQUIRED_META if not meta.get(k)]
    if missing:
        raise PabulibError(f"META misses obligatory keys: {missing}")
    unknown = [k for k in meta if k not in META_ORDER]
    if unknown:
        raise PabulibError(f"META keys not in the format: {unknown}")
    out = io.StringIO()
    w = csv.writer(out, delimiter=";", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    w.writerow(["META"])
    w.writerow(["key", "value"])
    for key in META_ORDER:
        if key in meta:
            w.writerow([key, meta[key]])
    for title, rows, order in (("PROJECTS", projects, PROJECT_COLUMNS), ("VOTES", votes, VOTE_COLUMNS)):
        columns = [c for c in order if any(c in r for r in rows)] or list(order[:2])
        w.writerow([title])
        w.writerow(columns)
        for r in rows:
            w.writerow([r.get(c, "") for c in columns])
    return out.getvalue()


def parse_pb(text: str) -> PbFile:
    """Read a .pb text; PabulibError when it does not follow the format: sections in order with their header line,
    the obligatory META keys, as many projects and votes as META says, votes naming known projects only."""
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=";"))
    pb = PbFile(meta={})
    section = None
    header: list[str] | None = None
    seen: list[str] = []
    for number, raw in enumerate(rows, start=1):
        row = [c.strip() for c in raw]
        if not row or row == [""]:
            raise PabulibError(f"line {number}: empty line")
        if len(row) == 1 and row[0].upper() in SECTIONS:
            section, header = row[0].upper(), None
            seen.append(section)
            continue
        if section is None:
            raise PabulibError(f"line {number}: data before any section")
        if header is None:
            header = row
            if section == "META" and header != ["key", "value"]:
                raise PabulibError(f"line {number}: META's header must be key;value")
            required = {"PROJECTS": ("project_id", "cost"), "VOTES": ("voter_id", "vote")}.get(section, ())
            if any(c not in header for c in required):
                raise PabulibError(f"line {number}: {section} needs columns {list(required)}")
            continue
        if len(row) != len(header):
            raise PabulibError(f"line {number}: {len(row)} fields for {len(header)} columns")
        if section == "META":
            pb.meta[row[0]] = row[1]
            continue
        record = dict(zip(header, row))
        key = record[header[0]]
        target = pb.projects if section == "PROJECTS" else pb.votes
        if key in target:
            raise PabulibError(f"line {number}: {header[0]} {key} appears twice")
        target[key] = record
    if seen != list(SECTIONS[: len(seen)]) or "META" not in seen or "PROJECTS" not in seen:
        raise PabulibError(f"sections {seen}: META, PROJECTS, then VOTES expected")
    missing = [k for k in REQUIRED_META if k not in pb.meta]
    if missing:
        raise PabulibError(f"META misses obligatory keys: {missing}")
    if int(pb.meta["num_projects"]) != len(pb.projects):
        raise PabulibError(f"num_projects is {pb.meta['num_projects']}, PROJECTS has {len(pb.projects)}")
    if int(pb.meta["num_votes"]) != len(pb.votes):
        raise PabulibError(f"num_votes is {pb.meta['num_votes']}, VOTES has {len(pb.votes)}")
    for voter, record in pb.votes.items():
        chosen = [x for x in record["vote"].split(",") if x]
        if any(x not in pb.projects for x in chosen) or len(set(chosen)) != len(chosen):
            raise PabulibError(f"voter {voter}: vote {record['vote']!r} names unknown or repeated projects")
    return pb


def greedy_selection(pb: PbFile) -> set[str]:
    """Pabulib's `greedy` rule applied to a parsed file (projects by votes, each selected while its cost fits what
    is left): what `selected` must say when rule is greedy. Ties keep the file's order, which is ours."""
    left = float(pb.meta["budget"])
    chosen = set()
    for pid, p in sorted(pb.projects.items(), key=lambda kv: -int(kv[1].get("votes") or 0)):
        cost = float(p["cost"])
        if cost <= left:
            chosen.add(pid)
            left -= cost
    return chosen
