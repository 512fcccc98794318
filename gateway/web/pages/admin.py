"""The console's administration: notification templates (preview), deliveries and partners' webhooks (agents);
organisers of organisations (agents, operators); and the operators' pages: service health, dead letters (list,
replay), sessions (revoke) and roles."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from gateway import auth
from gateway.web.core import AGENTS, OPERATORS, STAFF, Ctx, FormErrors, PageError, nav, page

nav("Notifications", "/console/notifications", AGENTS, area="console", order=40)
nav("Organisateurs", "/console/organisateurs", STAFF, area="console", order=50)
nav("Santé", "/console/sante", OPERATORS, area="console", order=60)
nav("Lettres mortes", "/console/lettres-mortes", OPERATORS, area="console", order=61)
nav("Sessions", "/console/sessions", OPERATORS, area="console", order=62)
nav("Rôles", "/console/roles", OPERATORS, area="console", order=63)

STATUSES = [("", "Tous"), ("CREATED", "Créé"), ("SENDING", "En cours d'envoi"), ("DELIVERED", "Remis"),
            ("TEMPORARY_FAILURE", "Échec temporaire"), ("PERMANENT_FAILURE", "Échec définitif")]
CHANNELS = [("", "Tous"), ("EMAIL", "Courriel"), ("SMS", "SMS"), ("IN_APP", "Mon espace")]
ROLE_NAMES = {"ORGANIZER": "Organisateur", "AGENT": "Agent", "OPERATOR": "Opérateur", "CITIZEN": "Habitant"}


# -- notifications -----------------------------------------------------------------------------------------------
@page("/console/notifications", roles=AGENTS)
async def templates(ctx: Ctx):
    rows = (await ctx.data("NotificationTemplates"))["notificationTemplates"]
    return ctx.render("templates.html", title="Notifications", templates=rows)


@page("/console/notifications/modeles/{name}", roles=AGENTS, methods=("GET", "POST"))
async def preview(ctx: Ctx):
    name = ctx.request.path_params["name"]
    template = next((t for t in (await ctx.data("NotificationTemplates"))["notificationTemplates"]
                     if t["name"] == name), None)
    if template is None:
        raise PageError(404, "Modèle introuvable", "Ce modèle de message n'existe pas.")
    errors, shown = FormErrors(), None
    values = {v: ctx.form.text(f"var-{v}") or f"({v})" for v in template["variables"]}
    channel = ctx.form.get("canal") or template["channels"][0]
    if ctx.request.method == "POST":
        result = await ctx.run("PreviewTemplate", name=name, personalisation=values, channel=channel)
        if result.ok:
            shown = result.data["previewTemplate"]
        else:
            errors = FormErrors.of(result.problems, {f"personalisation.{v}": f"var-{v}" for v in values})
    return ctx.render("template_preview.html", title=f"Modèle « {name} »", template=template, values=values,
                      channel=channel, shown=shown, errors=errors, back="/console/notifications")


@page("/console/notifications/envois", roles=AGENTS)
async def deliveries(ctx: Ctx):
    status, channel = ctx.param("etat"), ctx.param("canal")
    f = {"status": status or None, "channel": channel or None, "limit": 200}
    rows = (await ctx.data("Deliveries", filter={k: v for k, v in f.items() if v}))["notificationDeliveries"]
    return ctx.render("deliveries.html", title="Envois", rows=rows, statuses=STATUSES, channels=CHANNELS,
                      status=status, channel=channel, labels=dict(STATUSES), back="/console/notifications")


# The GraphQL enum's names (WebhookTopic) and what they mean, in French.
WEBHOOK_TOPICS = ("NOTIFICATION_DELIVERED", "NOTIFICATION_FAILED", "PAYMENT_LINK_CREATED", "PAYMENT_LINK_STARTED",
                  "PAYMENT_LINK_SUBMITTED", "PAYMENT_LINK_SUCCEEDED", "PAYMENT_LINK_FAILED", "PAYMENT_LINK_CANCELLED",
                  "PAYMENT_LINK_ERRORED", "PAYMENT_LINK_REFUND_SUBMITTED", "PAYMENT_LINK_REFUND_SUCCEEDED",
                  "PAYMENT_LINK_REFUND_FAILED")
WEBHOOK_TOPIC_LABELS = ("Message remis", "Message en échec", "Lien de paiement créé", "Paiement commencé",
                        "Paiement en attente de confirmation", "Paiement réussi", "Paiement échoué", "Paiement annulé",
                        "Paiement en erreur", "Remboursement demandé", "Remboursement effectué", "Remboursement échoué")


@page("/console/notifications/webhooks", roles=AGENTS, methods=("GET", "POST"))
async def webhooks(ctx: Ctx):
    blank = {"partenaire": "", "url": "", "sujets": list(WEBHOOK_TOPICS[:2]), "regies": ""}
    errors, values, secret = FormErrors(), dict(blank), None
    if ctx.request.method == "POST":
        if ctx.form.get("supprimer"):
            await ctx.data("RemoveWebhook", id=ctx.form["supprimer"])
            return ctx.redirect("/console/notifications/webhooks", "Point d'appel supprimé.")
        values = {"partenaire": ctx.form.text("partenaire"), "url": ctx.form.text("url"),
                  "sujets": ctx.form.all("sujets"), "regies": ctx.form.text("regies")}
        regies = [r.strip() for r in values["regies"].replace(";", ",").split(",") if r.strip()]
        result = await ctx.run("RegisterWebhook", partner=values["partenaire"], url=values["url"],
                               topics=values["sujets"] or None, regieIds=regies)
        if result.ok:
            secret = result.data["registerWebhook"]["signingSecret"]
            values = dict(blank)
        else:
            errors = FormErrors.of(result.problems, {"partner": "partenaire", "url": "url", "topics": "sujets",
                                                     "regie_ids": "regies", "regieIds": "regies"})
    rows = (await ctx.data("Webhooks"))["webhooks"]
    response = ctx.render("webhooks.html", title="Points d'appel des partenaires", rows=rows, errors=errors,
                          values=values, secret=secret, back="/console/notifications",
                          topics=list(zip(WEBHOOK_TOPICS, WEBHOOK_TOPIC_LABELS)), labels=dict(
                              zip(WEBHOOK_TOPICS, WEBHOOK_TOPIC_LABELS)))
    response.headers["Cache-Control"] = "no-store"
    return response


# -- roles ----------------------------------------------------------------------------------------------------------
async def _grant_or_revoke(ctx: Ctx, here: str, fields: dict) -> tuple[FormErrors, object]:
    """A POST of the roles' pages: revoke (`retirer`) or grant; (errors, redirect or None)."""
    if ctx.form.get("retirer"):
        result = await ctx.run("RevokeRole", email=ctx.form["retirer"])
        if result.ok:
            ended = result.data["revokeRole"]["endedSessions"]
            return FormErrors(), ctx.redirect(here, f"Rôle retiré à {ctx.form['retirer']}"
                                                    f"{f' ; {ended} session(s) fermée(s)' if ended else ''}.")
        return FormErrors.of(result.problems), None
    email = ctx.form.text("courriel")
    result = await ctx.run("GrantRole", email=email, role=ctx.form.get("role") or "ORGANIZER",
                           organizationId=ctx.form.text("organisation") or None)
    if result.ok:
        return FormErrors(), ctx.redirect(here, f"Rôle donné à {result.data['grantRole']['email']} : il le reçoit à "
                                                "sa prochaine connexion.")
    return FormErrors.of(result.problems, fields), None


@page("/console/organisateurs", roles=STAFF, methods=("GET", "POST"))
async def organizers(ctx: Ctx):
    errors, values = FormErrors(), {"courriel": "", "organisation": ctx.param("organisation")}
    if ctx.request.method == "POST":
        values = {k: ctx.form.text(k) for k in values}
        errors, done = await _grant_or_revoke(ctx, "/console/organisateurs", {"email": "courriel", "org": "organisation"})
        if done:
            return done
    accounts = (await ctx.data("Accounts", role="ORGANIZER"))["accounts"]
    organizations = sorted((await ctx.data("Organizations"))["organizations"], key=lambda o: o["name"])
    return ctx.render("organizers.html", title="Organisateurs", accounts=accounts, organizations=organizations,
                      errors=errors, values=values)


@page("/console/roles", roles=OPERATORS, methods=("GET", "POST"))
async def roles(ctx: Ctx):
    errors, values = FormErrors(), {"courriel": "", "role": "AGENT"}
    if ctx.request.method == "POST":
        values = {k: ctx.form.text(k) for k in values}
        errors, done = await _grant_or_revoke(ctx, "/console/roles", {"email": "courriel", "role": "role"})
        if done:
            return done
    accounts = (await ctx.data("Accounts"))["accounts"]
    return ctx.render("roles.html", title="Rôles", accounts=accounts, errors=errors, values=values,
                      names=ROLE_NAMES)


# -- operators ---------------------------------------------------------------------------------------------------
@page("/console/sante", roles=OPERATORS)
async def health(ctx: Ctx):
    rows = (await ctx.data("ServiceHealth"))["serviceHealth"]
    public = ctx.web.gateway.public_agenda
    return ctx.render("health.html", title="Santé des services", rows=rows, copy_ready=public.ready,
                      revocations=ctx.web.gateway.revocations.loaded)


@page("/console/lettres-mortes", roles=OPERATORS, methods=("GET", "POST"))
async def dead_letters(ctx: Ctx):
    if ctx.request.method == "POST":
        everything = ctx.form.get("tout") == "oui"
        ids = ctx.form.all("id")
        if not everything and not ids:
            return ctx.redirect("/console/lettres-mortes", "Cochez les messages à renvoyer.")
        sent = (await ctx.data("ReplayDeadLetters", ids=ids, all=everything))["replayDeadLetters"]
        return ctx.redirect("/console/lettres-mortes", f"{len(sent)} message(s) renvoyé(s) à leur destinataire.")
    rows = (await ctx.data("DeadLetters"))["deadLetters"]
    return ctx.render("dead_letters.html", title="Lettres mortes", rows=rows)


@page("/console/sessions", roles=OPERATORS, methods=("GET", "POST"))
async def sessions(ctx: Ctx):
    errors = FormErrors()
    if ctx.request.method == "POST":
        token_id, expires = ctx.form.text("jeton-id"), ctx.form.text("expire")
        if ctx.form.text("jeton"):  # a token pasted whole (one `parvis token` printed): ours, read for its id
            try:
                caller = auth.verify(ctx.web.gateway.settings.secret, ctx.form.text("jeton"))
                token_id = caller.token_id
                expires = datetime.fromtimestamp(caller.expires_at, timezone.utc).isoformat()
            except Exception as exc:  # noqa: BLE001 - expired, forged, revoked already: said on the field
                errors.add("jeton", f"Jeton : {getattr(exc, 'message', 'illisible')}")
        if not errors:
            result = await ctx.run("RevokeToken", tokenId=token_id, expiresAt=expires,
                                   reason=ctx.form.text("raison") or "révoqué par un opérateur")
            if result.ok:
                ctx.web.gateway.revocations.add(token_id)
                return ctx.redirect("/console/sessions", "Jeton révoqué : il est refusé partout d'ici 5 secondes.")
            errors = FormErrors.of(result.problems, {"tokenId": "jeton", "token_id": "jeton"})
    rows = (await ctx.data("Sessions", email=ctx.param("courriel") or None))["sessions"]
    return ctx.render("sessions.html", title="Sessions", rows=rows, errors=errors, email=ctx.param("courriel"),
                      names=ROLE_NAMES, own=ctx.caller.token_id, dumps=json.dumps)
