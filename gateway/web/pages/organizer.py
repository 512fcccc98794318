"""An organiser's space (an association's or a commune's contact): its organisation's events by state, create and
edit (dates and slots, repetition, place, category, accessibility, price, links), the duplicate warnings,
submitting, a rejection's reason, withdrawing, cancelling or postponing a published event."""
from __future__ import annotations

from gateway.web import eventform
from gateway.web.core import Ctx, FormErrors, PageError, nav, page

ORGANIZER = frozenset({"organizer"})
BASE = "/organisation/evenements"
STATES = [("", "Tous"), ("DRAFT", "Brouillons"), ("SUBMITTED", "En attente"), ("PUBLISHED", "Publiés"),
          ("REJECTED", "Refusés"), ("WITHDRAWN", "Retirés")]
ACTIONS = {  # the confirmation pages of what ends or changes a published event
    "retirer": {"title": "Retirer l'événement", "button": "Retirer l'événement", "operation": "WithdrawEvent",
                "done": "L'événement est retiré : il n'apparaît plus dans l'agenda.",
                "text": "L'événement disparaît de l'agenda. Cette action est définitive."},
    "annuler": {"title": "Annuler l'événement", "button": "Annuler l'événement", "status": "CANCELLED",
                "done": "L'événement est annoncé comme annulé ; ses abonnés sont prévenus.",
                "text": "L'événement reste dans l'agenda, marqué « Annulé », et ses abonnés sont prévenus."},
    "reporter": {"title": "Reporter l'événement", "button": "Reporter l'événement", "status": "POSTPONED",
                 "done": "L'événement est marqué « Reporté ». Modifiez ses dates quand elles seront connues.",
                 "text": "L'événement reste dans l'agenda, marqué « Reporté », en attendant de nouvelles dates."},
}

nav("Mes événements", BASE, ORGANIZER, area="account", order=55)


async def _choices(ctx: Ctx) -> dict:
    return await ctx.data("EventFormChoices")


async def _event(ctx: Ctx) -> dict:
    ev = (await ctx.data("EventForOrganizer", id=ctx.request.path_params["id"]))["event"]
    if ev is None:
        raise PageError(404, "Événement introuvable", "Cet événement n'existe pas ou n'est pas celui de votre organisation.")
    return ev


@page(BASE, roles=ORGANIZER)
async def my_events(ctx: Ctx):
    state = ctx.param("etat")
    states = [state] if state in dict(STATES) and state else None
    data = (await ctx.data("MyEvents", first=100, after=ctx.param("apres") or None, states=states))["myEvents"]
    rows = [{**e["node"], "state": eventform.STATE_LABELS[e["node"]["moderationState"]]} for e in data["edges"]]
    next_url = f"{BASE}?etat={state}&apres={data['pageInfo']['endCursor']}" if data["pageInfo"]["hasNextPage"] else None
    return ctx.render("my_events.html", title="Mes événements", events=rows, total=data["totalCount"], states=STATES,
                      state=state, next_url=next_url, status_labels=eventform.STATUS_LABELS)


async def _save(ctx: Ctx, event_id: str | None):
    choices = await _choices(ctx)
    if ctx.request.method == "POST":
        errors = FormErrors()
        values = eventform.form_values(ctx.form)
        event_input = eventform.to_input(ctx.form, errors)
        if not errors:
            if event_id is None:
                result = await ctx.run("CreateEvent", event=event_input)
            else:
                result = await ctx.run("UpdateEvent", id=event_id, event=event_input)
            if result.ok:
                if event_id is None:
                    event_id = result.data["createEvent"]["id"]
                    return ctx.redirect(f"{BASE}/{event_id}", "Brouillon enregistré. Relisez-le, puis soumettez-le "
                                                             "à la modération.")
                state = result.data["updateEvent"]["moderationState"]
                return ctx.redirect(f"{BASE}/{event_id}", "Modification enregistrée." + (
                    " Elle attend la modération avant de remplacer la version publiée." if state == "PUBLISHED" else ""))
            errors = FormErrors.of(result.problems, eventform.error_fields(len(values["slots"])))
    else:
        errors, values = FormErrors(), eventform.event_values(None)
        if event_id is not None:
            ev = await _event(ctx)
            values = eventform.event_values(ev.get("pendingRevision") or ev)
    title = "Proposer un événement" if event_id is None else "Modifier l'événement"
    return ctx.render("event_form.html", title=title, errors=errors, values=eventform.with_empty_slot(values),
                      ref=choices, repeats=eventform.REPEATS, modes=eventform.MODES,
                      accessibility=eventform.ACCESS_LABELS, event_id=event_id,
                      action=f"{BASE}/nouveau" if event_id is None else f"{BASE}/{event_id}/modifier",
                      back=BASE if event_id is None else f"{BASE}/{event_id}")


@page(f"{BASE}/nouveau", roles=ORGANIZER, methods=("GET", "POST"))
async def new_event(ctx: Ctx):
    return await _save(ctx, None)


@page(BASE + "/{id}/modifier", roles=ORGANIZER, methods=("GET", "POST"))
async def edit_event(ctx: Ctx):
    return await _save(ctx, ctx.request.path_params["id"])


@page(BASE + "/{id}", roles=ORGANIZER)
async def event(ctx: Ctx):
    ev = await _event(ctx)
    revision = ev.get("pendingRevision")
    return ctx.render("organizer_event.html", title=ev["title"], ev=ev, rows=eventform.summary_rows(revision or ev),
                      revision=revision, state=eventform.STATE_LABELS[ev["moderationState"]],
                      status=eventform.STATUS_LABELS.get(ev["status"]), back=BASE)


@page(BASE + "/{id}/soumettre", roles=ORGANIZER, methods=("POST",))
async def submit(ctx: Ctx):
    event_id = ctx.request.path_params["id"]
    result = await ctx.run("SubmitEvent", id=event_id)
    if not result.ok:
        return ctx.redirect(f"{BASE}/{event_id}", result.problems[0].message)
    duplicates = result.data["submitEvent"]["possibleDuplicates"]
    message = "Événement soumis : un agent va le relire."
    if duplicates:
        message += f" Attention : {len(duplicates)} événement(s) semblable(s) existe(nt) déjà (voir ci-dessous)."
    return ctx.redirect(f"{BASE}/{event_id}", message)


@page(BASE + "/{id}/{action:str}", roles=ORGANIZER, methods=("GET", "POST"))
async def event_action(ctx: Ctx):
    action = ACTIONS.get(ctx.request.path_params["action"])
    if action is None:
        raise PageError(404, "Page introuvable", "Cette action n'existe pas.")
    ev = await _event(ctx)
    errors = FormErrors()
    if ctx.request.method == "POST":
        reason = ctx.form.text("raison")[:500] or None
        if "status" in action:
            result = await ctx.run("SetEventStatus", id=ev["id"], status=action["status"], reason=reason)
        else:
            result = await ctx.run(action["operation"], id=ev["id"], reason=reason)
        if result.ok:
            return ctx.redirect(f"{BASE}/{ev['id']}", action["done"])
        errors = FormErrors.of(result.problems, {"reason": "raison", "status": "raison"})
    return ctx.render("event_action.html", title=action["title"], action=action, ev=ev, errors=errors,
                      path=ctx.request.url.path, back=f"{BASE}/{ev['id']}")
