"""The citizens' consultation pages: the list (open ones first, then published results), a participatory budget's
ballot (projects by heading, the running total, "Vérifier mon vote" without JavaScript, the receipt code), a survey's
or a consultation's form without JavaScript (every question type, drafts, refusals beside their question), "mes
participations", and the home page's block of open consultations. The public page of a consultation (its form with
JavaScript), the printable ballots and the results pages are `gateway/routes/consultation.py`'s."""
from __future__ import annotations

from gateway.routes.consultation import KIND_LABELS
from gateway.routes.consultation import STATE_LABELS as STATES_LOWER
from gateway.web.ballot import least_share, running_totals, shown_headings
from gateway.web.core import CITIZEN, Ctx, FormErrors, PageError, home_section, nav, page
from gateway.web.render import ENV, amount
from gateway.web.survey import answer_values, condition_notes, posted, read_answers

RECEIPT = "parvis_receipt"
STATE_LABELS = {state: label.capitalize() for state, label in STATES_LOWER.items()}
PHASE_LABELS = {"INFORMING": "information", "ACCEPTING": "dépôt des projets", "REVIEWING": "examen des projets",
                "SELECTING": "soutiens", "VALUATING": "étude de faisabilité",
                "PUBLISHING_PRICES": "publication des coûts", "BALLOTING": "vote", "REVIEWING_BALLOTS": "dépouillement",
                "FINISHED": "terminé"}
STATUS_LABELS = {"DRAFT": "Brouillon enregistré", "SUBMITTED": "Réponses envoyées", "VOTED": "A voté"}
BUDGET_ACTIONS = {"ACCEPTING": "Proposer un projet", "SELECTING": "Soutenir des projets"}
ORIGIN_LABELS = {"WEB": "en ligne", "BOOTH": "au bureau de vote", "LETTER": "par courrier"}
# Where a refusal of castBudgetBallot is shown: the service names `headings`, `headings.<id>` or a project in one.
BALLOT_FIELDS = {"headings": "bulletin"}
ENV.globals["kind_label"] = lambda kind: KIND_LABELS.get(kind, kind)

nav("Consultations", "/consultations", order=30)
nav("Mes participations", "/compte/participations", CITIZEN, area="account", order=62)


def action_of(c: dict) -> tuple[str, str] | None:
    """What a citizen can do with a consultation from the list: its link and the words of it."""
    if c["state"] == "RESULTS_PUBLISHED":
        return f"/consultations/{c['id']}/results", "Voir les résultats"
    if c["kind"] == "BUDGET":
        phase = (c.get("budget") or {}).get("currentPhase")
        if c["state"] == "OPEN" and phase == "BALLOTING":
            return f"/consultations/{c['id']}/vote", "Voter"
        return f"/consultations/{c['id']}/projets", BUDGET_ACTIONS.get(phase, "Voir les projets")
    if c["state"] == "OPEN":
        return f"/consultations/{c['id']}/repondre", "Répondre"
    return f"/consultations/{c['id']}", "En savoir plus"


async def listed(ctx: Ctx, states: list[str], first: int) -> list[dict]:
    result = await ctx.run("Consultations", filter={"states": states}, first=first)
    if not result.ok:
        return []
    return [dict(e["node"], action=action_of(e["node"])) for e in result.data["consultations"]["edges"]]


@home_section(order=60)
async def open_consultations(ctx: Ctx) -> dict | None:
    return {"template": "home_consultations.html", "consultations": await listed(ctx, ["OPEN"], 5)}


@page("/consultations")
async def consultations(ctx: Ctx):
    sections = [("Consultations ouvertes", await listed(ctx, ["OPEN"], 50)),
                ("À venir", await listed(ctx, ["SCHEDULED"], 20)),
                ("Résultats publiés", await listed(ctx, ["RESULTS_PUBLISHED"], 50))]
    return ctx.render("consultations.html", title="Consultations", sections=sections)


@page("/compte/participations", roles=CITIZEN)
async def participations(ctx: Ctx):
    rows = (await ctx.data("MyParticipations"))["myParticipations"]["nodes"]
    return ctx.render("participations.html", title="Mes participations", rows=rows, kinds=KIND_LABELS,
                      states=STATE_LABELS, statuses=STATUS_LABELS, origins=ORIGIN_LABELS)


# -- a participatory budget's ballot ------------------------------------------------------------------------
async def ballot_data(ctx: Ctx, cid: str) -> tuple[dict, list[dict]]:
    return budget_and_projects(await ctx.data("BudgetBallot", id=cid))


def budget_and_projects(data: dict) -> tuple[dict, list[dict]]:
    """A budget's page data (its consultation and its projects); a missing budget is the page's 404."""
    c = data["consultation"]
    if c is None or c["kind"] != "BUDGET":
        raise PageError(404, "Budget introuvable", "Ce budget participatif n'existe pas ou n'est pas encore publié.")
    return c, [e["node"] for e in data["projects"]["edges"]]


async def already_voted(ctx: Ctx, cid: str) -> bool:
    result = await ctx.run("MyParticipations")
    return result.ok and any(p["consultationId"] == cid for p in result.data["myParticipations"]["nodes"])


def rule_text(budget: dict, h: dict) -> str:
    rule = budget["rule"]
    if rule["kind"] == "KNAPSACK":
        text = f"Choisissez des projets dont le total ne dépasse pas {amount(h['amountCents'])}"
        if rule.get("minSharePercent"):
            least = least_share(h["amountCents"], rule["minSharePercent"])
            text += f" et atteint au moins {amount(least)} ({rule['minSharePercent']} % du montant)"
        return text + "."
    high = h.get("maxProjects") or rule.get("maxProjects")
    low = rule.get("minProjects")
    return (f"Choisissez au plus {high} projet{'s' if high and high > 1 else ''}"
            + (f" et au moins {low}" if low else "") + ".")


def check_totals(headings: list[dict], totals: dict, errors: FormErrors) -> None:
    """« Vérifier mon vote »: each heading's choice against its amount or number of projects, told beside it."""
    for h in headings:
        t, where = totals[h["id"]], f"« {h['name']} »"
        if t.over and t.knapsack:
            message = (f"Votre sélection dans {where} coûte {amount(t.spent_cents)} : {amount(-t.left_cents)} de trop. "
                       "Retirez un projet.")
        elif t.over:
            message = (f"Vous avez choisi {t.chosen} projets dans {where} : {t.max_projects} au plus. "
                       f"Retirez-en {t.chosen - t.max_projects}.")
        elif t.under and t.knapsack:
            message = (f"Votre sélection dans {where} coûte {amount(t.spent_cents)} : il faut atteindre au moins "
                       f"{amount(t.least_cents)}. Ajoutez un projet.")
        elif t.under:
            message = (f"Vous avez choisi {t.chosen} projet{'s' if t.chosen > 1 else ''} dans {where} : "
                       f"{t.min_projects} au moins. Ajoutez-en {t.min_projects - t.chosen}.")
        else:
            continue
        errors.add(f"section-{h['id']}", message)
    if not any(totals[h["id"]].chosen for h in headings):
        errors.add("bulletin", "Choisissez au moins un projet.")


@page("/consultations/{id}/vote", roles=CITIZEN, methods=("GET", "POST"))
async def vote(ctx: Ctx):
    cid = ctx.request.path_params["id"]
    c, projects = await ballot_data(ctx, cid)
    budget = c["budget"]
    section = ctx.form.text("section") or ctx.param("section")
    headings, must_choose = shown_headings(budget, section)
    chosen = {h["id"]: ctx.form.all(f"p-{h['id']}") for h in headings}
    errors, checked = FormErrors(), False
    is_open = c["state"] == "OPEN" and budget["currentPhase"] == "BALLOTING"
    voted = await already_voted(ctx, cid)
    totals = running_totals(budget, projects, chosen)
    if ctx.request.method == "POST" and is_open and not voted and not must_choose:
        if ctx.form.get("action") == "voter":
            lines = [{"headingId": hid, "projectIds": ids} for hid, ids in chosen.items() if ids]
            result = await ctx.run("CastBudgetBallot", budgetId=cid, headings=lines)
            if result.ok:
                receipt = result.data["castBudgetBallot"]
                keep_receipt(ctx, cid, receipt["receiptCode"],
                             [pid for h in receipt["headings"] for pid in h["projectIds"]])
                return ctx.redirect(f"/consultations/{cid}/recu", "Votre vote est enregistré.")
            fields = dict(BALLOT_FIELDS, **{f"headings.{h['id']}": f"section-{h['id']}" for h in headings})
            errors = FormErrors.of(result.problems, fields)
            if any(p.field == "participation" for p in result.problems):
                voted = True
        else:
            checked = True
            check_totals(headings, totals, errors)
    communes = {}
    if must_choose:
        choices = (await ctx.run("AgendaChoices")).data or {}
        communes = {x["slug"]: x["name"] for x in choices.get("communes", [])}
    by_heading = {h["id"]: [p for p in projects if p["headingId"] == h["id"]] for h in budget["headings"]}
    ends = next((p["endsAt"] for p in budget["phases"] if p["kind"] == "BALLOTING"), None)
    return ctx.render("ballot.html", title=f"Voter : {c['title']}", c=c, budget=budget, headings=headings,
                      must_choose=must_choose, section=section, by_heading=by_heading, chosen=chosen, totals=totals,
                      errors=errors, checked=checked and not errors, is_open=is_open, voted=voted, ends=ends,
                      communes=communes, rules={h["id"]: rule_text(budget, h) for h in budget["headings"]},
                      phase=PHASE_LABELS.get(budget["currentPhase"] or "", ""), back="/consultations")


def keep_receipt(ctx: Ctx, cid: str, code: str, project_ids: list[str]) -> None:
    """The receipt code, shown once on the next page (and for an hour on this device only)."""
    value = {"c": cid, "r": code, "p": project_ids}
    ctx.cookies.append(lambda r: ctx.web.sessions.set_signed(r, RECEIPT, value, 3600))


@page("/consultations/{id}/recu", roles=CITIZEN)
async def receipt(ctx: Ctx):
    cid = ctx.request.path_params["id"]
    kept = ctx.web.sessions.unsign(ctx.request.cookies.get(RECEIPT), 3600)
    c = (await ctx.data("ConsultationTitle", id=cid))["consultation"]
    if c is None or not kept or kept.get("c") != cid:
        raise PageError(404, "Reçu introuvable", "Ce reçu n'est plus affiché : il ne l'est qu'une heure après le "
                        "vote, sur l'appareil qui a voté. Le vote, lui, est bien enregistré.")
    chosen = []
    if c["kind"] == "BUDGET":
        titles = {p["id"]: p for p in (await ballot_data(ctx, cid))[1]}
        chosen = [titles[pid] for pid in kept.get("p", []) if pid in titles]
    return ctx.render("receipt.html", title="Votre reçu de vote", c=c, code=kept["r"], chosen=chosen)


@page("/consultations/{id}/verifier")
async def verify(ctx: Ctx):
    """A receipt code checked against the published ballots: anyone may see that a ballot was counted as cast,
    without anyone knowing whose it is."""
    cid, code = ctx.request.path_params["id"], ctx.param("code")
    c = (await ctx.data("ReceiptConsultation", id=cid))["consultation"]
    if c is None:
        raise PageError(404, "Consultation introuvable", "Cette consultation n'existe pas ou n'est pas encore publiée.")
    errors, found, chosen, answers = FormErrors(), None, [], []
    if code:
        result = await ctx.run("VerifyReceipt", id=cid, code=code)
        if result.ok:
            found = result.data["verifyReceipt"]
        else:
            errors.add("code", result.problems[0].message)  # a code unknown, malformed, or results not yet out
    if found and c["kind"] == "BUDGET":
        titles = {p["id"]: p for p in (await ballot_data(ctx, cid))[1]}
        chosen = [titles.get(pid, {"title": pid}) for h in found["headings"] for pid in h["projectIds"]]
    elif found:
        answers = receipt_answers(c["questions"], found["answers"])
    return ctx.render("verify_receipt.html", title=f"Vérifier un reçu : {c['title']}", c=c, code=code, found=found,
                      chosen=chosen, answers=answers, errors=errors, back=f"/consultations/{cid}/results")


def receipt_answers(questions: list[dict], answers: list[dict]) -> list[tuple[str, str]]:
    """A counted response as a person reads it: each question's label and the answer's words."""
    by_id = {q["id"]: q for q in questions}
    shown = []
    for a in answers:
        q = by_id.get(a["questionId"], {"label": a["questionId"], "options": []})
        labels = {o["id"]: o["label"] for o in q.get("options") or []}
        if a.get("choices"):
            text = ", ".join(labels.get(x, x) for x in a["choices"])
        elif a.get("rating") is not None:
            text = str(a["rating"])
        else:
            text = a.get("text") or "—"
        shown.append((q["label"], text))
    return shown


# -- a survey or a consultation's form, without JavaScript ---------------------------------------------------
@page("/consultations/{id}/repondre", roles=CITIZEN, methods=("GET", "POST"))
async def answer(ctx: Ctx):
    cid = ctx.request.path_params["id"]
    data = await ctx.data("SurveyForm", id=cid)
    c, mine = data["consultation"], data["myResponse"]
    if c is None:
        raise PageError(404, "Consultation introuvable", "Cette consultation n'existe pas ou n'est pas encore publiée.")
    if c["kind"] == "BUDGET":
        return ctx.redirect(f"/consultations/{cid}/vote")
    questions, errors = c["questions"], FormErrors()
    values = answer_values(questions, mine["answers"])
    is_open = c["state"] == "OPEN"
    if ctx.request.method == "POST" and is_open and not mine["final"]:
        values = posted(ctx.form.pairs)
        answers, problems = read_answers(questions, values)
        for qid, message in problems.items():
            errors.add(f"q-{qid}", message)
        if not errors:
            submit = ctx.form.get("action") == "envoyer"
            result = await ctx.run("SubmitResponse" if submit else "SaveResponse", consultationId=cid,
                                   answers=answers)
            if result.ok and not submit:
                return ctx.redirect(f"/consultations/{cid}/repondre",
                                    "Brouillon enregistré : vous pourrez le reprendre jusqu'à la clôture.")
            if result.ok:
                code = result.data["submitResponse"].get("receiptCode")
                if code:
                    keep_receipt(ctx, cid, code, [])
                    return ctx.redirect(f"/consultations/{cid}/recu", "Vos réponses sont enregistrées.")
                return ctx.redirect(f"/consultations/{cid}/repondre", "Merci, vos réponses sont enregistrées. "
                                    "Vous pourrez les modifier jusqu'à la clôture.")
            errors = FormErrors.of(result.problems, {q["id"]: f"q-{q['id']}" for q in questions})
    return ctx.render("survey.html", title=c["title"], c=c, questions=questions, values=values, errors=errors,
                      notes=condition_notes(questions), mine=mine, is_open=is_open, back="/consultations")
