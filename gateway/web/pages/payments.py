"""The payer's pages: /pay/<id> (the bill: amount, reference, authority, and « Payer », a form that starts the
provider session and sends the payer there) and /pay/<id>/retour (the result as read back from the provider:
payé, refusé, abandonné or en cours de confirmation, with a receipt). Everything shown comes from our store,
never from the URL; the pages work without JavaScript."""
from __future__ import annotations

from gateway.web.core import Ctx, PageError, page, page_error

# The « Payer » form's answer is a redirect to the provider's page (PayFiP, or the sandbox card page): the page
# that holds the form lets it go there (CSP form-action), and only this page.
PROVIDER_FORM_ACTION = "https: http://127.0.0.1:* http://localhost:*"

OUTCOMES = {
    "success": ("Paiement effectué", "success"),
    "failed": ("Paiement non effectué", "failed"),
    "cancelled": ("Lien de paiement annulé", "failed"),
    "error": ("Paiement en erreur", "failed"),
    "submitted": ("Paiement en cours de confirmation", "pending"),
    "started": ("Paiement en cours de confirmation", "pending"),
    "created": ("Facture à payer", "open"),
}


async def _payment(ctx: Ctx, payment_id: str, refresh: bool = False) -> dict:
    result = await ctx.run("PaymentPage", id=payment_id, refresh=refresh)
    if result.problems:
        raise page_error(result.problems[0])
    payment = result.data["paymentPage"]
    payment["state"], payment["provider"] = payment["state"].lower(), payment["provider"].lower()
    return payment


@page("/pay/{id}", methods=("GET", "POST"))
async def pay(ctx: Ctx):
    payment_id = ctx.request.path_params["id"]
    problem = None
    if ctx.request.method == "POST":
        result = await ctx.run("StartPayment", id=payment_id)
        if result.ok:
            return ctx.redirect(result.data["startPayment"]["nextUrl"])
        problem = result.problems[0]
        if problem.code not in ("CONFLICT", "BAD_USER_INPUT", "SERVICE_UNAVAILABLE"):
            raise page_error(problem)
    payment = await _payment(ctx, payment_id)
    response = ctx.render("pay.html", title=f"Payer la facture {payment['reference']}", payment=payment,
                          problem=problem, http_status=409 if problem else 200)
    response.form_action = PROVIDER_FORM_ACTION
    return response


@page("/pay/{id}/retour")
async def pay_return(ctx: Ctx):
    payment = await _payment(ctx, ctx.request.path_params["id"], refresh=True)
    if payment["state"] == "created":
        raise PageError(409, "Paiement non commencé", "Aucun paiement n'a été commencé pour cette facture.")
    title, outcome = OUTCOMES[payment["state"]]
    return ctx.render("pay_result.html", title=title, payment=payment, outcome=outcome)
