"""Pure survey results: the counters a response (or a paper count) adds to, and the results read from those
counters — choices, matrices, rankings (Borda points), ratings (mean and distribution); free text is counted,
never charted (as Decidim publishes only choice, matrix and sorting answers). Plus the CSV of published results.

Counters are flat keys ([A-Za-z0-9_-] ids joined by ':', no dots: nx-27017 stores a dotted path of an upsert's $inc
as one literal key), so that the service keeps them with $inc and results cost the size of the form, not the number
of responses:
  n:<q>                 respondents who answered question q
  o:<q>:<option>        an option chosen (choices, yes/no)
  x:<q>                 'other, please say' texts given
  m:<q>:<row>:<option>  a matrix cell chosen;  mr:<q>:<row>  respondents who answered the row
  k:<q>:<option>:<p>    an item ranked at place p (1 = first)
  r:<q>:<value>         a rating given
"""
from __future__ import annotations

import csv
import io
from collections import Counter
from typing import Iterable, Mapping

from contracts.consultation import (Answer, ConsultationResults, OptionCount, OptionTotal, Question, QuestionResult,
                                    RankingScore, RatingCount, RatingResult, RowCounts)
from contracts.errors import BadInput
from services.consultation.questions import MATRIX_TYPES, TEXT_TYPES, options_of


def response_increments(form: list[Question], answers: Iterable[Answer]) -> Counter:
    """The counters one (validated) response adds to."""
    by_id = {q.id: q for q in form}
    inc: Counter = Counter()
    for a in answers:
        q = by_id.get(a.question_id)
        if q is None or q.type == "SECTION":
            continue
        inc[f"n:{q.id}"] += 1
        if q.type in TEXT_TYPES:
            continue
        if q.type == "RATING":
            inc[f"r:{q.id}:{a.rating}"] += 1
        elif q.type in MATRIX_TYPES:
            for row in a.rows:
                inc[f"mr:{q.id}:{row.row_id}"] += 1
                for choice in row.choices:
                    inc[f"m:{q.id}:{row.row_id}:{choice}"] += 1
        elif q.type == "RANKING":
            for place, choice in enumerate(a.choices, start=1):
                inc[f"k:{q.id}:{choice}:{place}"] += 1
        else:
            for choice in a.choices:
                inc[f"o:{q.id}:{choice}"] += 1
            if a.other_text:
                inc[f"x:{q.id}"] += 1
    return inc


def response_delta(form: list[Question], before: Iterable[Answer] | None, after: Iterable[Answer]) -> dict[str, int]:
    """The counter changes when a submitted response is replaced (the last one counts): after minus before, without
    the zeros, ready for one $inc."""
    delta = Counter(response_increments(form, after))
    delta.subtract(response_increments(form, before or ()))
    return {k: v for k, v in sorted(delta.items()) if v}


def totals_increments(form: list[Question], totals: list[OptionTotal], valid_ballots: int) -> Counter:
    """The counters a booth's paper count adds to (totals per option; Decidim's paper ballot results).

    A paper count gives choices, yes/no, ratings and matrix cells, not rankings or texts. How many answered a
    question is the sum of its totals when a paper holds one answer (single choice, yes/no, rating), otherwise
    every valid paper counts as a respondent (a multiple choice or a matrix total cannot tell who answered)."""
    by_id = {q.id: q for q in form}
    inc: Counter = Counter()
    seen: set[tuple] = set()
    per_question: Counter = Counter()
    for t in totals:
        q = by_id.get(t.question_id)
        where = f"options.{t.question_id}"
        if q is None:
            raise BadInput(f"La question « {t.question_id} » n'existe pas dans ce formulaire.", where)
        if q.type in TEXT_TYPES or q.type in ("SECTION", "RANKING"):
            raise BadInput(f"Question {q.position} : les totaux se saisissent pour les choix, oui / non, notes et "
                           "grilles.", where)
        key = (t.question_id, t.row_id, t.option_id)
        if key in seen:
            raise BadInput(f"Question {q.position} : le total de « {t.option_id} » est saisi deux fois.", where)
        seen.add(key)
        if t.votes > valid_ballots:
            raise BadInput(f"Question {q.position} : {t.votes} voix pour {valid_ballots} bulletins exprimés, c'est "
                           "impossible.", where)
        if q.type == "RATING":
            if t.row_id is not None or not (t.option_id.isdigit() and q.scale.min <= int(t.option_id) <= q.scale.max):
                raise BadInput(f"Question {q.position} : une note de {q.scale.min} à {q.scale.max}.", where)
            inc[f"r:{q.id}:{int(t.option_id)}"] += t.votes
        elif q.type in MATRIX_TYPES:
            if t.row_id not in {r.id for r in q.rows} or t.option_id not in {o.id for o in q.options}:
                raise BadInput(f"Question {q.position} : ligne ou colonne inconnue.", where)
            inc[f"m:{q.id}:{t.row_id}:{t.option_id}"] += t.votes
        else:
            if t.row_id is not None or t.option_id not in {o.id for o in options_of(q)}:
                raise BadInput(f"Question {q.position} : option inconnue « {t.option_id} ».", where)
            inc[f"o:{q.id}:{t.option_id}"] += t.votes
        per_question[q.id] += t.votes
    for qid, votes in per_question.items():
        q = by_id[qid]
        single = q.type in ("SINGLE_CHOICE", "YES_NO", "RATING")
        if single and votes > valid_ballots:
            raise BadInput(f"Question {q.position} : {votes} réponses pour {valid_ballots} bulletins exprimés.",
                           f"options.{qid}")
        inc[f"n:{qid}"] += votes if single else valid_ballots
        if q.type in MATRIX_TYPES:
            for r in q.rows:
                inc[f"mr:{qid}:{r.id}"] += valid_ballots
    return inc


def _percent(count: int, base: int) -> float | None:
    return round(100.0 * count / base, 1) if base else None


def question_results(form: list[Question], counters: Mapping[str, int]) -> list[QuestionResult]:
    """Each question's results from the counters, in form order (sections left out)."""
    out = []
    for q in sorted(form, key=lambda q: q.position):
        if q.type == "SECTION":
            continue
        answered = int(counters.get(f"n:{q.id}", 0))
        result = QuestionResult(question_id=q.id, type=q.type, label=q.label, answered=answered,
                                charted=q.type not in TEXT_TYPES)
        if q.type == "RATING":
            dist = [RatingCount(value=v, count=int(counters.get(f"r:{q.id}:{v}", 0)))
                    for v in range(q.scale.min, q.scale.max + 1)]
            n = sum(d.count for d in dist)
            mean = round(sum(d.value * d.count for d in dist) / n, 2) if n else None
            result.rating = RatingResult(mean=mean, distribution=dist)
        elif q.type in MATRIX_TYPES:
            for r in q.rows:
                row_n = int(counters.get(f"mr:{q.id}:{r.id}", 0))
                cells = []
                for o in q.options:
                    c = int(counters.get(f"m:{q.id}:{r.id}:{o.id}", 0))
                    cells.append(OptionCount(option_id=o.id, label=o.label, count=c, percent=_percent(c, row_n)))
                result.rows.append(RowCounts(row_id=r.id, label=r.label, answered=row_n, options=cells))
        elif q.type == "RANKING":
            result.ranking = _borda(q, counters)
        elif q.type not in TEXT_TYPES:
            for o in options_of(q):
                c = int(counters.get(f"o:{q.id}:{o.id}", 0))
                result.options.append(OptionCount(option_id=o.id, label=o.label, count=c,
                                                  percent=_percent(c, answered)))
            result.other_texts = int(counters.get(f"x:{q.id}", 0))
        out.append(result)
    return out


def _borda(q: Question, counters: Mapping[str, int]) -> list[RankingScore]:
    """Borda count: with n items, first place is worth n-1 points, last 0. Sorted by points, then first places,
    then the form's order (a stable, stated order for ties)."""
    n = len(q.options)
    scores = []
    for index, o in enumerate(q.options):
        places = [int(counters.get(f"k:{q.id}:{o.id}:{p}", 0)) for p in range(1, n + 1)]
        ranked = sum(places)
        points = sum(count * (n - p) for p, count in enumerate(places, start=1))
        mean = round(sum(p * c for p, c in enumerate(places, start=1)) / ranked, 2) if ranked else None
        scores.append((index, RankingScore(option_id=o.id, label=o.label, points=points, first_places=places[0],
                                           mean_position=mean)))
    scores.sort(key=lambda s: (-s[1].points, -s[1].first_places, s[0]))
    return [s for _, s in scores]


def tally_responses(form: list[Question], responses: Iterable[Iterable[Answer]]) -> Counter:
    """Counters over many responses (a recount; the paper ballots of a sheet)."""
    total: Counter = Counter()
    for answers in responses:
        total.update(response_increments(form, answers))
    return total


# -- open data --------------------------------------------------------------------------------------
def results_csv(results: ConsultationResults) -> str:
    """Published results as CSV (UTF-8, comma, CRLF, as the agenda's open data): one line per option, matrix cell,
    ranked item, rating value or budget project. Free text is not in it."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    if results.headings:
        w.writerow(["section_id", "section", "montant_section_eur", "projet_id", "projet", "prix_eur", "rang",
                    "voix_en_ligne", "voix_papier", "voix", "laureat"])
        for h in results.headings:
            for p in h.projects:
                w.writerow([h.heading_id, h.name, _eur(h.amount_cents), p.project_id, p.title, _eur(p.price_cents),
                            p.rank, p.votes.online, p.votes.paper, p.votes.total, int(p.winner)])
        return out.getvalue()
    w.writerow(["question_id", "question", "type", "repondants", "ligne_id", "ligne", "option_id", "option",
                "nombre", "pourcentage", "points_borda"])
    for q in results.questions:
        if not q.charted:
            w.writerow([q.question_id, q.label, q.type, q.answered, "", "", "", "", "", "", ""])
        for o in q.options:
            w.writerow([q.question_id, q.label, q.type, q.answered, "", "", o.option_id, o.label, o.count,
                        _num(o.percent), ""])
        for r in q.rows:
            for o in r.options:
                w.writerow([q.question_id, q.label, q.type, q.answered, r.row_id, r.label, o.option_id, o.label,
                            o.count, _num(o.percent), ""])
        for s in q.ranking:
            w.writerow([q.question_id, q.label, q.type, q.answered, "", "", s.option_id, s.label, s.first_places, "",
                        s.points])
        if q.rating is not None:
            for d in q.rating.distribution:
                w.writerow([q.question_id, q.label, q.type, q.answered, "", "", str(d.value), str(d.value), d.count,
                            _num(_percent(d.count, q.answered)), ""])
    return out.getvalue()


def _eur(cents: int) -> str:
    return f"{cents // 100}" if cents % 100 == 0 else f"{cents // 100}.{cents % 100:02d}"


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:g}"
