"""The agents' console for consultations: the list by state; create and edit a survey, a consultation (title,
texts, kind, communes, audience, window) or a participatory budget (sections, voting rule, phases); a form's
questions (add one of a type with its options, move it, remove it, while a draft); schedule, open, close, publish the
results, archive, start a budget's next phase; a panel's members; a budget's projects (moderate, assess and price,
put on the ballot); voters checked in at a booth or by letter; paper sheets' totals entered twice by two agents, their
mismatches shown. Every change is a GraphQL mutation of
`operations.graphql`."""
from __future__ import annotations

import re
import secrets

from gateway.web.core import AGENTS, Ctx, FormErrors, PageError, nav, page
from gateway.web.pages.consultations import KIND_LABELS, PHASE_LABELS, STATE_LABELS
from gateway.web.pages.citizen import clock
from gateway.web.pages.public import parse_day
from gateway.web.render import amount, instant
from gateway.web.survey import condition_notes

nav("Consultations", "/console/consultations", AGENTS, area="console", order=40)

STATES = ["DRAFT", "SCHEDULED", "OPEN", "CLOSED", "RESULTS_PUBLISHED", "ARCHIVED"]
FORM_KINDS = [("SURVEY", "Enquête"), ("CONSULTATION", "Consultation"), ("BUDGET", "Budget participatif")]
PHASES = ["INFORMING", "ACCEPTING", "REVIEWING", "SELECTING", "VALUATING", "PUBLISHING_PRICES", "BALLOTING",
          "REVIEWING_BALLOTS", "FINISHED"]
RULES = [("KNAPSACK", "Par enveloppe : les projets choisis tiennent dans le montant de la section"),
         ("APPROVAL", "Par approbation : un nombre de projets au plus")]
AUDIENCES = [("PUBLIC", "Tous les habitants connectés"), ("PANEL", "Un panel d'habitants (liste importée)")]
QUESTION_TYPES = [("SINGLE_CHOICE", "Choix unique"), ("MULTIPLE_CHOICE", "Choix multiples"), ("YES_NO", "Oui ou non"),
                  ("SHORT_TEXT", "Texte court"), ("LONG_TEXT", "Texte long"), ("RATING", "Note de 1 à 5"),
                  ("RANKING", "Classement"), ("MATRIX_SINGLE", "Grille (un choix par ligne)"),
                  ("MATRIX_MULTIPLE", "Grille (plusieurs choix par ligne)"), ("SECTION", "Titre de partie")]
WITH_OPTIONS = {"SINGLE_CHOICE", "MULTIPLE_CHOICE", "RANKING", "MATRIX_SINGLE", "MATRIX_MULTIPLE"}
WITH_ROWS = {"MATRIX_SINGLE", "MATRIX_MULTIPLE"}
YES_NO = [{"id": "yes", "label": "Oui"}, {"id": "no", "label": "Non"}]  # a yes-or-no question's answers, as options
# What an agent may do in each state: (form value, button, operation).
ACTIONS = {
    "DRAFT": [("schedule", "Programmer", "ScheduleConsultation")],
    "SCHEDULED": [("open", "Ouvrir maintenant", "OpenConsultation"),
                  ("unschedule", "Remettre en brouillon", "UnscheduleConsultation")],
    "OPEN": [("close", "Clore maintenant", "CloseConsultation")],
    "CLOSED": [("publish", "Publier les résultats", "PublishConsultationResults"),
               ("archive", "Archiver", "ArchiveConsultation")],
    "RESULTS_PUBLISHED": [("archive", "Archiver", "ArchiveConsultation")],
}
DONE = {"schedule": "Consultation programmée.", "open": "Consultation ouverte.", "unschedule": "Remise en brouillon.",
        "close": "Consultation close.", "publish": "Résultats publiés.", "archive": "Consultation archivée."}
CONSULTATION_FIELDS = {"title": "titre", "summary": "resume", "description": "description", "opens_at": "ouverture",
                       "closes_at": "cloture", "scope": "communes", "audience": "public", "kind": "type",
                       "budget": "type", "budget.headings": "sections", "budget.rule": "regle",
                       "budget.phases": "phases", "budget.max_headings_per_voter": "sections_par_votant"}
IDENTIFIER = re.compile(r"[A-Za-z0-9_-]{1,40}")  # a booth's code and a sheet's number, as the API takes them
ENTRY_STATUS = {"AWAITING_SECOND_ENTRY": ("En attente de la seconde saisie", ""), "MATCHED": ("Concordante", "ok"),
                "MISMATCH": ("Discordante : à ressaisir", "bad")}


def counted(n: int, word: str) -> str:
    """« 1 membre », « 3 membres », « 2 déjà membres »."""
    return f"{n} {word}{'s' if n > 1 else ''}"


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def wall_time(day: str, hour: str, name: str, label: str, errors: FormErrors, default: str = "00:00") -> str | None:
    """A date and a time typed in Paris time, as the naive date-time the API reads as Paris wall time; without a
    time, `default` (a closing day without one closes at its end)."""
    if not day:
        return None
    d, hh_mm = parse_day(day), clock(hour or default)
    if d is None or hh_mm is None:
        errors.add(name, f"{label} : indiquez une date comme 06/03/2027 et une heure comme 18:00.")
        return None
    return f"{d.isoformat()}T{hh_mm}:00"


def cents(text: str) -> int | None:
    """« 80 000 », « 80000,50 », « 1 200.5 € » in cents; None when it is not an amount."""
    text = re.sub(r"[\s\u202f\u00a0€]", "", text).replace(",", ".")
    if not re.fullmatch(r"\d+(\.\d{1,2})?", text):
        return None
    whole, _, part = text.partition(".")
    return int(whole) * 100 + int((part + "00")[:2])


def read_sections(text: str, communes: list[dict], kept: list[dict], errors: FormErrors) -> list[dict]:
    """A budget's headings, one a line: « Nom ; montant en euros ; communes séparées par des virgules » (names or
    codes; none: the whole territory). The n-th line keeps the id of the n-th heading already there."""
    known = {x["slug"]: x["slug"] for x in communes} | {x["name"].lower(): x["slug"] for x in communes}
    out = []
    for n, line in enumerate(lines(text), 1):
        name, _, rest = (part.strip() for part in line.partition(";"))
        money, _, places = (part.strip() for part in rest.partition(";"))
        amount_cents = cents(money)
        if not name or amount_cents is None:
            errors.add("sections", f"Ligne {n} : écrivez « Nom ; montant en euros ; communes », par exemple "
                                   "« Labège ; 80 000 ; Labège ».")
            return out
        slugs = []
        for place in (p.strip() for p in places.split(",") if p.strip()):
            if place.lower() not in known:
                errors.add("sections", f"Ligne {n} : « {place} » n'est pas une commune du Sicoval.")
                return out
            slugs.append(known[place.lower()])
        out.append({"id": kept[n - 1]["id"] if n <= len(kept) else f"s{n}", "name": name, "amountCents": amount_cents,
                    "communes": slugs})
    if not out:
        errors.add("sections", "Sections : une au moins, une par ligne.")
    return out


def read_phases(ctx: Ctx, errors: FormErrors) -> list[dict]:
    """The phases given a first day (Paris midnight), each ending when the next given one begins."""
    starts = []
    for kind in PHASES:
        text = ctx.form.text(f"phase-{kind}")
        if text:
            day = parse_day(text)
            if day is None:
                errors.add(f"phase-{kind}", f"{PHASE_LABELS[kind].capitalize()} : une date comme 06/03/2027.")
                continue
            starts.append((kind, f"{day.isoformat()}T00:00:00"))
    for kind in ("BALLOTING", "FINISHED"):
        if not ctx.form.text(f"phase-{kind}"):
            errors.add(f"phase-{kind}", f"{PHASE_LABELS[kind].capitalize()} : date de début obligatoire.")
    return [{"kind": kind, "startsAt": start, "endsAt": starts[i + 1][1] if i + 1 < len(starts) else None}
            for i, (kind, start) in enumerate(starts)]


def budget_values(b: dict | None, communes: list[dict]) -> dict:
    """The budget's part of the form: its headings as lines (as an agent types them), its rule, its phases' first
    days."""
    if b is None:
        return {"sections": "", "regle": "KNAPSACK", "projets_par_votant": "", "sections_par_votant": "1",
                **{f"phase-{k}": "" for k in PHASES}}
    names = {x["slug"]: x["name"] for x in communes}
    return {"sections": "\n".join(f"{h['name']} ; {amount(h['amountCents'])} ; "
                                  f"{', '.join(names.get(s, s) for s in h['communes'])}" for h in b["headings"]),
            "regle": b["rule"]["kind"], "projets_par_votant": str(b["rule"].get("maxProjects") or ""),
            "sections_par_votant": str(b["maxHeadingsPerVoter"]),
            **{f"phase-{p['kind']}": f"{instant(p['startsAt']):%Y-%m-%d}" if p["enabled"] and p["startsAt"] else ""
               for p in b["phases"]}}


def form_values(c: dict | None) -> dict:
    """The consultation form's values, from a consultation (or empty)."""
    if c is None:
        return {"titre": "", "type": "SURVEY", "resume": "", "description": "", "communes": [], "public": "PUBLIC",
                "secret": "", "ouverture": "", "ouverture_heure": "", "cloture": "", "cloture_heure": "",
                **budget_values(None, [])}
    opens, closes = instant(c.get("opensAt")), instant(c.get("closesAt"))
    return {"titre": c["title"], "type": c["kind"], "resume": c["summary"], "description": c["description"],
            "communes": c["scope"]["communes"], "public": c["audience"], "secret": "oui" if c["secret"] else "",
            "ouverture": f"{opens:%Y-%m-%d}" if opens else "", "ouverture_heure": f"{opens:%H:%M}" if opens else "",
            "cloture": f"{closes:%Y-%m-%d}" if closes else "", "cloture_heure": f"{closes:%H:%M}" if closes else "",
            **budget_values(c.get("budget"), c["communes"])}


def read_consultation(ctx: Ctx, errors: FormErrors, communes: list[dict],
                      kept: dict | None = None) -> tuple[dict, dict]:
    """The posted form: its values (shown back) and the ConsultationInput. `kept`: the budget edited, if any."""
    v = {k: ctx.form.text(k) for k in form_values(None) if k != "communes"}
    v["communes"] = ctx.form.all("communes")
    if not v["titre"]:
        errors.add("titre", "Titre : obligatoire.")
    if v["type"] not in dict(FORM_KINDS):
        errors.add("type", "Choisissez le type de consultation.")
    data = {"title": v["titre"], "kind": v["type"], "summary": v["resume"], "description": v["description"],
            "scope": {"kind": "COMMUNES", "communes": v["communes"]} if v["communes"] else {"kind": "TERRITORY"},
            "audience": v["public"] if v["public"] in dict(AUDIENCES) else "PUBLIC", "secret": v["secret"] == "oui"}
    if v["type"] == "BUDGET":  # its window is its phases'
        data["budget"] = read_budget(ctx, v, communes, (kept or {}).get("headings", []), errors)
    else:
        data["opensAt"] = wall_time(v["ouverture"], v["ouverture_heure"], "ouverture", "Ouverture", errors)
        data["closesAt"] = wall_time(v["cloture"], v["cloture_heure"], "cloture", "Clôture", errors, "23:59")
    return v, data


def read_budget(ctx: Ctx, v: dict, communes: list[dict], kept: list[dict], errors: FormErrors) -> dict:
    rule = {"kind": v["regle"] if v["regle"] in dict(RULES) else "KNAPSACK"}
    if rule["kind"] == "APPROVAL":
        if not v["projets_par_votant"].isdigit():
            errors.add("projets_par_votant", "Projets par votant : un nombre entier (vote par approbation).")
        else:
            rule["maxProjects"] = int(v["projets_par_votant"])
    per_voter = v["sections_par_votant"] or "1"
    if not per_voter.isdigit():
        errors.add("sections_par_votant", "Sections par votant : un nombre entier, 1 le plus souvent.")
    return {"headings": read_sections(v["sections"], communes, kept, errors), "phases": read_phases(ctx, errors),
            "rule": rule, "maxHeadingsPerVoter": int(per_voter) if per_voter.isdigit() else 1}


async def communes(ctx: Ctx) -> list[dict]:
    return (await ctx.data("ConsultationFormChoices"))["communes"]


@page("/console/consultations", roles=AGENTS)
async def consultations(ctx: Ctx):
    result = await ctx.data("Consultations", first=100)
    by_state = {s: [] for s in STATES}
    for e in result["consultations"]["edges"]:
        by_state.setdefault(e["node"]["state"], []).append(e["node"])
    return ctx.render("console_consultations.html", title="Consultations", by_state=by_state, states=STATE_LABELS,
                      kinds=KIND_LABELS, total=result["consultations"]["totalCount"])


@page("/console/consultations/nouvelle", roles=AGENTS, methods=("GET", "POST"))
async def create(ctx: Ctx):
    errors, values, places = FormErrors(), form_values(None), await communes(ctx)
    if ctx.request.method == "POST":
        values, data = read_consultation(ctx, errors, places)
        if not errors:
            result = await ctx.run("CreateConsultation", consultation=data)
            if result.ok:
                cid = result.data["createConsultation"]["id"]
                return ctx.redirect(f"/console/consultations/{cid}", "Brouillon enregistré : ajoutez ses questions.")
            errors = FormErrors.of(result.problems, CONSULTATION_FIELDS)
    return ctx.render("consultation_form.html", title="Nouvelle consultation", values=values, errors=errors,
                      communes=places, kinds=FORM_KINDS, rules=RULES, phases=[(k, PHASE_LABELS[k]) for k in PHASES],
                      audiences=AUDIENCES,
                      action="/console/consultations/nouvelle", back="/console/consultations")


@page("/console/consultations/{id}/modifier", roles=AGENTS, methods=("GET", "POST"))
async def edit(ctx: Ctx):
    cid = ctx.request.path_params["id"]
    c = await consultation(ctx, cid)
    errors, values = FormErrors(), form_values(c)
    if ctx.request.method == "POST":
        values, data = read_consultation(ctx, errors, c["communes"], c["budget"])
        values["type"] = data["kind"] = c["kind"]  # a kind does not change
        if not errors:
            result = await ctx.run("UpdateConsultation", id=cid, consultation=data)
            if result.ok:
                return ctx.redirect(f"/console/consultations/{cid}", "Modifications enregistrées.")
            errors = FormErrors.of(result.problems, CONSULTATION_FIELDS)
    return ctx.render("consultation_form.html", title=f"Modifier « {c['title']} »", values=values, errors=errors,
                      communes=c["communes"], kinds=[k for k in FORM_KINDS if k[0] == c["kind"]], rules=RULES,
                      phases=[(k, PHASE_LABELS[k]) for k in PHASES], audiences=AUDIENCES,
                      action=f"/console/consultations/{cid}/modifier", back=f"/console/consultations/{cid}")


async def consultation(ctx: Ctx, cid: str) -> dict:
    data = await ctx.data("ConsultationForAgent", id=cid)
    if data["consultation"] is None:
        raise PageError(404, "Consultation introuvable", "Cette consultation n'existe pas.")
    return dict(data["consultation"], communes=data["communes"])


def read_question(ctx: Ctx, position: int, errors: FormErrors) -> tuple[dict, dict]:
    v = {k: ctx.form.text(k) for k in ("q_type", "q_libelle", "q_aide", "q_options", "q_lignes", "q_max")}
    v["q_obligatoire"] = ctx.form.text("q_obligatoire")
    kind = v["q_type"]
    if kind not in dict(QUESTION_TYPES):
        errors.add("q_type", "Choisissez le type de la question.")
    if not v["q_libelle"]:
        errors.add("q_libelle", "Libellé : obligatoire.")
    q = {"id": f"q{secrets.token_hex(3)}", "type": kind, "label": v["q_libelle"], "description": v["q_aide"],
         "mandatory": v["q_obligatoire"] == "oui" and kind != "SECTION", "position": position}
    if kind in WITH_OPTIONS:
        options = lines(v["q_options"])
        if len(options) < 2:
            errors.add("q_options", "Options : deux au moins, une par ligne.")
        q["options"] = [{"id": f"o{i}", "label": label} for i, label in enumerate(options, 1)]
    if kind in WITH_ROWS:
        rows = lines(v["q_lignes"])
        if not rows:
            errors.add("q_lignes", "Lignes de la grille : une au moins, une par ligne.")
        q["rows"] = [{"id": f"l{i}", "label": label} for i, label in enumerate(rows, 1)]
    if kind == "MULTIPLE_CHOICE":
        if v["q_max"] and not v["q_max"].isdigit():
            errors.add("q_max", "Nombre de choix au plus : un nombre entier.")
        q["maxChoices"] = int(v["q_max"]) if v["q_max"].isdigit() else len(q.get("options", [])) or None
    if kind == "RATING":
        q["scale"] = {"min": 1, "max": 5}
    return v, q


async def change_form(ctx: Ctx, c: dict, errors: FormErrors, shown: dict) -> str | None:
    """A change of the questions (add, move, remove); the message to show when it is done. `shown`: the new
    question's form, updated with what was posted."""
    op, cid, ids = ctx.form.get("op"), c["id"], [q["id"] for q in c["questions"]]
    if op == "ajouter":
        values, question = read_question(ctx, len(ids) + 1, errors)
        shown.update(values)
        if errors:
            return None
        result = await ctx.run("AddQuestion", consultationId=cid, question=question)
        fields = {question["id"]: "q_libelle", "question.label": "q_libelle", "question.options": "q_options",
                  "question.rows": "q_lignes", "question.max_choices": "q_max", "question.type": "q_type"}
        done = "Question ajoutée."
    elif op in ("monter", "descendre", "retirer"):
        qid = ctx.form.get("question")
        if qid not in ids:
            errors.add(None, "Cette question n'est plus dans le formulaire : rechargez la page.")
            return None
        if op == "retirer":
            result, done = await ctx.run("RemoveQuestion", consultationId=cid, questionId=qid), "Question retirée."
        else:
            i = ids.index(qid)
            j = i - 1 if op == "monter" else i + 1
            if not 0 <= j < len(ids):
                return "La question est déjà à cette place."
            ids[i], ids[j] = ids[j], ids[i]
            result, done = await ctx.run("ReorderQuestions", consultationId=cid, questionIds=ids), "Question déplacée."
        fields = {}
    else:
        return None
    if result.ok:
        return done
    for name, message in FormErrors.of(result.problems, fields).summary():
        errors.add(name, message)
    return None


def next_phase(budget: dict) -> str | None:
    kinds = [p["kind"] for p in budget["phases"] if p["enabled"]]
    current = budget["currentPhase"]
    if current is None:
        return kinds[0] if kinds else None
    i = kinds.index(current) if current in kinds else -1
    return kinds[i + 1] if i + 1 < len(kinds) else None


@page("/console/consultations/{id}", roles=AGENTS, methods=("GET", "POST"))
async def manage(ctx: Ctx):
    cid = ctx.request.path_params["id"]
    c = await consultation(ctx, cid)
    errors = FormErrors()
    shown = {"q_type": "SINGLE_CHOICE", "q_libelle": "", "q_aide": "", "q_options": "", "q_lignes": "",
                           "q_max": "", "q_obligatoire": ""}
    if ctx.request.method == "POST":
        action = ctx.form.get("action")
        done = None
        if action in DONE:
            op = next((o for a, _, o in ACTIONS.get(c["state"], []) if a == action), None)
            if op is None:
                errors.add(None, f"Impossible dans l'état « {STATE_LABELS[c['state']].lower()} » : rechargez la page.")
            else:
                result = await ctx.run(op, id=cid)
                done = DONE[action] if result.ok else None
                for p in result.problems:
                    errors.add(None, p.message)
        elif action == "panel" and c["audience"] == "PANEL":
            emails = [e for e in re.split(r"[\s,;]+", ctx.form.get("adresses", "")) if e]
            result = await ctx.run("ImportPanelMembers", consultationId=cid, emails=emails,
                                   replace=ctx.form.get("remplacer") == "oui")
            if result.ok:
                r = result.data["importPanelMembers"]
                done = (f"Panel : {counted(r['members'], 'membre')} ({counted(r['added'], 'ajouté')}, "
                        f"{counted(r['alreadyMembers'], 'déjà membre')}, {counted(r['removed'], 'retiré')})."
                        + (f" À corriger : {', '.join(r['invalid'])}." if r["invalid"] else ""))
            for p in result.problems:
                errors.add("adresses", p.message)
        elif action == "phase" and c["budget"]:
            to = ctx.form.get("vers")
            result = await ctx.run("AdvanceBudgetPhase", budgetId=cid, to=to)
            done = f"Phase « {PHASE_LABELS.get(to, to)} » commencée." if result.ok else None
            for p in result.problems:
                errors.add(None, p.message)
        else:
            done = await change_form(ctx, c, errors, shown)
        if done and not errors:
            return ctx.redirect(f"/console/consultations/{cid}", done)
    editable = c["kind"] != "BUDGET" and c["state"] == "DRAFT" and not c["questionsLocked"]
    names = {x["slug"]: x["name"] for x in c["communes"]}
    upcoming = next_phase(c["budget"]) if c["budget"] and c["state"] not in ("DRAFT", "ARCHIVED") else None
    return ctx.render("consultation_manage.html", title=c["title"], c=c, errors=errors, editable=editable,
                      actions=ACTIONS.get(c["state"], []), states=STATE_LABELS, kinds=KIND_LABELS,
                      phases=PHASE_LABELS, upcoming=upcoming, communes=names, types=QUESTION_TYPES,
                      type_labels=dict(QUESTION_TYPES), q=shown, notes=condition_notes(c["questions"]),
                      back="/console/consultations")


# -- paper sheets, entered twice ------------------------------------------------------------------------------
def totals_fields(c: dict, projects: list[dict]) -> list[tuple[str, list[tuple[str, str]]]]:
    """The numbers a sheet of totals carries, by group: (legend, [(field name, label)])."""
    if c["kind"] == "BUDGET":
        return [(h["name"], [(f"v-{p['id']}", p["title"]) for p in projects if p["headingId"] == h["id"]])
                for h in c["budget"]["headings"]]
    groups = []
    for q in c["questions"]:
        if q["type"] in ("SINGLE_CHOICE", "MULTIPLE_CHOICE"):
            groups.append((q["label"], [(f"o-{q['id']}-{o['id']}", o["label"]) for o in q["options"]]))
        elif q["type"] == "YES_NO":
            groups.append((q["label"], [(f"o-{q['id']}-yes", "Oui"), (f"o-{q['id']}-no", "Non")]))
    return groups


def count(ctx: Ctx, name: str, label: str, errors: FormErrors) -> int:
    text = ctx.form.text(name) or "0"
    if not text.isdigit():
        errors.add(name, f"{label} : un nombre entier, 0 s'il n'y en a pas.")
        return 0
    return int(text)


async def check_in(ctx: Ctx, cid: str, errors: FormErrors) -> str | None:
    """A voter who voted at a booth or by letter: recorded, so that he cannot vote online too."""
    origin = "LETTER" if ctx.form.get("origine") == "LETTER" else "BOOTH"
    booth = ctx.form.text("emargement_bureau")
    if origin == "BOOTH" and not IDENTIFIER.fullmatch(booth):
        errors.add("emargement_bureau", "Bureau de vote : son code, en lettres sans accents, chiffres et tirets.")
        return None
    result = await ctx.run("CheckInVoter", consultationId=cid, boothId=booth or None, origin=origin,
                           email=ctx.form.text("votant_courriel") or None,
                           phone=ctx.form.text("votant_telephone") or None)
    if result.ok:
        return "Émargement enregistré : cette personne ne peut plus voter en ligne."
    for name, message in FormErrors.of(result.problems, {"email": "votant_courriel", "phone": "votant_telephone",
                                                         "booth_id": "emargement_bureau"}).summary():
        errors.add(name, message)
    return None


def sheet_of(ctx: Ctx, booth_name: str, sheet_name: str, errors: FormErrors) -> tuple[str, str]:
    """A paper sheet's booth code and number, as written on it."""
    booth, sheet = ctx.form.text(booth_name), ctx.form.text(sheet_name)
    if not IDENTIFIER.fullmatch(booth):
        errors.add(booth_name, "Bureau de vote : son code, en lettres sans accents, chiffres et tirets "
                               "(par exemple labege-mairie).")
    if not IDENTIFIER.fullmatch(sheet):
        errors.add(sheet_name, "Numéro de feuille : le numéro écrit sur la feuille (chiffres, lettres, tirets).")
    return booth, sheet


def read_ballots(text: str, projects: list[dict], errors: FormErrors) -> list[dict]:
    """A budget's paper ballots, one a line as an agent reads them: the numbers of the projects ticked (as the
    page numbers the projects on the ballot), or « blanc », or « nul »."""
    ballots, problems = [], []
    for n, line in enumerate(text.splitlines(), 1):
        words = [w for w in re.split(r"[\s,;]+", line.strip().lower()) if w]
        if not words:
            continue
        if words in (["blanc"], ["nul"]):
            ballots.append({"blank": True} if words == ["blanc"] else {"null": True})
            continue
        wrong = [w for w in words if not w.isdigit() or not 1 <= int(w) <= len(projects)]
        if wrong:
            problems.append(f"ligne {n} : « {wrong[0]} » n'est pas un numéro de projet (de 1 à {len(projects)})")
            continue
        by_heading: dict[str, list[str]] = {}
        for w in dict.fromkeys(words):
            p = projects[int(w) - 1]
            by_heading.setdefault(p["headingId"], []).append(p["id"])
        ballots.append({"headings": [{"headingId": h, "projectIds": ids} for h, ids in by_heading.items()]})
    if problems:
        errors.add("b_bulletins", "Bulletins : " + " ; ".join(problems) + ".")
    elif not ballots:
        errors.add("b_bulletins", "Bulletins : un par ligne, au moins un.")
    return ballots


@page("/console/consultations/{id}/papier", roles=AGENTS, methods=("GET", "POST"))
async def paper(ctx: Ctx):
    cid = ctx.request.path_params["id"]
    data = await ctx.data("PaperEntries", id=cid)
    c = data["consultation"]
    if c is None:
        raise PageError(404, "Consultation introuvable", "Cette consultation n'existe pas.")
    projects = []
    if c["kind"] == "BUDGET":
        projects = [e["node"] for e in (await ctx.data("BudgetBallot", id=cid))["projects"]["edges"]]
    groups = totals_fields(c, projects)
    errors, values = FormErrors(), {}
    if ctx.request.method == "POST" and ctx.form.get("op") == "emargement":
        values = {k: v for k, v in ctx.form.items() if k != "csrf"}
        done = await check_in(ctx, cid, errors)
        if done:
            return ctx.redirect(f"/console/consultations/{cid}/papier", done)
    elif ctx.request.method == "POST" and ctx.form.get("op") == "bulletins" and c["kind"] == "BUDGET":
        values = {k: v for k, v in ctx.form.items() if k != "csrf"}
        booth, sheet = sheet_of(ctx, "b_bureau", "b_feuille", errors)
        ballots = read_ballots(ctx.form.get("b_bulletins", ""), projects, errors)
        if not errors:
            result = await ctx.run("EnterPaperBallots", consultationId=cid, boothId=booth, sheetRef=sheet,
                                   ballots=ballots)
            if result.ok:
                status = result.data["enterPaperBallots"]["status"]
                return ctx.redirect(f"/console/consultations/{cid}/papier",
                                    f"Feuille {sheet} du bureau {booth} : {counted(len(ballots), 'bulletin')} saisis, "
                                    f"{ENTRY_STATUS[status][0].lower()}.")
            errors = FormErrors.of(result.problems, {"booth_id": "b_bureau", "sheet_ref": "b_feuille",
                                                     "ballots": "b_bulletins"})
    elif ctx.request.method == "POST":
        values = {k: v for k, v in ctx.form.items() if k != "csrf"}
        booth, sheet = sheet_of(ctx, "bureau", "feuille", errors)
        figures = {k: count(ctx, k, label, errors) for k, label in
                   (("bulletins", "Bulletins dans l'urne"), ("blancs", "Blancs"), ("nuls", "Nuls"))}
        votes = {name: count(ctx, name, label, errors) for _, fields in groups for name, label in fields}
        if not errors:
            if c["kind"] == "BUDGET":
                extra = {"projects": [{"projectId": n[2:], "votes": v} for n, v in votes.items()]}
            else:
                extra = {"options": [{"questionId": n.split("-")[1], "optionId": n.split("-", 2)[2], "votes": v}
                                     for n, v in votes.items()]}
            result = await ctx.run("EnterPaperTotals", consultationId=cid, boothId=booth, sheetRef=sheet,
                                   ballots=figures["bulletins"], blank=figures["blancs"], null=figures["nuls"],
                                   **extra)
            if result.ok:
                status = result.data["enterPaperTotals"]["status"]
                return ctx.redirect(f"/console/consultations/{cid}/papier",
                                    f"Feuille {sheet} du bureau {booth} saisie : {ENTRY_STATUS[status][0].lower()}.")
            fields = {"booth_id": "bureau", "sheet_ref": "feuille", "ballots": "bulletins", "blank": "bulletins",
                      "null": "bulletins"}
            fields.update({f"projects.{p['id']}": f"v-{p['id']}" for p in projects})
            errors = FormErrors.of(result.problems, fields)
    labels = {"ballots": "Bulletins dans l'urne", "blank": "Blancs", "null": "Nuls"}
    labels.update({f"projects.{p['id']}": p["title"] for p in projects})
    labels.update({f"options.{q['id']}:{o['id']}": f"{q['label']} – {o['label']}" for q in c["questions"]
                   for o in q["options"] + YES_NO})
    return ctx.render("paper_entries.html", title=f"Bulletins papier : {c['title']}", c=c, groups=groups,
                      entries=data["paperEntries"]["nodes"], status=ENTRY_STATUS, errors=errors, values=values,
                      labels=labels, projects=projects, back=f"/console/consultations/{cid}")


# -- a budget's projects: moderation, feasibility and price, the ballot ------------------------------------------
MODERATION_LABELS = {"SUBMITTED": ("À modérer", ""), "APPROVED": ("Accepté", "ok"), "REJECTED": ("Refusé", "bad")}
FEASIBILITY_LABELS = {"UNDECIDED": "Faisabilité à étudier", "FEASIBLE": "Faisable", "UNFEASIBLE": "Infaisable"}


async def project_change(ctx: Ctx, cid: str, errors: FormErrors) -> str | None:
    """One project's moderation, assessment or place on the ballot; the message to show when done."""
    op, pid = ctx.form.get("op"), ctx.form.text("projet")
    if op == "moderer":
        decision, reason = ctx.form.get("decision"), ctx.form.text("raison") or None
        if decision == "REJECT" and not reason:
            errors.add(f"raison-{pid}", "Raison du refus : indiquez-la, l'auteur du projet la recevra.")
            return None
        result = await ctx.run("ModerateProject", id=pid, decision=decision, reason=reason)
        done, fields = ("Projet accepté." if decision == "APPROVE" else "Projet refusé."), {"reason": f"raison-{pid}"}
    elif op == "etudier":
        feasibility, explanation = ctx.form.get("faisabilite"), ctx.form.text("explication") or None
        price = cents(ctx.form.text("prix")) if ctx.form.text("prix") else None
        if feasibility == "FEASIBLE" and price is None:
            errors.add(f"prix-{pid}", "Prix : un montant en euros, par exemple 12 500.")
            return None
        result = await ctx.run("AssessProject", id=pid, feasibility=feasibility, explanation=explanation,
                               priceCents=price if feasibility == "FEASIBLE" else None)
        done = f"Projet étudié : {FEASIBILITY_LABELS.get(feasibility, '').lower()}."
        fields = {"explanation": f"explication-{pid}", "price_cents": f"prix-{pid}"}
    elif op in ("retenir", "retirer"):
        result = await ctx.run("SelectProjects", budgetId=cid, projectIds=[pid], selected=op == "retenir")
        done, fields = ("Projet mis au vote." if op == "retenir" else "Projet retiré du vote."), {}
    else:
        return None
    if result.ok:
        return done
    for p in result.problems:
        errors.add(fields.get(p.field or ""), p.message)
    return None


@page("/console/consultations/{id}/projets", roles=AGENTS, methods=("GET", "POST"))
async def budget_projects(ctx: Ctx):
    cid = ctx.request.path_params["id"]
    errors = FormErrors()
    if ctx.request.method == "POST":
        done = await project_change(ctx, cid, errors)
        if done and not errors:
            return ctx.redirect(f"/console/consultations/{cid}/projets#projet-{ctx.form.text('projet')}", done)
    data = await ctx.data("ProjectsForAgent", id=cid)
    c = data["consultation"]
    if c is None or c["budget"] is None:
        raise PageError(404, "Budget introuvable", "Ce budget participatif n'existe pas.")
    headings = {h["id"]: h["name"] for h in c["budget"]["headings"]}
    projects = [e["node"] for e in data["projects"]["edges"]]
    return ctx.render("budget_projects.html", title=f"Projets : {c['title']}", c=c, projects=projects,
                      headings=headings, errors=errors, moderation=MODERATION_LABELS, feasibility=FEASIBILITY_LABELS,
                      phase=PHASE_LABELS.get(c["budget"]["currentPhase"] or "", "avant l'ouverture"),
                      back=f"/console/consultations/{cid}")


# -- one question's texts and display condition -------------------------------------------------------------
def condition_choices(questions: list[dict], before: int) -> list[tuple[str, str]]:
    """The answers a question may depend on: each option of an earlier choice question, as `question=option`."""
    found = []
    for q in questions:
        if q["position"] >= before or q["type"] not in ("SINGLE_CHOICE", "MULTIPLE_CHOICE", "YES_NO"):
            continue
        options = YES_NO if q["type"] == "YES_NO" else q["options"]
        found += [(f"{q['id']}={o['id']}", f"{q['position']}. {q['label']} : « {o['label']} »") for o in options]
    return found


def question_input(q: dict) -> dict:
    """A question as the API reads it back (QuestionInput), every field kept."""
    kept = {k: q.get(k) for k in ("id", "type", "label", "description", "mandatory", "position", "maxCharacters",
                                  "minChoices", "maxChoices", "scale")}
    kept["options"] = [dict(o) for o in q.get("options") or []]
    kept["rows"] = [dict(r) for r in q.get("rows") or []]
    kept["conditions"] = [dict(x) for x in q.get("conditions") or []]
    return kept


@page("/console/consultations/{id}/questions/{qid}", roles=AGENTS, methods=("GET", "POST"))
async def edit_question(ctx: Ctx):
    """Once responses exist, only texts change (a typo's correction, kept as a revision); before, the display
    condition too."""
    cid, qid = ctx.request.path_params["id"], ctx.request.path_params["qid"]
    c = await consultation(ctx, cid)
    q = next((x for x in c["questions"] if x["id"] == qid), None)
    if q is None or c["kind"] == "BUDGET":
        raise PageError(404, "Question introuvable", "Cette question n'est pas dans le formulaire.")
    locked = c["questionsLocked"]
    conditions = condition_choices(c["questions"], q["position"])
    first = (q.get("conditions") or [{}])[0]
    values = {"libelle": q["label"], "aide": q.get("description") or "",
              "condition": f"{first['questionId']}={first['value']}" if first else "",
              **{f"o-{o['id']}": o["label"] for o in q.get("options") or []},
              **{f"l-{r['id']}": r["label"] for r in q.get("rows") or []}}
    errors = FormErrors()
    if ctx.request.method == "POST":
        values = {k: ctx.form.text(k) for k in values}
        question = question_input(q)
        question.update(label=values["libelle"], description=values["aide"])
        for kind, prefix in (("options", "o-"), ("rows", "l-")):
            for item in question[kind]:
                item["label"] = values[prefix + item["id"]]
                if not item["label"]:
                    errors.add(prefix + item["id"], "Libellé : obligatoire.")
        if not values["libelle"]:
            errors.add("libelle", "Libellé : obligatoire.")
        if not locked:
            if values["condition"] and values["condition"] not in dict(conditions):
                errors.add("condition", "Choisissez une réponse d'une question qui vient avant celle-ci.")
            source, _, value = values["condition"].partition("=")
            question["conditions"] = [{"questionId": source, "value": value, "operator": "EQUALS"}] if source else []
        if not errors:
            result = await ctx.run("UpdateQuestion", consultationId=cid, question=question)
            if result.ok:
                return ctx.redirect(f"/console/consultations/{cid}#question-{qid}", "Question corrigée : la "
                                    "correction est gardée dans l'historique du formulaire." if locked
                                    else "Question modifiée.")
            fields = {"question.label": "libelle", "question.description": "aide", "question.conditions": "condition",
                      qid: "libelle"}  # a change refused once responses exist names the question
            errors = FormErrors.of(result.problems, fields)
    return ctx.render("question_form.html", title=f"Question {q['position']} : {c['title']}", c=c, q=q,
                      values=values, errors=errors, locked=locked, conditions=conditions,
                      back=f"/console/consultations/{cid}")
