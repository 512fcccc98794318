"""A participatory budget's projects for citizens: the projects by heading in every phase, a project proposed while
proposals are open (ACCEPTING, then moderated by an agent) and projects supported while supports are open
(SELECTING), without JavaScript. The ballot itself is `consultations.py`'s."""
from __future__ import annotations

from gateway.web.core import CITIZEN, Ctx, FormErrors, page
from gateway.web.pages.consultations import PHASE_LABELS, budget_and_projects
from gateway.web.pages.consultations_console import cents

# Where a refusal of proposeProject is shown: the service names the project's fields.
PROJECT_FIELDS = {"title": "titre", "heading_id": "section", "estimated_cost_cents": "cout",
                  "description": "description", "address": "adresse"}
MODERATION_LABELS = {"SUBMITTED": "en attente de modération", "APPROVED": "publié", "REJECTED": "refusé"}


async def budget_projects(ctx: Ctx, cid: str) -> tuple[dict, list[dict]]:
    return budget_and_projects(await ctx.data("BudgetProjects", id=cid))


def phase_end(budget: dict) -> str | None:
    return next((p["endsAt"] for p in budget["phases"] if p["current"]), None)


@page("/consultations/{id}/projets", methods=("GET", "POST"))
async def projects(ctx: Ctx):
    cid = ctx.request.path_params["id"]
    c, found = await budget_projects(ctx, cid)
    phase = c["budget"]["currentPhase"]
    errors = FormErrors()
    if ctx.request.method == "POST":
        result = await ctx.run("SupportProject", id=ctx.form.text("projet"))
        if result.ok:
            supported = result.data["supportProject"]
            return ctx.redirect(f"/consultations/{cid}/projets#projet-{supported['id']}",
                                f"Votre soutien au projet « {supported['title']} » est enregistré.")
        errors = FormErrors.of(result.problems)
    by_heading = [(h, [p for p in found if p["headingId"] == h["id"]]) for h in c["budget"]["headings"]]
    return ctx.render("projects.html", title=f"Projets : {c['title']}", c=c, by_heading=by_heading, errors=errors,
                      phase=phase, phase_label=PHASE_LABELS.get(phase or "", ""), ends=phase_end(c["budget"]),
                      moderation=MODERATION_LABELS, back="/consultations")


@page("/consultations/{id}/proposer", roles=CITIZEN, methods=("GET", "POST"))
async def propose(ctx: Ctx):
    cid = ctx.request.path_params["id"]
    c, _ = await budget_projects(ctx, cid)
    errors, values = FormErrors(), {"section": ctx.param("section")}
    is_open = c["budget"]["currentPhase"] == "ACCEPTING"
    if ctx.request.method == "POST" and is_open:
        values = {name: ctx.form.text(name) for name in ("titre", "section", "cout", "description", "adresse")}
        if not values["titre"]:
            errors.add("titre", "Indiquez le titre du projet.")
        if not values["section"]:
            errors.add("section", "Choisissez la section du projet.")
        cost = cents(values["cout"])
        if not cost:
            errors.add("cout", "Indiquez le coût estimé en euros, par exemple 12 000 ou 12 000,50.")
        if not errors:
            result = await ctx.run("ProposeProject", budgetId=cid, project={
                "title": values["titre"], "headingId": values["section"], "estimatedCostCents": cost,
                "description": values["description"], "address": values["adresse"]})
            if result.ok:
                return ctx.redirect(f"/consultations/{cid}/projets", "Votre projet est déposé. Il sera publié "
                                    "après sa relecture par un agent : vous le voyez dès maintenant dans la liste.")
            errors = FormErrors.of(result.problems, PROJECT_FIELDS)
    return ctx.render("project_form.html", title=f"Proposer un projet : {c['title']}", c=c, errors=errors,
                      values=values, is_open=is_open, ends=phase_end(c["budget"]),
                      phase_label=PHASE_LABELS.get(c["budget"]["currentPhase"] or "", ""),
                      back=f"/consultations/{cid}/projets")
