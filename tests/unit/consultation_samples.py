"""Sample forms and budgets shared by the consultation domain's unit tests (pure data, no infrastructure)."""
from __future__ import annotations

from datetime import datetime, timezone
from itertools import count

from contracts.consultation import (BudgetPhase, BudgetSettings, DisplayCondition, Heading, MatrixRow, Option,
                                    Question, RatingScale, ScaleLabel, VotingRule)
from services.consultation.budget import Project

UTC = timezone.utc
COMMUNES = {"labege", "escalquens", "castanet-tolosan", "ramonville-saint-agne", "auzielle"}


def bytes_source(seed: int = 7):
    """A deterministic stand-in for secrets.token_bytes."""
    state = count(seed)

    def random_bytes(n: int) -> bytes:
        return bytes((next(state) * 131 + 17) % 256 for _ in range(n))

    return random_bytes


def q(qid: str, qtype: str, position: int, **kw) -> Question:
    return Question(id=qid, type=qtype, label=kw.pop("label", f"Question {qid}"), position=position, **kw)


def opts(*ids: str, free: str | None = None) -> list[Option]:
    return [Option(id=i, label=i.capitalize(), free_text=(i == free)) for i in ids]


def survey_form() -> list[Question]:
    """One question of every type, with a condition chain."""
    return [
        q("intro", "SECTION", 1, label="Vos habitudes"),
        q("uses", "YES_NO", 2, label="Fréquentez-vous la piscine de Castanet ?", mandatory=True),
        q("when", "MULTIPLE_CHOICE", 3, label="À quels moments ?", mandatory=True, min_choices=1, max_choices=2,
          options=opts("morning", "noon", "evening", "other", free="other"),
          conditions=[DisplayCondition(question_id="uses", value="yes")]),
        q("why_not", "SINGLE_CHOICE", 4, label="Pourquoi pas ?", mandatory=True,
          options=opts("far", "price", "hours", "other", free="other"),
          conditions=[DisplayCondition(question_id="uses", operator="DIFFERS", value="yes")]),
        q("rating", "RATING", 5, label="Votre satisfaction", mandatory=True,
          scale=RatingScale(min=1, max=5, labels=[ScaleLabel(value=1, label="Pas du tout"),
                                                   ScaleLabel(value=5, label="Tout à fait")])),
        q("nps", "RATING", 6, label="La recommanderiez-vous ?", scale=RatingScale(min=0, max=10)),
        q("priorities", "RANKING", 7, label="Classez vos priorités", options=opts("hours", "clean", "price")),
        q("grid", "MATRIX_SINGLE", 8, label="Comment jugez-vous…", mandatory=True,
          options=opts("good", "fair", "bad"), rows=[MatrixRow(id="welcome", label="l'accueil"),
                                                     MatrixRow(id="cleanliness", label="la propreté")]),
        q("services", "MATRIX_MULTIPLE", 9, label="Quels services par saison ?", max_choices=2,
          options=opts("pool", "gym", "sauna"), rows=[MatrixRow(id="summer", label="été"),
                                                       MatrixRow(id="winter", label="hiver")]),
        q("name", "SHORT_TEXT", 10, label="Votre quartier", max_characters=40),
        q("comment", "LONG_TEXT", 11, label="Un commentaire ?",
          conditions=[DisplayCondition(question_id="rating", operator="EQUALS", value="1")]),
    ]


def paris(y, mo, d, h=0, mi=0) -> datetime:
    """Naive: Europe/Paris wall time, as agents type it."""
    return datetime(y, mo, d, h, mi)


def phases(**overrides) -> list[BudgetPhase]:
    """A 2026 budget: each phase a fortnight or so, joined, balloting 1-31 May, results from 15 June."""
    bounds = [("INFORMING", paris(2026, 1, 5), paris(2026, 1, 19)),
              ("ACCEPTING", paris(2026, 1, 19), paris(2026, 2, 16)),
              ("REVIEWING", paris(2026, 2, 16), paris(2026, 3, 2)),
              ("SELECTING", paris(2026, 3, 2), paris(2026, 3, 23)),
              ("VALUATING", paris(2026, 3, 23), paris(2026, 4, 20)),
              ("PUBLISHING_PRICES", paris(2026, 4, 20), paris(2026, 5, 1)),
              ("BALLOTING", paris(2026, 5, 1), paris(2026, 6, 1)),
              ("REVIEWING_BALLOTS", paris(2026, 6, 1), paris(2026, 6, 15)),
              ("FINISHED", paris(2026, 6, 15), None)]
    return [BudgetPhase(**{"kind": k, "starts_at": s, "ends_at": e, **overrides.get(k, {})}) for k, s, e in bounds]


def budget(rule: VotingRule | None = None, **kw) -> BudgetSettings:
    headings = kw.pop("headings", [
        Heading(id="labege", name="Labège", communes=["labege"], amount_cents=100_000_00),
        Heading(id="escalquens", name="Escalquens", communes=["escalquens"], amount_cents=50_000_00),
        Heading(id="sicoval", name="Tout le Sicoval", communes=[], amount_cents=300_000_00),
    ])
    return BudgetSettings(phases=kw.pop("phases", phases()), headings=headings, rule=rule or VotingRule(), **kw)


def project(pid: str, heading: str, price_eur: int | None, *, submitted_day: int = 1, title: str | None = None,
            **kw) -> Project:
    """A project on the ballot unless told otherwise."""
    fields = dict(moderation="APPROVED", feasibility="FEASIBLE", selected=True,
                  submitted_at=datetime(2026, 2, submitted_day, 12, tzinfo=UTC))
    fields.update(kw)
    return Project(id=pid, heading_id=heading, title=title or f"Projet {pid}",
                   price_cents=None if price_eur is None else price_eur * 100, **fields)
