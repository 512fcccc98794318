"""A survey's form without JavaScript: the posted fields read into GraphQL `AnswerInput`s, and the answers kept (a
draft, a submission) shown back in the same fields. Whether answers are valid is the service's to say (each refusal
names its question); only what the form itself can get wrong (a rank given twice) is told here.

Field names: `q-<question>` (a text, a rating, the choices), `q-<question>-autre` (the text of an "other" option),
`q-<question>-<option>` (a ranking: the option's rank), `q-<question>-<row>` (a grid's row: its choices)."""
from __future__ import annotations

TEXTS = {"SHORT_TEXT", "LONG_TEXT"}
CHOICES = {"SINGLE_CHOICE", "MULTIPLE_CHOICE", "YES_NO"}
MATRICES = {"MATRIX_SINGLE", "MATRIX_MULTIPLE"}


def posted(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in pairs:
        out.setdefault(name, []).append(value)
    return out


def read_answers(questions: list[dict], values: dict[str, list[str]]) -> tuple[list[dict], dict[str, str]]:
    """The answers given (unanswered questions left out), and the form's own mistakes by question id."""
    answers, problems = [], {}
    for q in questions:
        name, kind = f"q-{q['id']}", q["type"]
        given = [v.strip() for v in values.get(name, []) if v.strip()]
        if kind in TEXTS and given:
            answers.append({"questionId": q["id"], "text": given[0]})
        elif kind == "RATING" and given and given[0].lstrip("-").isdigit():
            answers.append({"questionId": q["id"], "rating": int(given[0])})
        elif kind in CHOICES and given:
            other = " ".join(v.strip() for v in values.get(f"{name}-autre", [])).strip()
            answers.append({"questionId": q["id"], "choices": given, **({"otherText": other} if other else {})})
        elif kind == "RANKING":
            ranks = {o["id"]: (values.get(f"{name}-{o['id']}") or [""])[0].strip() for o in q["options"]}
            ranked = {oid: int(r) for oid, r in ranks.items() if r.isdigit()}
            if len(set(ranked.values())) != len(ranked):
                problems[q["id"]] = "Chaque rang une seule fois : deux éléments ont le même numéro."
            elif ranked:
                answers.append({"questionId": q["id"], "choices": sorted(ranked, key=ranked.get)})
        elif kind in MATRICES:
            rows = [{"rowId": r["id"], "choices": values[f"{name}-{r['id']}"]} for r in q["rows"]
                    if values.get(f"{name}-{r['id']}")]
            if rows:
                answers.append({"questionId": q["id"], "rows": rows})
    return answers, problems


def answer_values(questions: list[dict], answers: list[dict]) -> dict[str, list[str]]:
    """Kept answers as the form's field values (the inverse of read_answers)."""
    by_id = {a["questionId"]: a for a in answers}
    out: dict[str, list[str]] = {}
    for q in questions:
        a, name = by_id.get(q["id"]), f"q-{q['id']}"
        if a is None:
            continue
        if q["type"] in TEXTS and a.get("text"):
            out[name] = [a["text"]]
        elif q["type"] == "RATING" and a.get("rating") is not None:
            out[name] = [str(a["rating"])]
        elif q["type"] in CHOICES:
            out[name] = list(a.get("choices") or [])
            if a.get("otherText"):
                out[f"{name}-autre"] = [a["otherText"]]
        elif q["type"] == "RANKING":
            for rank, oid in enumerate(a.get("choices") or [], 1):
                out[f"{name}-{oid}"] = [str(rank)]
        elif q["type"] in MATRICES:
            for row in a.get("rows") or []:
                out[f"{name}-{row['rowId']}"] = list(row["choices"])
    return out


def written_conditions(q: dict, by_id: dict[str, dict], source_key: str = "questionId") -> str | None:
    """A question's display conditions in words, as on paper: « À remplir seulement si vous avez répondu « Oui » à la
    question 2. » `source_key` names the earlier question in a condition (`question_id` in the service's own
    dicts, which the printable form reads)."""
    parts = []
    for c in q.get("conditions") or []:
        source = by_id.get(c[source_key])
        if source is None:
            continue
        labels = {o["id"]: o["label"] for o in source.get("options") or []} | {"yes": "Oui", "no": "Non"}
        verb = "avez répondu" if c["operator"] == "EQUALS" else "n'avez pas répondu"
        parts.append(f"si vous {verb} « {labels.get(c['value'], c['value'])} » à la question {source['position']}")
    return f"À remplir seulement {' et '.join(parts)}." if parts else None


def condition_notes(questions: list[dict]) -> dict[str, str]:
    """Each question's conditions written out: without JavaScript every question is shown, with its note."""
    by_id = {q["id"]: q for q in questions}
    return {q["id"]: note for q in questions if (note := written_conditions(q, by_id))}
