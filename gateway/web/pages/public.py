"""Everyone's pages: the home page, the agenda with its filters and pages of results, signing in by a code sent by
email, signing out, and the signed-in person's own space."""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from urllib.parse import urlencode

from gateway.web.core import SIGNED_IN, Ctx, FormErrors, HOME_SECTIONS, home_section, nav, page
from gateway.web.render import instant
from gateway.web.session import LOGIN

AGENDA_PAGE = 50
ACCESSIBILITY = [("MOTOR", "Handicap moteur"), ("VISUAL", "Handicap visuel"), ("HEARING", "Handicap auditif"),
                 ("PSYCHIC", "Handicap psychique"), ("INTELLECTUAL", "Handicap mental")]
HOME_OF = {"citizen": "/compte", "organizer": "/organisation/evenements", "agent": "/console", "operator": "/console"}

nav("Accueil", "/", order=10)
nav("Agenda", "/agenda", order=20)
nav("Mon espace", "/compte", SIGNED_IN, area="account", order=90)


def parse_day(text: str) -> date | None:
    """A day as a person types it: 2027-03-06 (a date field), 06/03/2027 or 6/3/2027."""
    text = text.strip()
    m = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", text) or re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{4})", text)
    if not m:
        return None
    parts = [int(x) for x in m.groups()]
    y, mo, d = parts if len(m.group(1)) == 4 else (parts[2], parts[1], parts[0])
    try:
        return date(y, mo, d)
    except ValueError:
        return None


@home_section
async def upcoming(ctx: Ctx) -> dict | None:
    now = datetime.now(timezone.utc).isoformat()
    result = await ctx.run("AgendaPage", filter={"from": now}, first=6)
    events = [e["node"] for e in (result.data or {}).get("events", {}).get("edges", [])] if result.ok else []
    return {"template": "home_events.html", "events": events, "failed": not result.ok}


@page("/")
async def home(ctx: Ctx):
    sections = [s for s in [await section(ctx) for section in HOME_SECTIONS] if s]
    return ctx.render("home.html", title="Accueil", sections=sections)


def agenda_filter(ctx: Ctx, errors: FormErrors) -> tuple[dict, dict]:
    """The `events` filter from the query string, and the values to show back in the form."""
    values = {"commune": ctx.param("commune"), "categorie": ctx.param("categorie"), "du": ctx.param("du"),
              "au": ctx.param("au"), "texte": ctx.param("texte"), "gratuit": ctx.param("gratuit"),
              "acces": ctx.request.query_params.getlist("acces")}
    f: dict = {}
    start = parse_day(values["du"]) if values["du"] else None
    end = parse_day(values["au"]) if values["au"] else None
    if values["du"] and start is None:
        errors.add("du", "Date de début : indiquez une date comme 06/03/2027.")
    if values["au"] and end is None:
        errors.add("au", "Date de fin : indiquez une date comme 06/03/2027.")
    if start and end and end < start:
        errors.add("au", "Date de fin : elle doit être après la date de début.")
    f["from"] = f"{start.isoformat()}T00:00:00" if start else datetime.now(timezone.utc).isoformat()
    if end:
        f["to"] = f"{(end + timedelta(days=1)).isoformat()}T00:00:00"
    if values["commune"]:
        f["communes"] = [values["commune"]]
    if values["categorie"]:
        f["categories"] = [values["categorie"]]
    if values["texte"]:
        f["text"] = values["texte"][:100]
    if values["gratuit"] == "oui":
        f["free"] = True
    known = {k for k, _ in ACCESSIBILITY}
    if values["acces"]:
        f["accessibility"] = [a for a in values["acces"] if a in known]
    return f, values


@page("/agenda")
async def agenda(ctx: Ctx):
    errors = FormErrors()
    f, values = agenda_filter(ctx, errors)
    choices = (await ctx.run("AgendaChoices")).data or {"communes": [], "categories": []}
    events, total, next_url = [], 0, None
    after = ctx.param("apres") or None
    if not errors:
        result = await ctx.run("AgendaPage", filter=f, first=AGENDA_PAGE, after=after)
        if result.ok:
            conn = result.data["events"]
            events, total = [e["node"] for e in conn["edges"]], conn["totalCount"]
            if conn["pageInfo"]["hasNextPage"]:
                query = [(k, v) for k, v in ctx.request.query_params.multi_items() if k != "apres"]
                next_url = "/agenda?" + urlencode(query + [("apres", conn["pageInfo"]["endCursor"])])
        else:
            errors = FormErrors.of(result.problems, {"communes": "commune", "categories": "categorie", "text": "texte",
                                                     "from": "du", "to": "au", "starts_after": "du",
                                                     "starts_before": "au"})
    first_url = None
    if after:
        first_url = "/agenda?" + urlencode([(k, v) for k, v in ctx.request.query_params.multi_items() if k != "apres"])
    return ctx.render("agenda.html", title="Agenda", events=events, total=total, values=values, errors=errors,
                      communes=choices["communes"], categories=choices["categories"], accessibility=ACCESSIBILITY,
                      next_url=next_url, first_url=first_url, paged=bool(after))


# -- signing in and out -----------------------------------------------------------------------------------------
def safe_next(target: str | None) -> str | None:
    """Only a path of this site (never //other.example or a scheme)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


@page("/connexion", methods=("GET", "POST"))
async def sign_in(ctx: Ctx):
    errors = FormErrors()
    suite = safe_next(ctx.param("suite") or ctx.form.get("suite"))
    email = ctx.form.text("email")
    if ctx.request.method == "POST":
        if not email:
            errors.add("email", "Indiquez votre adresse électronique.")
        else:
            result = await ctx.run("RequestLoginCode", email=email)
            if result.ok:
                response = ctx.redirect("/connexion/code")
                ctx.cookies.append(lambda r: ctx.web.sessions.set_signed(r, LOGIN, {"e": email, "s": suite}, 600))
                return response
            errors = FormErrors.of(result.problems, {"email": "email"})
    return ctx.render("sign_in.html", title="Se connecter", errors=errors, email=email, suite=suite or "")


@page("/connexion/code", methods=("GET", "POST"))
async def sign_in_code(ctx: Ctx):
    pending = ctx.web.sessions.unsign(ctx.request.cookies.get(LOGIN), 600)
    if pending is None:
        return ctx.redirect("/connexion", "Demandez un nouveau code : le précédent a expiré (10 minutes).")
    errors = FormErrors()
    if ctx.request.method == "POST":
        code = re.sub(r"\s", "", ctx.form.text("code"))
        if not code:
            errors.add("code", "Indiquez le code à 6 chiffres reçu par courriel.")
        else:
            result = await ctx.run("VerifyLoginCode", email=pending["e"], code=code)
            if result.ok:
                session = result.data["verifyLoginCode"]
                expires = instant(session["expiresAt"]).timestamp()
                role = session["role"].lower()
                response = ctx.redirect(safe_next(pending.get("s")) or HOME_OF.get(role, "/compte"),
                                        "Vous êtes connecté.")
                ctx.cookies.append(lambda r: ctx.web.sessions.open(r, session["token"], expires))
                ctx.cookies.append(lambda r: ctx.web.sessions.drop(r, LOGIN))
                return response
            errors = FormErrors.of(result.problems, {"code": "code", "email": "code"})
    return ctx.render("sign_in_code.html", title="Saisir le code reçu", errors=errors, email=pending["e"],
                      dev=not ctx.web.gateway.settings.production)


@page("/deconnexion", methods=("POST",))
async def sign_out(ctx: Ctx):
    if ctx.signed_in:
        await ctx.run("SignOut")  # the token is revoked: refused everywhere within 5 s, here at once
    ctx.cookies.append(ctx.web.sessions.close)
    return ctx.redirect("/", "Vous êtes déconnecté.")


@page("/compte", roles=SIGNED_IN)
async def account(ctx: Ctx):
    return ctx.render("account.html", title="Mon espace")
