"""Payments in the agents' console (the list by régie and state, one payment with its history, refunds and
cancellation, the day's reconciliation per régie with the accountant's CSV) and in a citizen's space (« Mes
paiements »)."""
from __future__ import annotations

import re
from datetime import datetime, timezone

from starlette.responses import Response

from gateway.web.core import AGENTS, CITIZEN, STAFF, Ctx, FormErrors, PageError, nav, page, page_error
from gateway.web.pages.public import parse_day
from gateway.web.render import PARIS

nav("Paiements", "/console/paiements", STAFF, area="console", order=40)
nav("Rapprochement", "/console/paiements/rapprochement", STAFF, area="console", order=41)
nav("Régies", "/console/regies", STAFF, area="console", order=42)
nav("Mes paiements", "/compte/paiements", CITIZEN, area="account", order=80)

STATES = [("CREATED", "À payer"), ("STARTED", "En cours"), ("SUBMITTED", "En cours de confirmation"),
          ("SUCCESS", "Payé"), ("FAILED", "Échoué"), ("CANCELLED", "Annulé"), ("ERROR", "En erreur")]
STATE_LABELS = dict(STATES)


def cents(text: str) -> int | None:
    """« 12,50 », « 12.5 », « 12 » (euros) as cents; None when it is not an amount."""
    m = re.fullmatch(r"(\d{1,9})(?:[.,](\d{1,2}))?", text.replace("\u202f", "").replace(" ", "").replace("€", ""))
    if not m:
        return None
    return int(m.group(1)) * 100 + int((m.group(2) or "0").ljust(2, "0"))


def _rows(connection: dict) -> list[dict]:
    return [e["node"] for e in connection["edges"]]


@page("/console/paiements", roles=STAFF)
async def payments(ctx: Ctx):
    regie, state = ctx.param("regie"), ctx.param("etat")
    flt = {**({"regieIds": [regie]} if regie else {}), **({"states": [state]} if state in STATE_LABELS else {}),
           **({"reference": ctx.param("reference")} if ctx.param("reference") else {})}
    data = await ctx.data("ConsolePayments", filter=flt, after=ctx.param("apres") or None)
    page_info = data["payments"]["pageInfo"]
    query = "&".join(f"{k}={v}" for k, v in (("regie", regie), ("etat", state)) if v)
    next_url = (f"/console/paiements?{query}&apres={page_info['endCursor']}" if page_info["hasNextPage"] else None)
    return ctx.render("payments_console.html", title="Paiements", rows=_rows(data["payments"]),
                      total=data["payments"]["totalCount"], regies=data["regies"], regie=regie, state=state,
                      reference=ctx.param("reference"), states=STATES, labels=STATE_LABELS, next_url=next_url)


@page("/console/paiements/rapprochement", roles=STAFF)
async def reconciliation(ctx: Ctx):
    day = parse_day(ctx.param("jour")) or datetime.now(timezone.utc).astimezone(PARIS).date()
    regie = ctx.param("regie") or None
    if ctx.param("format") == "csv":
        data = await ctx.data("DayReconciliation", date=day.isoformat(), regie=regie, csv=True)
        name = f"rapprochement-{day.isoformat()}{'-' + regie if regie else ''}.csv"
        return Response(data["reconciliation"]["csv"], media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})
    data = await ctx.data("DayReconciliation", date=day.isoformat(), regie=regie)
    return ctx.render("payments_reconciliation.html", title=f"Rapprochement du {day.strftime('%d/%m/%Y')}",
                      reco=data["reconciliation"], regies=data["regies"], day=day, regie=regie or "",
                      labels=STATE_LABELS, names={r["id"]: r["name"] for r in data["regies"]})


@page("/console/regies", roles=STAFF, methods=("GET", "POST"))
async def regies(ctx: Ctx):
    """The régies, and a form that adds one or changes the one named by ?id= (PayFiP's numcli, its services)."""
    data = await ctx.data("Regies")
    current = next((r for r in data["regies"] if r["id"] == (ctx.param("id") or ctx.form.get("id"))), None)
    errors = FormErrors()
    values = {"numcli": current["numcli"] if current else "", "nom": current["name"] if current else "",
              "services": ", ".join(current["services"]) if current else "",
              "prestataire": current["provider"]["provider"] if current else "PAYFIP",
              "mode": current["provider"]["payfipMode"] if current else "T",
              "active": "oui" if (current is None or current["active"]) else ""}
    if ctx.request.method == "POST":
        values = {k: ctx.form.text(k) for k in values}
        regie = {"numcli": values["numcli"], "name": values["nom"],
                 "services": [x.strip() for x in values["services"].split(",") if x.strip()],
                 "provider": {"provider": values["prestataire"] or "PAYFIP", "payfipMode": values["mode"] or "T"},
                 "active": values["active"] == "oui", **({"id": current["id"]} if current else {})}
        result = await ctx.run("SaveRegie", input=regie)
        if result.ok:
            return ctx.redirect("/console/regies", f"Régie « {result.data['saveRegie']['name']} » enregistrée.")
        errors = FormErrors.of(result.problems, {"numcli": "numcli", "name": "nom", "services": "services",
                                                 "provider": "prestataire"})
    return ctx.render("regies.html", title="Régies", regies=data["regies"], current=current, values=values,
                      errors=errors)


@page("/console/paiements/{id}", roles=AGENTS, methods=("GET", "POST"))
async def payment(ctx: Ctx):
    payment_id = ctx.request.path_params["id"]
    errors = FormErrors()
    if ctx.request.method == "POST":
        action = ctx.form.get("action")
        if action == "rembourser":
            amount = cents(ctx.form.text("montant"))
            if amount is None:
                errors.add("montant", "Montant : en euros, par exemple 12,50.")
            else:
                result = await ctx.run("RefundPayment", id=payment_id, amount=amount,
                                       seen=int(ctx.form.get("vu") or 0), reason=ctx.form.text("motif") or None)
                if result.ok:
                    return ctx.redirect(f"/console/paiements/{payment_id}", "Remboursement enregistré.")
                errors = FormErrors.of(result.problems, {"amount": "montant", "amount_available": "montant",
                                                         "state": "montant"})
        elif action in ("rembourse", "echec"):
            result = await ctx.run("SettleRefund", payment=payment_id, refund=ctx.form.get("remboursement", ""),
                                   success=action == "rembourse")
            if not result.ok:
                raise page_error(result.problems[0])
            return ctx.redirect(f"/console/paiements/{payment_id}", "Remboursement mis à jour.")
        elif action == "annuler":
            result = await ctx.run("CancelPayment", id=payment_id, reason=ctx.form.text("motif") or None)
            if result.ok:
                return ctx.redirect(f"/console/paiements/{payment_id}", "Lien de paiement annulé.")
            errors = FormErrors.of(result.problems)
    data = await ctx.data("ConsolePayment", id=payment_id)
    if data["payment"] is None:
        raise PageError(404, "Page introuvable", "Paiement introuvable.")
    p = data["payment"]
    return ctx.render("payment_console.html", title=f"Paiement {p['reference']}", p=p, labels=STATE_LABELS,
                      errors=errors, montant=ctx.form.text("montant"), back="/console/paiements")


@page("/compte/paiements", roles=CITIZEN)
async def my_payments(ctx: Ctx):
    data = await ctx.data("MyPayments", after=ctx.param("apres") or None)
    page_info = data["myPayments"]["pageInfo"]
    next_url = f"/compte/paiements?apres={page_info['endCursor']}" if page_info["hasNextPage"] else None
    return ctx.render("my_payments.html", title="Mes paiements", rows=_rows(data["myPayments"]), labels=STATE_LABELS,
                      next_url=next_url)

