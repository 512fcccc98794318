"""Pure form rules: whether a form definition holds together, editing it, which questions a response shows (display
conditions), and whether a response answers the form. Once responses exist only typo fixes: revisions.py.

Every refusal is a BadInput in plain French whose `field` is the question's id, so that a page can put the
message next to the question. Questions are contracts' `Question` models (ids and positions set).
"""
from __future__ import annotations

from typing import Iterable

from contracts.consultation import Answer, MatrixAnswer, Option, Question, QuestionInput, RatingScale
from contracts.errors import BadInput

MAX_QUESTIONS = 200
MAX_OPTIONS = 50
MAX_ROWS = 30
MAX_LABEL = 500
MAX_OPTION_LABEL = 200
MAX_DESCRIPTION = 2000
MAX_OTHER_TEXT = 500
DEFAULT_MAX_CHARACTERS = {"SHORT_TEXT": 250, "LONG_TEXT": 5000}
LIMIT_MAX_CHARACTERS = {"SHORT_TEXT": 500, "LONG_TEXT": 20_000}

TEXT_TYPES = frozenset({"SHORT_TEXT", "LONG_TEXT"})
CHOICE_TYPES = frozenset({"SINGLE_CHOICE", "MULTIPLE_CHOICE", "RANKING"})
MATRIX_TYPES = frozenset({"MATRIX_SINGLE", "MATRIX_MULTIPLE"})
# A display condition compares an earlier answer with one value: only questions whose answers are a few known
# values qualify (not free text, a ranking's order or a matrix's grid).
CONDITION_SOURCES = frozenset({"SINGLE_CHOICE", "MULTIPLE_CHOICE", "YES_NO", "RATING"})
YES_NO_OPTIONS = (Option(id="yes", label="Oui"), Option(id="no", label="Non"))
TYPE_LABELS = {"SHORT_TEXT": "texte court", "LONG_TEXT": "texte long", "SINGLE_CHOICE": "choix unique",
               "MULTIPLE_CHOICE": "choix multiple", "RANKING": "classement", "RATING": "note",
               "MATRIX_SINGLE": "grille à choix unique", "MATRIX_MULTIPLE": "grille à choix multiples",
               "YES_NO": "oui / non", "SECTION": "intertitre"}


def options_of(q: QuestionInput) -> list[Option]:
    """The options a question offers: its own, or Oui / Non for a yes/no question."""
    return list(YES_NO_OPTIONS) if q.type == "YES_NO" else list(q.options)


def question_name(q: QuestionInput, position: int | None = None) -> str:
    """How a message names a question: 'Question 3 (« Quel équipement… »)'."""
    label = q.label.strip()
    short = label if len(label) <= 60 else label[:57].rstrip() + "…"
    return f"Question {position or q.position} (« {short} »)"


def _bad(q: QuestionInput, text: str, position: int | None = None) -> BadInput:
    return BadInput(f"{question_name(q, position)} : {text}", q.id)


# -- the form definition ----------------------------------------------------------------------------
def validate_form(questions: Iterable[Question]) -> list[Question]:
    """The form, checked and normalised: sorted by position and renumbered 1..n, labels stripped, text limits and
    choice bounds filled in. Raises BadInput naming the first question at fault (field = its id)."""
    ordered = sorted(questions, key=lambda q: q.position)
    if len(ordered) > MAX_QUESTIONS:
        raise BadInput(f"Un formulaire compte {MAX_QUESTIONS} questions au plus.", "questions")
    ids, positions = set(), set()
    out: list[Question] = []
    for n, q in enumerate(ordered, start=1):
        if q.id in ids:
            raise BadInput(f"Deux questions portent l'identifiant « {q.id} ».", q.id)
        if q.position in positions:
            raise BadInput(f"Deux questions sont à la position {q.position}.", q.id)
        ids.add(q.id)
        positions.add(q.position)
        checked = _validate_question(q, n)
        _validate_conditions(checked, out)
        out.append(checked)
    return out


def _validate_question(q: Question, position: int) -> Question:
    label = q.label.strip()
    if not label:
        raise BadInput(f"Question {position} : le libellé est obligatoire.", q.id)
    q = q.model_copy(update={"label": label, "description": q.description.strip(), "position": position})
    if len(label) > MAX_LABEL:
        raise _bad(q, f"libellé de {MAX_LABEL} caractères au plus ({len(label)}).")
    if len(q.description) > MAX_DESCRIPTION:
        raise _bad(q, f"texte d'aide de {MAX_DESCRIPTION} caractères au plus ({len(q.description)}).")
    t = q.type
    uses_options = t in CHOICE_TYPES or t in MATRIX_TYPES
    if q.options and not uses_options:
        raise _bad(q, f"une question « {TYPE_LABELS[t]} » n'a pas d'options.")
    if q.rows and t not in MATRIX_TYPES:
        raise _bad(q, "seules les grilles ont des lignes.")
    if q.max_characters is not None and t not in TEXT_TYPES:
        raise _bad(q, "seules les questions à texte ont un nombre maximal de caractères.")
    if (q.min_choices is not None or q.max_choices is not None) and t not in ("MULTIPLE_CHOICE", "MATRIX_MULTIPLE"):
        raise _bad(q, "seuls les choix multiples ont un nombre minimal ou maximal de choix.")
    if q.scale is not None and t != "RATING":
        raise _bad(q, "seules les notes ont une échelle.")
    update: dict = {}
    if t == "SECTION":
        if q.mandatory:
            raise _bad(q, "un intertitre n'appelle pas de réponse : il ne peut être obligatoire.")
        if q.conditions:
            raise _bad(q, "un intertitre ne peut pas être conditionnel : posez la condition sur ses questions.")
    elif t in TEXT_TYPES:
        limit = LIMIT_MAX_CHARACTERS[t]
        maximum = q.max_characters or DEFAULT_MAX_CHARACTERS[t]
        if maximum > limit:
            raise _bad(q, f"{limit} caractères au plus pour un {TYPE_LABELS[t]}.")
        update["max_characters"] = maximum
    elif t == "RATING":
        update["scale"] = _validate_scale(q)
    elif uses_options:
        update["options"] = _validate_options(q)
        if t in MATRIX_TYPES:
            update["rows"] = _validate_rows(q)
        if t == "RANKING" and any(o.free_text for o in q.options):
            raise _bad(q, "un classement ne propose pas de réponse « Autre » à préciser.")
        if t in MATRIX_TYPES and any(o.free_text for o in q.options):
            raise _bad(q, "une grille ne propose pas de réponse « Autre » à préciser.")
        if t in ("MULTIPLE_CHOICE", "MATRIX_MULTIPLE"):
            n = len(q.options)
            low = q.min_choices or 0
            high = q.max_choices or n
            if high > n:
                raise _bad(q, f"au plus {high} choix, mais seulement {n} options.")
            if low > high:
                raise _bad(q, f"au moins {low} choix et au plus {high} : c'est impossible.")
            update["min_choices"], update["max_choices"] = low, high
    return q.model_copy(update=update)


def _validate_options(q: Question) -> list[Option]:
    if len(q.options) < 2:
        raise _bad(q, "proposez au moins deux options.")
    if len(q.options) > MAX_OPTIONS:
        raise _bad(q, f"{MAX_OPTIONS} options au plus.")
    seen: set[str] = set()
    out = []
    for o in q.options:
        if o.id in seen:
            raise _bad(q, f"deux options portent l'identifiant « {o.id} ».")
        seen.add(o.id)
        label = o.label.strip()
        if not label:
            raise _bad(q, "chaque option a un libellé.")
        if len(label) > MAX_OPTION_LABEL:
            raise _bad(q, f"libellé d'option de {MAX_OPTION_LABEL} caractères au plus.")
        out.append(o.model_copy(update={"label": label}))
    if sum(o.free_text for o in out) > 1:
        raise _bad(q, "une seule option « Autre, précisez » par question.")
    return out


def _validate_rows(q: Question) -> list:
    if not q.rows:
        raise _bad(q, "une grille a au moins une ligne.")
    if len(q.rows) > MAX_ROWS:
        raise _bad(q, f"{MAX_ROWS} lignes au plus.")
    seen: set[str] = set()
    out = []
    for r in q.rows:
        if r.id in seen:
            raise _bad(q, f"deux lignes portent l'identifiant « {r.id} ».")
        seen.add(r.id)
        label = r.label.strip()
        if not label:
            raise _bad(q, "chaque ligne a un libellé.")
        out.append(r.model_copy(update={"label": label}))
    return out


def _validate_scale(q: Question) -> RatingScale:
    scale = q.scale or RatingScale()
    if (scale.min, scale.max) not in ((1, 5), (0, 10)):
        raise _bad(q, "l'échelle va de 1 à 5 ou de 0 à 10.")
    seen: set[int] = set()
    labels = []
    for item in scale.labels:
        if not scale.min <= item.value <= scale.max:
            raise _bad(q, f"le libellé « {item.label} » est hors de l'échelle ({scale.min} à {scale.max}).")
        if item.value in seen:
            raise _bad(q, f"deux libellés pour la note {item.value}.")
        seen.add(item.value)
        if not item.label.strip():
            raise _bad(q, f"libellé vide pour la note {item.value}.")
        labels.append(item.model_copy(update={"label": item.label.strip()}))
    return scale.model_copy(update={"labels": sorted(labels, key=lambda s: s.value)})


def _validate_conditions(q: Question, earlier: list[Question]) -> None:
    """A condition refers to a question asked before this one (so answering in order never meets a condition on
    something still to come), of a kind with few known answers, with one of those answers as value."""
    before = {e.id: e for e in earlier}
    for c in q.conditions:
        source = before.get(c.question_id)
        if source is None:
            raise _bad(q, f"la condition doit porter sur une question posée avant celle-ci (« {c.question_id} » "
                          "ne l'est pas).")
        if source.type not in CONDITION_SOURCES:
            raise _bad(q, f"une condition porte sur un choix, un oui / non ou une note, pas sur un "
                          f"{TYPE_LABELS[source.type]}.")
        if source.type == "RATING":
            scale = source.scale
            if not (c.value.isdigit() and scale.min <= int(c.value) <= scale.max):
                raise _bad(q, f"la condition attend une note de {scale.min} à {scale.max}.")
        elif c.value not in {o.id for o in options_of(source)}:
            raise _bad(q, f"la condition attend une des options de la question {source.position}.")


# -- editing the form -------------------------------------------------------------------------------
def insert_question(form: list[Question], question: QuestionInput, new_id: str) -> list[Question]:
    """The form with `question` at its position (at the end without one), the others shifted, validated."""
    qid = question.id or new_id
    if any(q.id == qid for q in form):
        raise BadInput(f"Une question porte déjà l'identifiant « {qid} ».", qid)
    at = question.position if question.position is not None else len(form) + 1
    at = max(1, min(at, len(form) + 1))
    ordered = sorted(form, key=lambda q: q.position)
    ordered.insert(at - 1, Question(**{**question.model_dump(), "id": qid, "position": at}))
    return validate_form([q.model_copy(update={"position": i}) for i, q in enumerate(ordered, start=1)])


def replace_question(form: list[Question], question: Question) -> list[Question]:
    """The form with one question replaced (same id), moved to its new position, validated."""
    if not any(q.id == question.id for q in form):
        raise BadInput(f"Aucune question « {question.id} » dans ce formulaire.", question.id)
    others = [q for q in sorted(form, key=lambda q: q.position) if q.id != question.id]
    at = max(1, min(question.position, len(others) + 1))
    others.insert(at - 1, question)
    return validate_form([q.model_copy(update={"position": i}) for i, q in enumerate(others, start=1)])


def remove_question(form: list[Question], question_id: str) -> list[Question]:
    """The form without a question; refused while another question's condition depends on it."""
    if not any(q.id == question_id for q in form):
        raise BadInput(f"Aucune question « {question_id} » dans ce formulaire.", question_id)
    for q in form:
        if any(c.question_id == question_id for c in q.conditions):
            raise BadInput(f"{question_name(q)} dépend de cette question : retirez d'abord sa condition.", question_id)
    rest = [q for q in sorted(form, key=lambda q: q.position) if q.id != question_id]
    return validate_form([q.model_copy(update={"position": i}) for i, q in enumerate(rest, start=1)])


def reorder_questions(form: list[Question], question_ids: list[str]) -> list[Question]:
    """The form in a new order (every id once); conditions must still look back, else BadInput."""
    if sorted(question_ids) != sorted(q.id for q in form) or len(set(question_ids)) != len(question_ids):
        raise BadInput("Donnez chaque question du formulaire une fois, dans le nouvel ordre.", "question_ids")
    by_id = {q.id: q for q in form}
    return validate_form([by_id[qid].model_copy(update={"position": i}) for i, qid in enumerate(question_ids, 1)])


def check_form_ready(form: list[Question]) -> None:
    """A survey or consultation is scheduled with at least one question to answer."""
    if not any(q.type != "SECTION" for q in form):
        raise BadInput("Le formulaire n'a aucune question : ajoutez-en avant de programmer.", "questions")


# -- display conditions -----------------------------------------------------------------------------
def _values(answer: Answer | None) -> set[str] | None:
    if answer is None:
        return None
    if answer.rating is not None:
        return {str(answer.rating)}
    return set(answer.choices)


def condition_holds(operator: str, value: str, answer: Answer | None) -> bool:
    """EQUALS: the earlier answer includes `value`; DIFFERS: it was answered and does not. An unanswered (or
    hidden) earlier question satisfies neither, as in Decidim: what was not asked hides what depends on it."""
    values = _values(answer)
    if values is None:
        return False
    return value in values if operator == "EQUALS" else value not in values


def visible_questions(form: list[Question], answers: dict[str, Answer]) -> set[str]:
    """Ids of the questions shown given these answers, in form order: a question shows when every condition holds
    on the answer of a question that was itself shown (answers to hidden questions do not count)."""
    shown: set[str] = set()
    for q in sorted(form, key=lambda q: q.position):
        if all(condition_holds(c.operator, c.value, answers.get(c.question_id) if c.question_id in shown else None)
               for c in q.conditions):
            shown.add(q.id)
    return shown


# -- responses --------------------------------------------------------------------------------------
def _empty(a: Answer) -> bool:
    return (not (a.text or "").strip() and not a.choices and a.rating is None and not (a.other_text or "").strip()
            and not any(r.choices for r in a.rows))


def validate_response(form: list[Question], answers: list[Answer], *, submit: bool) -> list[Answer]:
    """The answers to store, normalised (stripped texts, choices in the form's order except rankings, matrix rows
    in the form's order, empty answers dropped), in the form's order.

    A draft (`submit=False`) is checked answer by answer but may be incomplete, and may keep answers to questions
    its other answers now hide (the citizen may change his mind back). A submission must also answer every
    mandatory question shown, and nothing hidden. Each refusal is a BadInput whose field is the question id."""
    by_id = {q.id: q for q in form}
    given: dict[str, Answer] = {}
    for a in answers:
        q = by_id.get(a.question_id)
        if q is None:
            raise BadInput(f"La question « {a.question_id} » n'existe pas dans ce formulaire.", a.question_id)
        if a.question_id in given:
            raise _bad(q, "une seule réponse par question.")
        if _empty(a):
            continue
        given[a.question_id] = _validate_answer(q, a)
    shown = visible_questions(form, given)
    if submit:
        for q in sorted(form, key=lambda q: q.position):
            if q.id in given and q.id not in shown:
                raise _bad(q, "cette question ne vous est pas posée compte tenu de vos réponses précédentes ; "
                              "retirez cette réponse.")
            if q.mandatory and q.id in shown and q.id not in given:
                raise _bad(q, "réponse obligatoire.")
    return [given[q.id] for q in sorted(form, key=lambda q: q.position) if q.id in given]


def _only(q: Question, a: Answer, *fields: str) -> None:
    """Refuse parts of an answer its question does not take (a rating given to a text question…)."""
    present = {"text": bool((a.text or "").strip()), "choices": bool(a.choices), "rating": a.rating is not None,
               "rows": bool(a.rows), "other_text": bool((a.other_text or "").strip())}
    extra = [f for f, there in present.items() if there and f not in fields]
    if extra:
        expected = {"SHORT_TEXT": "un texte", "LONG_TEXT": "un texte", "RATING": "une note",
                    "MATRIX_SINGLE": "un choix par ligne", "MATRIX_MULTIPLE": "des choix par ligne",
                    "YES_NO": "oui ou non", "SECTION": "aucune réponse"}.get(q.type, "un ou des choix")
        raise _bad(q, f"réponse attendue : {expected}.")


def _validate_answer(q: Question, a: Answer) -> Answer:
    t = q.type
    if t == "SECTION":
        raise _bad(q, "un intertitre n'appelle pas de réponse.")
    if t in TEXT_TYPES:
        _only(q, a, "text")
        text = a.text.strip().replace("\x00", "")
        if len(text) > q.max_characters:
            raise _bad(q, f"{q.max_characters} caractères au plus ({len(text)} saisis).")
        return Answer(question_id=q.id, text=text)
    if t == "RATING":
        _only(q, a, "rating")
        if not q.scale.min <= a.rating <= q.scale.max:
            raise _bad(q, f"donnez une note de {q.scale.min} à {q.scale.max}.")
        return Answer(question_id=q.id, rating=a.rating)
    if t in MATRIX_TYPES:
        _only(q, a, "rows")
        return Answer(question_id=q.id, rows=_validate_matrix(q, a.rows))
    _only(q, a, "choices", "other_text")
    options = options_of(q)
    known = {o.id: o for o in options}
    for choice in a.choices:
        if choice not in known:
            raise _bad(q, f"choix inconnu : « {choice} ».")
    if len(set(a.choices)) != len(a.choices):
        raise _bad(q, "chaque choix une seule fois.")
    n = len(a.choices)
    if t in ("SINGLE_CHOICE", "YES_NO") and n != 1:
        raise _bad(q, f"choisissez une seule réponse ({n} choisies).")
    if t == "MULTIPLE_CHOICE":
        if n < q.min_choices:
            raise _bad(q, f"choisissez au moins {q.min_choices} réponses ({n} choisie{'s' if n > 1 else ''}).")
        if n > q.max_choices:
            raise _bad(q, f"choisissez au plus {q.max_choices} réponses ({n} choisies).")
    if t == "RANKING" and n != len(options):
        raise _bad(q, f"classez les {len(options)} éléments, chacun une fois ({n} classés).")
    other = _other_text(q, a, known)
    choices = list(a.choices) if t == "RANKING" else [o.id for o in options if o.id in set(a.choices)]
    return Answer(question_id=q.id, choices=choices, other_text=other)


def _other_text(q: Question, a: Answer, known: dict[str, Option]) -> str | None:
    """'Other, please say': the text goes with the free-text option, and that option asks for it."""
    free = next((o for o in known.values() if o.free_text), None)
    text = (a.other_text or "").strip()
    chosen = free is not None and free.id in a.choices
    if text and not chosen:
        raise _bad(q, "le texte à préciser ne va qu'avec le choix « " + (free.label if free else "Autre") + " ».")
    if chosen and not text:
        raise _bad(q, f"précisez votre réponse « {free.label} ».")
    if len(text) > MAX_OTHER_TEXT:
        raise _bad(q, f"précision de {MAX_OTHER_TEXT} caractères au plus ({len(text)} saisis).")
    return text or None


def _validate_matrix(q: Question, rows: list[MatrixAnswer]) -> list[MatrixAnswer]:
    known_rows = {r.id: r for r in q.rows}
    known_options = {o.id for o in q.options}
    given: dict[str, list[str]] = {}
    for row in rows:
        r = known_rows.get(row.row_id)
        if r is None:
            raise _bad(q, f"ligne inconnue : « {row.row_id} ».")
        if row.row_id in given:
            raise _bad(q, f"une seule réponse pour la ligne « {r.label} ».")
        for choice in row.choices:
            if choice not in known_options:
                raise _bad(q, f"choix inconnu sur la ligne « {r.label} » : « {choice} ».")
        if len(set(row.choices)) != len(row.choices):
            raise _bad(q, f"chaque choix une seule fois sur la ligne « {r.label} ».")
        n = len(row.choices)
        if n == 0:
            continue
        if q.type == "MATRIX_SINGLE" and n > 1:
            raise _bad(q, f"un seul choix sur la ligne « {r.label} » ({n} choisis).")
        if q.type == "MATRIX_MULTIPLE":
            if n > q.max_choices:
                raise _bad(q, f"au plus {q.max_choices} choix sur la ligne « {r.label} » ({n} choisis).")
            if n < q.min_choices:
                raise _bad(q, f"au moins {q.min_choices} choix sur la ligne « {r.label} » ({n} choisis).")
        given[row.row_id] = [o.id for o in q.options if o.id in set(row.choices)]
    if q.mandatory and given:
        missing = [r for r in q.rows if r.id not in given]
        if missing:
            raise _bad(q, f"répondez à chaque ligne : « {missing[0].label} » manque.")
    return [MatrixAnswer(row_id=r.id, choices=given[r.id]) for r in q.rows if r.id in given]
