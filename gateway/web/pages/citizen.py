"""A signed-in person's own space: subscriptions (topic, channel, daily digest, quiet hours) and in-app
notifications."""
from __future__ import annotations

import re

from gateway.web.core import SUBSCRIBERS, Ctx, FormErrors, nav, page

nav("Mes abonnements", "/compte/abonnements", SUBSCRIBERS, area="account", order=60)
nav("Mes notifications", "/compte/notifications", SUBSCRIBERS, area="account", order=61)

CHANNELS = [("EMAIL", "Par courriel"), ("IN_APP", "Dans mon espace (Mes notifications)"), ("SMS", "Par SMS")]
CHANNEL_LABELS = {"EMAIL": "Courriel", "IN_APP": "Mon espace", "SMS": "SMS"}
SUBSCRIBE_FIELDS = {"topic": "sujet", "channel": "canal", "phone": "telephone", "email": "courriel",
                    "quiet_from": "calme_de", "quiet_to": "calme_a", "digest": "resume"}
HHMM = re.compile(r"^([01]?\d|2[0-3])(?::|h| h ?)?([0-5]\d)?$")


def topic_label(topic: str, communes: dict, categories: dict) -> str:
    kind, _, value = topic.partition(":")[2].partition(":")
    if topic.startswith("agenda:commune:"):
        return f"Les événements à {communes.get(value, value)}"
    if topic.startswith("agenda:category:"):
        return f"Les événements « {categories.get(value, value)} »"
    if topic == "consultation:new":
        return "Les nouvelles consultations"
    if topic.startswith("satisfaction:site:"):
        return f"Les alertes de satisfaction du lieu {value}"
    return topic


def clock(text: str) -> str | None:
    """« 22:00 », « 22h », « 7 h 30 » as HH:MM; None when it is not a time of day."""
    m = HHMM.match(text.strip().lower())
    if not m:
        return None
    return f"{int(m.group(1)):02d}:{m.group(2) or '00'}"


@page("/compte/abonnements", roles=SUBSCRIBERS, methods=("GET", "POST"))
async def subscriptions(ctx: Ctx):
    errors = FormErrors()
    values = {"sujet": ctx.param("sujet"), "canal": "EMAIL", "telephone": "", "courriel": "", "resume": "",
              "calme_de": "", "calme_a": ""}
    if ctx.request.method == "POST":
        values.update({k: ctx.form.text(k) for k in values})
        quiet = {}
        for name in ("calme_de", "calme_a"):
            if values[name]:
                quiet[name] = clock(values[name])
                if quiet[name] is None:
                    errors.add(name, "Heure : indiquez une heure comme 22:00.")
        if not values["sujet"]:
            errors.add("sujet", "Choisissez ce que vous voulez suivre.")
        if values["canal"] not in dict(CHANNELS):
            errors.add("canal", "Choisissez comment être prévenu.")
        if not errors:
            result = await ctx.run("Subscribe", topic=values["sujet"], channel=values["canal"],
                                   phone=values["telephone"] or None, email=values["courriel"] or None,
                                   quietFrom=quiet.get("calme_de"), quietTo=quiet.get("calme_a"),
                                   digest=values["resume"] == "oui")
            if result.ok:
                return ctx.redirect("/compte/abonnements", "Votre abonnement est enregistré.")
            errors = FormErrors.of(result.problems, SUBSCRIBE_FIELDS)
    data = await ctx.data("MySubscriptions")
    communes = {c["slug"]: c["name"] for c in data["communes"]}
    categories = {c["slug"]: c["name"] for c in data["categories"]}
    rows = [{**s, "label": topic_label(s["topic"], communes, categories),
             "channel_label": CHANNEL_LABELS.get(s["channel"], s["channel"])} for s in data["mySubscriptions"]]
    groups = [("Communes", [(f"agenda:commune:{k}", f"Les événements à {v}") for k, v in communes.items()]),
              ("Catégories", [(f"agenda:category:{k}", f"Les événements « {v} »") for k, v in categories.items()]),
              ("Consultations", [("consultation:new", "Les nouvelles consultations")])]
    return ctx.render("subscriptions.html", title="Mes abonnements", subscriptions=rows, groups=groups,
                      channels=CHANNELS, values=values, errors=errors, back="/compte")


@page("/compte/abonnements/{id}/supprimer", roles=SUBSCRIBERS, methods=("POST",))
async def unsubscribe(ctx: Ctx):
    result = await ctx.run("Unsubscribe", id=ctx.request.path_params["id"])
    done = result.ok and result.data["unsubscribe"]["unsubscribed"]
    return ctx.redirect("/compte/abonnements", "Abonnement supprimé." if done else "Cet abonnement n'existait plus.")


@page("/compte/notifications", roles=SUBSCRIBERS, methods=("GET", "POST"))
async def notifications(ctx: Ctx):
    if ctx.request.method == "POST":
        ids = ctx.form.all("id")
        if ids:
            await ctx.data("MarkNotificationsRead", ids=ids[:500])
        return ctx.redirect("/compte/notifications", "Notifications marquées comme lues.")
    rows = (await ctx.data("MyNotifications", limit=100))["myNotifications"]
    unread = [n["id"] for n in rows if not n["readAt"]]
    return ctx.render("notifications.html", title="Mes notifications", notifications=rows, unread=unread,
                      back="/compte")
