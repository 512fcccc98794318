"""The agents' console: its home, the moderation queue with a published event and its pending revision side by
side, sites and kiosks (state, battery, queue, last contact; register with a QR code of the provisioning link,
rotate, revoke), and the satisfaction charts."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from gateway.web import charts, eventform, qr
from gateway.web.core import AGENTS, STAFF, Ctx, FormErrors, PageError, nav, page
from gateway.web.pages.public import parse_day
from gateway.web.render import PARIS, instant, short_date

nav("Console", "/console", STAFF, area="console", order=10)
nav("Modération", "/console/moderation", AGENTS, area="console", order=20)
nav("Bornes", "/console/bornes", STAFF, area="console", order=30)
nav("Satisfaction", "/console/satisfaction", STAFF, area="console", order=31)


@page("/console", roles=STAFF)
async def console(ctx: Ctx):
    counts = None
    if ctx.caller.role == "agent":
        counts = (await ctx.data("ModerationQueue", first=1))["moderationQueue"]["counts"]
    return ctx.render("console.html", title="Console", counts=counts)


# -- moderation ------------------------------------------------------------------------------------------------
@page("/console/moderation", roles=AGENTS)
async def queue(ctx: Ctx):
    data = (await ctx.data("ModerationQueue", first=50, after=ctx.param("apres") or None))["moderationQueue"]
    next_url = f"/console/moderation?apres={data['pageInfo']['endCursor']}" if data["pageInfo"]["hasNextPage"] else None
    return ctx.render("moderation.html", title="Modération", queue=data, events=[e["node"] for e in data["edges"]],
                      next_url=next_url)


@page("/console/moderation/{id}", roles=AGENTS, methods=("GET", "POST"))
async def moderate(ctx: Ctx):
    event_id = ctx.request.path_params["id"]
    errors = FormErrors()
    if ctx.request.method == "POST":
        decision = ctx.form.get("decision")
        reason = ctx.form.text("raison") or None
        if decision == "REJECT" and not reason:
            errors.add("raison", "Raison du refus : indiquez-la, l'organisateur la recevra.")
        if decision not in ("APPROVE", "REJECT"):
            errors.add(None, "Choisissez de publier ou de refuser.")
        if not errors:
            try:
                version = int(ctx.form.get("version") or "")
            except ValueError:
                version = 0
            result = await ctx.run("ModerateEvent", id=event_id, version=version, decision=decision, reason=reason)
            if result.ok:
                done = "publié" if decision == "APPROVE" else "refusé ; l'organisateur est prévenu"
                return ctx.redirect("/console/moderation", f"Événement {done}.")
            errors = FormErrors.of(result.problems, {"reason": "raison"})
    ev = (await ctx.data("EventForOrganizer", id=event_id))["event"]
    if ev is None:
        raise PageError(404, "Événement introuvable", "Cet événement n'existe pas ou a été retiré.")
    revision = ev.get("pendingRevision")
    rows = eventform.summary_rows(ev)
    compare = None
    if revision:  # the published version and the organiser's edit, field by field, changes marked in words
        compare = [(label, before, after, before != after)
                   for (label, before), (_, after) in zip(rows, eventform.summary_rows(revision))]
    return ctx.render("moderate.html", title=f"Relire « {ev['title']} »", ev=ev, rows=rows, compare=compare,
                      revision=revision, version=ev["version"], errors=errors, back="/console/moderation")


# -- sites and kiosks ----------------------------------------------------------------------------------------
@page("/console/bornes", roles=STAFF)
async def kiosks(ctx: Ctx):
    data = await ctx.data("SitesAndKiosks")
    by_site = {s["id"]: [] for s in data["sites"]}
    for k in data["kiosks"]:
        by_site.setdefault(k["siteId"], []).append(k)
    return ctx.render("kiosks.html", title="Lieux et bornes", sites=data["sites"], by_site=by_site)


@page("/console/lieux/nouveau", roles=STAFF, methods=("GET", "POST"))
async def new_site(ctx: Ctx):
    errors, values = FormErrors(), {"nom": "", "commune": "", "competence": ""}
    if ctx.request.method == "POST":
        values = {k: ctx.form.text(k) for k in values}
        result = await ctx.run("SaveSite", site={"name": values["nom"], "commune": values["commune"],
                                                 "competence": values["competence"]})
        if result.ok:
            return ctx.redirect("/console/bornes", f"Lieu « {result.data['saveSite']['name']} » enregistré.")
        errors = FormErrors.of(result.problems, {"name": "nom", "commune": "commune", "competence": "competence"})
    communes = (await ctx.data("EventFormChoices"))["communes"]
    return ctx.render("site_form.html", title="Ajouter un lieu", errors=errors, values=values, communes=communes,
                      back="/console/bornes")


def _credentials(ctx: Ctx, creds: dict, heading: str):
    """A kiosk's provisioning link is shown once, now (its token is in it): never kept by a cache."""
    response = ctx.render("kiosk_credentials.html", title=heading, kiosk=creds["kiosk"], url=creds["provisioningUrl"],
                          qr=qr.svg(creds["provisioningUrl"], f"Code QR du lien de la borne {creds['kiosk']['name']}"),
                          back="/console/bornes")
    response.headers["Cache-Control"] = "no-store"
    return response


@page("/console/bornes/nouvelle", roles=STAFF, methods=("GET", "POST"))
async def new_kiosk(ctx: Ctx):
    errors = FormErrors()
    values = {"lieu": ctx.param("lieu"), "nom": "", "question": "", "niveaux": "4", "delai": "3"}
    if ctx.request.method == "POST":
        values = {k: ctx.form.text(k) for k in values}
        try:
            scale, repeat = int(values["niveaux"] or 4), int(values["delai"] or 3)
        except ValueError:
            scale, repeat = 0, -1
            errors.add("delai", "Délai : un nombre de secondes.")
        if not errors:
            kiosk = {"siteId": values["lieu"], "name": values["nom"], "question": values["question"] or None,
                     "scale": scale, "repeatSeconds": repeat}
            result = await ctx.run("RegisterKiosk", kiosk=kiosk)
            if result.ok:
                return _credentials(ctx, result.data["registerKiosk"], "Borne enregistrée")
            errors = FormErrors.of(result.problems, {"site_id": "lieu", "name": "nom", "question": "question",
                                                     "scale": "niveaux", "repeat_seconds": "delai"})
    sites = (await ctx.data("SitesAndKiosks"))["sites"]
    return ctx.render("kiosk_form.html", title="Enregistrer une borne", errors=errors, values=values, sites=sites,
                      back="/console/bornes")


@page("/console/bornes/{id}/{action:str}", roles=STAFF, methods=("GET", "POST"))
async def kiosk_action(ctx: Ctx):
    kiosk_id, action = ctx.request.path_params["id"], ctx.request.path_params["action"]
    if action not in ("nouveau-lien", "revoquer"):
        raise PageError(404, "Page introuvable", "Cette action n'existe pas.")
    kiosk = next((k for k in (await ctx.data("SitesAndKiosks"))["kiosks"] if k["id"] == kiosk_id), None)
    if kiosk is None:
        raise PageError(404, "Borne introuvable", "Cette borne n'existe pas.")
    if ctx.request.method == "POST":
        if action == "nouveau-lien":
            data = await ctx.data("RotateKioskToken", id=kiosk_id)
            return _credentials(ctx, data["rotateKioskToken"], "Nouveau lien de la borne")
        await ctx.data("RevokeKiosk", id=kiosk_id)
        return ctx.redirect("/console/bornes", f"La borne « {kiosk['name']} » est révoquée : elle n'envoie plus rien.")
    return ctx.render("kiosk_action.html", title="Nouveau lien" if action == "nouveau-lien" else "Révoquer la borne",
                      kiosk=kiosk, action=action, path=ctx.request.url.path, back="/console/bornes")


# -- satisfaction ----------------------------------------------------------------------------------------------
def _period(ctx: Ctx, errors: FormErrors) -> tuple[datetime, datetime, dict]:
    today = datetime.now(PARIS).date()
    values = {"du": ctx.param("du"), "au": ctx.param("au"), "lieu": ctx.param("lieu")}
    start = parse_day(values["du"]) if values["du"] else today - timedelta(days=29)
    end = parse_day(values["au"]) if values["au"] else today
    if start is None:
        errors.add("du", "Du : indiquez une date comme 01/03/2027.")
    if end is None:
        errors.add("au", "Au : indiquez une date comme 31/03/2027.")
    if errors:
        start, end = today - timedelta(days=29), today
    if (end - start).days > 366 or end < start:
        errors.add("au", "Au : une période d'un an au plus, qui finit après son début.")
        start, end = today - timedelta(days=29), today
    values.update(du=values["du"] or start.isoformat(), au=values["au"] or end.isoformat())
    begin = datetime.combine(start, datetime.min.time(), PARIS)
    return begin, datetime.combine(end + timedelta(days=1), datetime.min.time(), PARIS), values


@page("/console/satisfaction", roles=STAFF)
async def satisfaction(ctx: Ctx):
    errors = FormErrors()
    start, end, values = _period(ctx, errors)
    span = {"from": start.astimezone(timezone.utc).isoformat(), "to": end.astimezone(timezone.utc).isoformat()}
    overview = await ctx.data("SatisfactionOverview", **span)
    sites = overview["sites"]
    chosen = [s for s in sites if s["id"] == values["lieu"]] or sites
    series, profile, days = {}, None, [(start + timedelta(days=i)).date() for i in range((end - start).days)]
    for site in chosen[:6]:
        data = (await ctx.data("SatisfactionOfSite", siteId=site["id"], granularity="DAY", **span))["satisfaction"]
        by_day = {instant(p["start"]).date(): p["happyIndex"] for p in data["points"]}
        series[site["name"]] = [by_day.get(d) for d in days]
        if len(chosen) == 1:
            profile = data["profile"]
    labels = [f"{d.day:02d}/{d.month:02d}" for d in days]
    comparison = overview["satisfactionComparison"]
    figures = {
        "over_time": charts.lines("Happy Index par jour", labels, series, every=max(1, len(days) // 8)),
        "sites": charts.bars("Happy Index des lieux sur la période", [r["siteName"] for r in comparison],
                             {"Happy Index": [r["happyIndex"] for r in comparison]}, horizontal=True, top=100),
        "profile": charts.bars("Votes selon l'heure de la journée", [f"{instant(p['start']).hour} h" for p in profile],
                               {"Votes": [p["total"] for p in profile]}) if profile else None,
    }
    table = [(label, [series[name][i] for name in series]) for i, label in enumerate(labels)
             if any(series[name][i] is not None for name in series)]
    return ctx.render("satisfaction.html", title="Satisfaction", errors=errors, values=values, sites=sites,
                      series=list(series), table=table, comparison=comparison, profile=profile, figures=figures,
                      alerts=overview["satisfactionAlerts"], chosen=chosen, short_date=short_date)
