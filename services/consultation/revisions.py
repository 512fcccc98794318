"""Pure rules of a form once it has responses: which label edits only fix typos (so that answers already given still
answer the same question), the revision that records them, and the form with a revision applied; no I/O."""
from __future__ import annotations

import difflib
import re
import unicodedata
from datetime import datetime

from contracts.consultation import LabelChange, Question, Revision
from contracts.errors import BadInput, Conflict
from services.consultation.questions import question_name

NEGATIONS = frozenset({"ne", "n", "pas", "non", "jamais", "aucun", "aucune", "sans", "ni", "plus", "rien"})
# A prefix that turns a word into its contrary ('satisfait' / 'insatisfait', 'utile' / 'inutile').
CONTRARY_PREFIXES = ("in", "im", "il", "ir", "de", "des", "dis", "mal", "mes", "non")


def _fold(text: str) -> str:
    """Accents, case, punctuation and spacing removed: what a reader would call the same words."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", ascii_text).split())


def _levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def is_typo_fix(before: str, after: str) -> bool:
    """Whether changing a label from `before` to `after` only fixes its spelling, so that answers already given
    still answer the same question. Accents, case, spacing and punctuation may change freely; otherwise a few
    characters (one per ten, one at least, eight at most), never a number, never a negation or a prefix that turns
    a word into its contrary ('satisfait' -> 'insatisfait' is 2 characters, and a different question)."""
    if before == after:
        return True
    if re.findall(r"\d+", before) != re.findall(r"\d+", after):
        return False
    fb, fa = _fold(before), _fold(after)
    if fb == fa:
        return True
    if _levenshtein(before.strip(), after.strip()) > max(1, min(8, len(before.strip()) // 10)):
        return False
    wb, wa = fb.split(), fa.split()
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, wb, wa, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        removed, added = wb[i1:i2], wa[j1:j2]
        if NEGATIONS & (set(removed) ^ set(added)):
            return False
        for old, new in zip(removed, added):
            longer, shorter = (old, new) if len(old) > len(new) else (new, old)
            if longer.endswith(shorter) and longer[: len(longer) - len(shorter)] in CONTRARY_PREFIXES:
                return False
    return True


def _labels(q: Question) -> dict[str, str]:
    """Every text of a question a person reads, by path."""
    out = {"label": q.label, "description": q.description}
    out.update({f"options.{o.id}": o.label for o in q.options})
    out.update({f"rows.{r.id}": r.label for r in q.rows})
    if q.scale is not None:
        out.update({f"scale.{s.value}": s.label for s in q.scale.labels})
    return out


def _structure(q: Question) -> dict:
    """A question with its texts blanked: what answers depend on."""
    data = q.model_dump()
    data.update(label="", description="")
    for item in data["options"] + data["rows"]:
        item["label"] = ""
    if data["scale"] is not None:
        for item in data["scale"]["labels"]:
            item["label"] = ""
    return data


def typo_revision(form: list[Question], edited: Question, *, at: datetime, actor: str | None) -> Revision:
    """Once a response exists: the label changes of `edited` against its current version, when they are all typo
    fixes; Conflict otherwise (structure changed, or a change of meaning). The revision is what gets recorded."""
    current = next((q for q in form if q.id == edited.id), None)
    if current is None:
        raise BadInput(f"Aucune question « {edited.id} » dans ce formulaire.", edited.id)
    if _structure(current) != _structure(_strip_labels(edited)):
        raise Conflict(f"{question_name(current)} : des réponses existent déjà ; seules les fautes de frappe des libellés "
                       "peuvent encore être corrigées.", current.id)
    before, after = _labels(current), _labels(_strip_labels(edited))
    changes = []
    for path, old in before.items():
        new = after[path]
        if new == old:
            continue
        if not new or not is_typo_fix(old, new):
            raise Conflict(f"{question_name(current)} : « {old} » → « {new} » n'est pas une faute de frappe ; des réponses "
                           "existent déjà, le sens d'une question ne change plus.", current.id)
        changes.append(LabelChange(question_id=current.id, path=path, before=old, after=new))
    return Revision(at=at, actor=actor, changes=changes)


def _strip_labels(q: Question) -> Question:
    update: dict = {"label": q.label.strip(), "description": q.description.strip(),
                    "options": [o.model_copy(update={"label": o.label.strip()}) for o in q.options],
                    "rows": [r.model_copy(update={"label": r.label.strip()}) for r in q.rows]}
    if q.scale is not None:
        update["scale"] = q.scale.model_copy(update={"labels": [s.model_copy(update={"label": s.label.strip()})
                                                                for s in q.scale.labels]})
    return q.model_copy(update=update)


def apply_revision(form: list[Question], revision: Revision) -> list[Question]:
    """The form with a revision's label changes applied (the stored form after a typo fix)."""
    out = []
    for q in form:
        changes = {c.path: c.after for c in revision.changes if c.question_id == q.id}
        if not changes:
            out.append(q)
            continue
        update: dict = {k: changes[k] for k in ("label", "description") if k in changes}
        update["options"] = [o.model_copy(update={"label": changes.get(f"options.{o.id}", o.label)}) for o in q.options]
        update["rows"] = [r.model_copy(update={"label": changes.get(f"rows.{r.id}", r.label)}) for r in q.rows]
        if q.scale is not None:
            update["scale"] = q.scale.model_copy(update={"labels": [
                s.model_copy(update={"label": changes.get(f"scale.{s.value}", s.label)}) for s in q.scale.labels]})
        out.append(q.model_copy(update=update))
    return out
