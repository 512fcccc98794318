"""Consultation pages over HTTP, in French and accessible (RGAA: headings, fieldsets with legends, labels, error
messages tied to their question, a print stylesheet):

- `/consultations/<id>`: the public page of a consultation, and its form for a signed-in citizen (sign-in by emailed
  code on the page, or `#token=<citizen token>`); the script (`/consultations/form.js`) shows a question when its
  display conditions hold and sends the answers through GraphQL, like any client;
- `/consultations/<id>/print`: the paper form or ballot (every question type; a budget's projects on the ballot by
  heading, with their prices), with a box for the booth and the sheet number used by double entry;
- `/consultations/<id>/results`: the published results (participation only before), and their open data:
  `/consultations/<id>/results.csv`, `results.json`, and `/consultations/<id>/<heading>.pb` (Pabulib).
"""
from __future__ import annotations

import html
import json
import uuid
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route

from contracts.errors import NotFound, ParvisError
from contracts.platform import Caller
from gateway.web.survey import written_conditions

PARIS = ZoneInfo("Europe/Paris")
STATIC = Path(__file__).resolve().parent.parent / "static" / "consultation"
e = html.escape
KIND_LABELS = {"SURVEY": "Enquête", "CONSULTATION": "Consultation", "BUDGET": "Budget participatif"}
STATE_LABELS = {"DRAFT": "brouillon", "SCHEDULED": "à venir", "OPEN": "ouverte", "CLOSED": "close",
                "RESULTS_PUBLISHED": "résultats publiés", "ARCHIVED": "archivée"}
MONTHS = ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
          "novembre", "décembre"]
STYLE = """body { font: 17px/1.5 system-ui, sans-serif; color: #1b1b1b; max-width: 46rem; margin: 1.5rem auto;
padding: 0 1rem; } h1 { font-size: 1.8rem; } h2 { font-size: 1.3rem; margin-top: 2rem; }
fieldset { border: 1px solid #6b6b6b; border-radius: 4px; margin: 0 0 1.2rem; padding: .6rem 1rem 1rem; }
legend { font-weight: 700; padding: 0 .3rem; } .help { color: #3a3a3a; margin: .2rem 0 .5rem; }
label { display: block; margin: .25rem 0; } input[type=text], input[type=email], textarea, select { font: inherit;
padding: .35rem; border: 1px solid #555; border-radius: 3px; max-width: 100%; } textarea { width: 100%; min-height: 6rem; }
table { border-collapse: collapse; width: 100%; } th, td { border: 1px solid #777; padding: .3rem .5rem; text-align: left; }
.error { color: #a00000; font-weight: 700; } .required { color: #a00000; } .status { background: #eef3fb;
border-left: 4px solid #0b57d0; padding: .6rem 1rem; } button { font: inherit; padding: .5rem 1.2rem; background: #0b57d0;
color: #fff; border: 0; border-radius: 4px; cursor: pointer; } button:focus, input:focus, select:focus, textarea:focus
{ outline: 3px solid #ffbf47; outline-offset: 1px; } a { color: #0b57d0; } .receipt { font: 1.4rem monospace; }
.line { border-bottom: 1px solid #000; height: 1.6rem; } .box { display: inline-block; width: 2rem; height: 1.6rem;
border: 1px solid #000; vertical-align: middle; } .sheet { border: 2px solid #000; padding: .5rem 1rem; }
@media print { @page { size: A4; margin: 14mm; } body { font-size: 11pt; max-width: none; margin: 0; }
.no-print, nav, button { display: none !important; } fieldset { break-inside: avoid; } a { color: #000; } }"""


def _date(value: datetime | None) -> str:
    if value is None:
        return ""
    local = value.astimezone(PARIS)
    return f"{local.day} {MONTHS[local.month - 1]} {local.year} à {local:%H:%M}"


def euros(cents: int) -> str:
    whole, rest = divmod(cents, 100)
    text = f"{whole:,}".replace(",", "\u202f")
    return f"{text},{rest:02d}\u00a0€" if rest else f"{text}\u00a0€"


def page(title: str, body: str, status: int = 200, script: bool = False) -> HTMLResponse:
    tail = '<script src="/consultations/form.js"></script>' if script else ""
    return HTMLResponse(f"""<!doctype html><html lang="fr"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{e(title)} – Sicoval</title>
<style>{STYLE}</style></head><body><main id="contenu">{body}</main>{tail}</body></html>""", status_code=status)


# -- questions, for the web form and the paper form alike ---------------------------------------------------
def question_html(q: dict, printed: bool) -> str:
    qid, t = q["id"], q["type"]
    if t == "SECTION":
        return f'<h2 id="q-{e(qid)}">{e(q["label"])}</h2>' + (f'<p class="help">{e(q["description"])}</p>'
                                                                if q.get("description") else "")
    name = f"q-{qid}"
    mark = ' <span class="required">(obligatoire)</span>' if q.get("mandatory") else ""
    help_parts = [q["description"]] if q.get("description") else []
    if t == "MULTIPLE_CHOICE":
        help_parts.append(f"De {q.get('min_choices') or 0} à {q.get('max_choices')} choix.")
    if t == "RANKING":
        help_parts.append(f"Numérotez de 1 (préféré) à {len(q['options'])}, chaque numéro une fois.")
    if t in ("SHORT_TEXT", "LONG_TEXT") and q.get("max_characters"):
        help_parts.append(f"{q['max_characters']} caractères au plus.")
    described = f"{name}-help {name}-error"
    help_html = f'<p class="help" id="{name}-help">{e(" ".join(help_parts))}</p>'
    conditions = json.dumps(q.get("conditions") or [])
    body = ""
    if t in ("SINGLE_CHOICE", "MULTIPLE_CHOICE", "YES_NO"):
        kind = "checkbox" if t == "MULTIPLE_CHOICE" else "radio"
        options = q["options"] if t != "YES_NO" else [{"id": "yes", "label": "Oui"}, {"id": "no", "label": "Non"}]
        for o in options:
            oid = f"{name}-{o['id']}"
            body += (f'<label for="{e(oid)}"><input type="{kind}" id="{e(oid)}" name="{e(name)}" value="{e(o["id"])}"> '
                     f'{e(o["label"])}</label>')
            if o.get("free_text"):
                body += (f'<label for="{e(oid)}-text">Précisez « {e(o["label"])} » :</label>'
                         f'<input type="text" id="{e(oid)}-text" name="{e(name)}-other" maxlength="500">')
    elif t == "RANKING":
        for o in q["options"]:
            oid = f"{name}-{o['id']}"
            if printed:
                body += f'<label for="{e(oid)}"><span class="box" id="{e(oid)}"></span> {e(o["label"])}</label>'
            else:
                choices = "".join(f"<option>{n}</option>" for n in range(1, len(q["options"]) + 1))
                body += (f'<label for="{e(oid)}">{e(o["label"])} : <select id="{e(oid)}" name="{e(name)}" '
                         f'data-option="{e(o["id"])}"><option value="">—</option>{choices}</select></label>')
    elif t == "RATING":
        scale = q.get("scale") or {"min": 1, "max": 5, "labels": []}
        labels = {s["value"]: s["label"] for s in scale.get("labels") or []}
        for v in range(scale["min"], scale["max"] + 1):
            oid = f"{name}-{v}"
            text = f"{v}" + (f" ({labels[v]})" if v in labels else "")
            body += (f'<label for="{e(oid)}" style="display:inline-block;margin-right:1rem"><input type="radio" '
                     f'id="{e(oid)}" name="{e(name)}" value="{v}"> {e(text)}</label>')
    elif t in ("MATRIX_SINGLE", "MATRIX_MULTIPLE"):
        kind = "radio" if t == "MATRIX_SINGLE" else "checkbox"
        head = "".join(f'<th scope="col">{e(o["label"])}</th>' for o in q["options"])
        rows = ""
        for r in q["rows"]:
            cells = "".join(
                f'<td><input type="{kind}" name="{e(name)}-{e(r["id"])}" value="{e(o["id"])}" '
                f'aria-label="{e(r["label"])} : {e(o["label"])}"></td>' for o in q["options"])
            rows += f'<tr><th scope="row">{e(r["label"])}</th>{cells}</tr>'
        body = (f'<table data-matrix="{e(qid)}"><thead><tr><td></td>{head}</tr></thead>'
                f'<tbody>{rows}</tbody></table>')
    else:
        tag_id = f"{name}-text"
        limit = q.get("max_characters") or 250
        # The text box is named by the question itself (its legend), not by a "your answer" label repeated.
        named = f'aria-labelledby="{e(name)}-legend" aria-describedby="{described}"'
        if printed:
            lines = 2 if t == "SHORT_TEXT" else 6
            body = '<p>Votre réponse :</p>' + '<div class="line"></div>' * lines
        elif t == "SHORT_TEXT":
            body = f'<input type="text" id="{e(tag_id)}" name="{e(name)}" maxlength="{limit}" size="40" {named}>'
        else:
            body = f'<textarea id="{e(tag_id)}" name="{e(name)}" maxlength="{limit}" {named}></textarea>'
    return (f'<fieldset id="{e(name)}" data-question="{e(qid)}" data-type="{t}" data-conditions="{e(conditions)}" '
            f'aria-describedby="{described}"><legend id="{e(name)}-legend">{q["position"]}. {e(q["label"])}{mark}'
            f'</legend>{help_html}{body}<p class="error" id="{name}-error" role="alert"></p></fieldset>')


def conditions_note(q: dict, by_id: dict) -> str:
    """On paper, a condition is written out: 'Si vous avez répondu « Oui » à la question 2'."""
    note = written_conditions(q, by_id, "question_id")
    return f'<p class="help"><em>{e(note)}</em></p>' if note else ""


def form_html(view: dict, printed: bool) -> str:
    by_id = {q["id"]: q for q in view["questions"]}
    out = []
    for q in view["questions"]:
        block = question_html(q, printed)
        if printed and q.get("conditions"):
            block = block.replace("</legend>", "</legend>" + conditions_note(q, by_id), 1)
        out.append(block)
    return "".join(out)


def ballot_html(view: dict, projects: list[dict]) -> str:
    budget = view["budget"]
    rule = budget["rule"]
    out = []
    for h in budget["headings"]:
        mine = [p for p in projects if p["heading_id"] == h["id"]]
        if rule["kind"] == "KNAPSACK":
            least = (f" et au moins {rule['min_share_percent']} % de ce montant"
                     if rule.get("min_share_percent") else "")
            rule_text = f"Cochez les projets de votre choix : leur total ne doit pas dépasser {euros(h['amount_cents'])}{least}."
        else:
            rule_text = f"Cochez au plus {h.get('max_projects') or rule.get('max_projects')} projets."
        rows = "".join(
            f'<tr><td><input type="checkbox" id="p-{e(p["id"])}" name="h-{e(h["id"])}" value="{e(p["id"])}" '
            f'data-price="{p["price_cents"] or 0}"></td><td><label for="p-{e(p["id"])}">{e(p["title"])}</label></td>'
            f'<td>{euros(p["price_cents"]) if p["price_cents"] is not None else "—"}</td></tr>' for p in mine)
        table = (f'<table><caption class="help">{e(rule_text)}</caption><thead><tr><th scope="col">Choix</th>'
                 f'<th scope="col">Projet</th><th scope="col">Coût</th></tr></thead><tbody>{rows}</tbody></table>'
                 if mine else "<p>Les projets soumis au vote ne sont pas encore connus.</p>")
        communes = ", ".join(h["communes"]) or "tout le territoire"
        out.append(f'<fieldset><legend>{e(h["name"])} — {euros(h["amount_cents"])} ({e(communes)})</legend>'
                   f'{table}</fieldset>')
    per_voter = budget["max_headings_per_voter"]
    intro = ("Votez dans la section de votre commune." if per_voter == 1
             else f"Vous pouvez voter dans {per_voter} sections au plus.")
    return f"<p>{intro}</p>" + "".join(out)


def header_html(view: dict) -> str:
    when = ""
    if view.get("opens_at") and view.get("closes_at"):
        when = f"<p>Du {_date(view['opens_at'])} au {_date(view['closes_at'])}.</p>"
    return (f'<p>{KIND_LABELS[view["kind"]]} · {STATE_LABELS[view["state"]]}</p><h1>{e(view["title"])}</h1>'
            f'<p>{e(view["summary"])}</p>{when}<div>{view["description_html"]}</div>')


def print_page(view: dict, projects: list[dict]) -> str:
    secret = ("<p>Vote secret : pliez ce bulletin et glissez-le dans l'urne. Un bulletin qui ne respecte pas la règle "
              "est nul.</p>" if view["secret"] else "")
    content = ballot_html(view, projects) if view["kind"] == "BUDGET" else form_html(view, True)
    return (f"{header_html(view)}<h2>Comment répondre</h2><p>Cochez les cases, écrivez lisiblement en lettres "
            f"capitales. Une seule feuille par personne.</p>{secret}<form aria-label=\"Formulaire papier\">{content}"
            "</form><h2>Cadre réservé au bureau de vote</h2><div class=\"sheet\"><p>Bureau : "
            "<span class=\"line\" style=\"display:inline-block;width:12rem\"></span> Feuille n° "
            "<span class=\"box\"></span><span class=\"box\"></span><span class=\"box\"></span></p><p>Saisi par "
            "(deux agents) : <span class=\"line\" style=\"display:inline-block;width:20rem\"></span></p></div>"
            f"<p class=\"help\">Sicoval · imprimé le {_date(datetime.now(PARIS))} · {e(view['url'])}</p>")


def answer_page(view: dict, projects: list[dict]) -> str:
    parts = [header_html(view), '<p class="no-print"><a href="'
             f'/consultations/{e(view["id"])}/print">Version papier à imprimer</a></p>']
    if view["participants"] is not None:
        parts.append(f'<p>{view["participants"]} participant{"s" if view["participants"] > 1 else ""} à ce jour.</p>')
    if view["state"] in ("RESULTS_PUBLISHED", "ARCHIVED") and view.get("results_published_at"):
        parts.append(f'<p><a href="/consultations/{e(view["id"])}/results">Voir les résultats</a></p>')
    if view["state"] == "OPEN" and view["kind"] != "BUDGET":
        parts.append(f"""<section aria-labelledby="signin-title" id="signin" class="no-print">
<h2 id="signin-title">Se connecter pour répondre</h2>
<p>Recevez un code par courriel : c'est tout ce qu'il faut pour répondre, une fois par personne.</p>
<label for="signin-email">Votre adresse électronique</label> <input type="email" id="signin-email" autocomplete="email">
<button type="button" id="signin-send">Recevoir un code</button>
<div id="signin-code-step" hidden><label for="signin-code">Code reçu</label> <input type="text" id="signin-code"
inputmode="numeric" autocomplete="one-time-code"> <button type="button" id="signin-verify">Valider</button></div>
<p id="signin-status" role="status" aria-live="polite"></p></section>
<form id="answer-form" data-consultation="{e(view["id"])}" data-secret="{str(view["secret"]).lower()}" hidden
aria-labelledby="form-title" novalidate><h2 id="form-title">Vos réponses</h2>
<p class="help">Les questions marquées « obligatoire » appellent une réponse.
{"Vote secret : une fois envoyées, vos réponses sont définitives." if view["secret"] else
 "Vous pourrez modifier vos réponses jusqu'à la clôture."}</p>
{form_html(view, False)}<p id="form-status" role="status" aria-live="polite"></p>
<button type="button" id="save-draft">Enregistrer le brouillon</button> <button type="submit">Envoyer mes réponses</button>
</form><section id="done" hidden aria-labelledby="done-title" tabindex="-1"><h2 id="done-title">Merci, vos réponses sont
enregistrées</h2><p id="done-text"></p></section>""")
    elif view["kind"] == "BUDGET" and projects:
        parts.append("<h2>Projets soumis au vote</h2>" + ballot_html(view, projects).replace(
            'type="checkbox"', 'type="checkbox" disabled'))
    return "".join(parts)


def results_page(view: dict, r: dict) -> str:
    p = r["participation"]
    parts = [f'<h1>Résultats : {e(view["title"])}</h1>',
             f'<p>{p["total"]} participants : {p["web"]} en ligne, {p["paper_ballots"]} bulletins papier '
             f'({p["blank"]} blancs, {p["null"]} nuls), {p["booth"]} votants enregistrés au bureau de vote.</p>']
    if r.get("published_at") is None:
        parts.append('<p class="status">Les résultats seront publiés après la clôture.</p>')
        return "".join(parts)
    base = f"/consultations/{e(view['id'])}"
    links = [f'<a href="{base}/results.csv">CSV</a>', f'<a href="{base}/results.json">JSON</a>']
    links += [f'<a href="{base}/{e(h["heading_id"])}.pb">Pabulib ({e(h["name"])})</a>' for h in r["headings"]]
    parts.append(f'<p>Données ouvertes (Licence Ouverte) : {" · ".join(links)}</p>')
    if view["kind"] == "BUDGET" or view.get("secret"):
        parts.append(f'<p><a href="{base}/verifier">Vérifier un reçu de vote</a> : le code donné à la fin du vote '
                     'montre que le bulletin a été compté.</p>')
    for h in r["headings"]:
        rows = "".join(f'<tr><td>{x["rank"]}</td><td>{e(x["title"])}</td><td>{euros(x["price_cents"])}</td>'
                       f'<td>{x["votes"]["total"]}</td><td>{"lauréat" if x["winner"] else ""}</td></tr>'
                       for x in h["projects"])
        parts.append(f'<h2>{e(h["name"])} — {euros(h["amount_cents"])}</h2><table><thead><tr><th scope="col">Rang</th>'
                     '<th scope="col">Projet</th><th scope="col">Coût</th><th scope="col">Voix</th><th scope="col">'
                     f'Résultat</th></tr></thead><tbody>{rows}</tbody></table>')
    for q in r["questions"]:
        items = [f"<li>{e(o['label'])} : {o['count']}" + (f" ({o['percent']:g} %)" if o.get("percent") is not None
                                                          else "") + "</li>" for o in q["options"]]
        items += [f"<li>{e(s['label'])} : {s['points']} points</li>" for s in q["ranking"]]
        if q.get("rating"):
            items.append(f"<li>Moyenne : {q['rating']['mean'] if q['rating']['mean'] is not None else '—'}</li>")
        for row in q["rows"]:
            items.append(f"<li>{e(row['label'])} : " + ", ".join(f"{e(o['label'])} {o['count']}"
                                                                   for o in row["options"]) + "</li>")
        if not q["charted"]:
            items.append(f"<li>{q['answered']} réponses libres (non publiées)</li>")
        parts.append(f"<h2>{e(q['label'])}</h2><p>{q['answered']} réponses</p><ul>{''.join(items)}</ul>")
    return "".join(parts)


def routes(gateway) -> list:
    async def call(request: Request, method: str, **kwargs):
        cid = request.scope.get("state", {}).get("correlation_id") or uuid.uuid4().hex
        return await gateway.call("consultation", method, caller=Caller(), correlation_id=cid, **kwargs)

    async def view_and_projects(request: Request) -> tuple[dict, list[dict]]:
        view = await call(request, "get_consultation", id=request.path_params["id"])
        projects: list[dict] = []
        if view["kind"] == "BUDGET":
            reply = await call(request, "list_projects", budget_id=view["id"], filter={"selected": True}, first=200)
            projects = reply["items"]
        return view, projects

    def guarded(handler):
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except NotFound:
                return page("Consultation introuvable", "<h1>Consultation introuvable</h1><p>Cette consultation "
                            "n'existe pas ou n'est pas encore publiée.</p>", 404)
            except ParvisError as exc:
                status = {"BAD_USER_INPUT": 400, "CONFLICT": 409, "SERVICE_UNAVAILABLE": 503}.get(exc.code, 500)
                return page("Page indisponible", f"<h1>Page indisponible</h1><p>{e(exc.message)}</p>", status)
        return endpoint

    async def show(request: Request) -> Response:
        view, projects = await view_and_projects(request)
        return page(view["title"], answer_page(view, projects), script=True)

    async def printable(request: Request) -> Response:
        view, projects = await view_and_projects(request)
        return page(f"Formulaire papier – {view['title']}", print_page(view, projects))

    async def results(request: Request) -> Response:
        view = await call(request, "get_consultation", id=request.path_params["id"])
        r = await call(request, "consultation_results", id=view["id"])
        return page(f"Résultats – {view['title']}", results_page(view, r))

    async def export(request: Request) -> Response:
        name = request.path_params["file"]
        if name in ("results.csv", "results.json"):
            fmt, heading = name.split(".")[1].upper(), None
        elif name.endswith(".pb"):
            fmt, heading = "PABULIB", name[:-3]
        else:
            raise NotFound("Fichier inconnu.")
        f = await call(request, "export_results", consultation_id=request.path_params["id"], format=fmt,
                       heading_id=heading, timeout=60.0)
        return Response(f["content"], media_type=f["content_type"], headers={
            "Content-Disposition": f'attachment; filename="{f["filename"]}"', "Access-Control-Allow-Origin": "*",
            "Link": '<https://www.etalab.gouv.fr/licence-ouverte-open-licence/>; rel="license"'})

    async def script(request: Request) -> Response:
        return FileResponse(STATIC / "form.js", media_type="text/javascript; charset=utf-8",
                            headers={"Cache-Control": "no-cache"})

    return [
        Route("/consultations/form.js", script),
        Route("/consultations/{id:str}/print", guarded(printable)),
        Route("/consultations/{id:str}/results", guarded(results)),
        Route("/consultations/{id:str}/{file:str}", guarded(export)),
        Route("/consultations/{id:str}", guarded(show)),
    ]

