"""payment_link service entrypoints: régies, payment links, provider sessions and notifications, refunds,
reconciliation.

Transport only. Rules in domain.py; orchestration in payments.py (régies, links, who may see what, every state
change with its event), sessions.py (« Payer », notifications, results read back from the provider), refunds.py,
reconcile.py (the timer's round, the accountant's day); storage in store.py; providers in providers/; metrics in
metrics.py.
"""
from __future__ import annotations

from nameko.extensions import DependencyProvider

from contracts import payment_link as c
from services.common.events import Events
from services.common.mongo import Mongo, utcnow
from services.common.rpc import batch_calls, batch_reply, contract, rpc, settle
from services.common.service import ServiceBase
from services.common.settings import Settings, service_settings
from services.common.timers import timer
from services.payment_link import metrics
from services.payment_link.payments import Payments
from services.payment_link.providers import build_providers
from services.payment_link.reconcile import Reconciliation
from services.payment_link.refunds import Refunds
from services.payment_link.sessions import Sessions
from services.payment_link.settings import PaymentLinkSettings
from services.payment_link.store import PaymentLinkStore

class Providers(DependencyProvider):
    """The payment providers of this process (PayFiP, and the sandbox card provider when configured)."""

    def setup(self):
        settings = service_settings(self.container)
        self.providers = build_providers(payfip_url=settings.payfip_url or None,
                                         sandbox_url=settings.sandbox_url or None,
                                         timeout=settings.provider_timeout)
        metrics.initialise()

    def get_dependency(self, worker_ctx):
        return self.providers


class PaymentLinkService(ServiceBase):
    name = "payment_link"
    store: PaymentLinkStore = Mongo(PaymentLinkStore)
    events = Events()
    settings: PaymentLinkSettings = Settings(PaymentLinkSettings)
    providers = Providers()

    # -- the orchestrations, per request (each takes the instant of the request) ---------------------------
    def _with(self, cls):
        now = utcnow()  # to the millisecond, as stored: keyset cursors compare what was written
        return cls(self.store, self.events.build, self.caller, self.providers, self.settings,
                   now.replace(microsecond=now.microsecond // 1000 * 1000))

    @property
    def payments(self) -> Payments:
        return self._with(Payments)

    @property
    def sessions(self) -> Sessions:
        return self._with(Sessions)

    @property
    def refunds(self) -> Refunds:
        return self._with(Refunds)

    @property
    def reconciliation(self) -> Reconciliation:
        return self._with(Reconciliation)

    # -- régies (agents) ---------------------------------------------------------------------------------
    @rpc
    @contract(c.SAVE_REGIE)
    def save_regie(self, req: c.RegieInput) -> dict:
        return self.payments.save_regie(req)

    @rpc
    @contract(c.LIST_REGIES)
    def list_regies(self, req: c.ListRegies) -> list[dict]:
        return self.payments.list_regies(req)

    # -- payment links (agents, billing software) --------------------------------------------------------
    @rpc
    @contract(c.CREATE_PAYMENT_LINK)
    def create_payment_link(self, req: c.CreatePaymentLink) -> dict:
        return self.payments.create(req)

    @rpc
    @contract(c.CREATE_PAYMENT_LINKS)
    def create_payment_links(self, req) -> dict:
        """The gateway's group commit of createPaymentLink (gateway/batching.py): each item answered as its own
        create_payment_link would be, under its own caller; the new links written by one unordered insert."""
        now = self._with(Payments).now
        calls = batch_calls(self.settings.secret, c.CREATE_PAYMENT_LINK, req.items)
        answers = Payments.create_many([
            (Payments(self.store, self.events.build, call.caller, self.providers, self.settings, now),
             call.error if call.error is not None else call.request) for call in calls])
        settle(calls, answers)
        return batch_reply(c.CREATE_PAYMENT_LINK, calls)

    @rpc
    @contract(c.GET_PAYMENT)
    def get_payment(self, req: c.PaymentRef) -> dict:
        return self.payments.get(req.id)

    @rpc
    @contract(c.LIST_PAYMENTS)
    def list_payments(self, req: c.ListPayments) -> dict:
        return self.payments.list(req)

    @rpc
    @contract(c.MY_PAYMENTS)
    def my_payments(self, req: c.MyPayments) -> dict:
        return self.payments.mine(req)

    @rpc
    @contract(c.CANCEL_PAYMENT)
    def cancel_payment(self, req: c.CancelPayment) -> dict:
        return self.payments.cancel(req)

    # -- the payer (public page) and the providers -------------------------------------------------------
    @rpc
    @contract(c.PAYMENT_PAGE)
    def payment_page(self, req: c.PaymentPageRequest) -> dict:
        return self.sessions.page(req)

    @rpc
    @contract(c.START_SESSION)
    def start_session(self, req: c.StartSession) -> dict:
        return self.sessions.start(req)

    @rpc
    @contract(c.HANDLE_NOTIFICATION)
    def handle_notification(self, req: c.ProviderNotification) -> dict:
        return self.sessions.notification(req)

    @rpc
    @contract(c.HANDLE_NOTIFICATIONS)
    def handle_notifications(self, req) -> dict:
        """The gateway's group commit of the notification route (gateway/batching.py): each item answered as its
        own handle_notification would be, the read-backs made together."""
        now = self._with(Sessions).now
        calls = batch_calls(self.settings.secret, c.HANDLE_NOTIFICATION, req.items)
        answers = Sessions.notifications([
            (Sessions(self.store, self.events.build, call.caller, self.providers, self.settings, now),
             call.error if call.error is not None else call.request) for call in calls],
            concurrency=self.settings.max_workers)
        settle(calls, answers)
        return batch_reply(c.HANDLE_NOTIFICATION, calls)

    # -- refunds (agents) --------------------------------------------------------------------------------
    @rpc
    @contract(c.REFUND_PAYMENT)
    def refund_payment(self, req: c.RefundPayment) -> dict:
        return self.refunds.refund(req)

    @rpc
    @contract(c.SETTLE_REFUND)
    def settle_refund(self, req: c.SettleRefund) -> dict:
        return self.refunds.settle(req)

    # -- reconciliation ----------------------------------------------------------------------------------
    @rpc
    @contract(c.RECONCILE)
    def reconcile(self, req: c.Reconcile) -> dict:
        self.caller.require({"agent", "operator"})
        return self.reconciliation.round(req)

    @rpc
    @contract(c.RECONCILIATION_REPORT)
    def reconciliation_report(self, req: c.ReconciliationQuery) -> dict:
        return self.reconciliation.report(req)

    @timer("reconcile_interval", exclusive=True)
    def reconcile_round(self) -> dict | None:
        """Ask the providers about payments without a result (lost notifications, P5) until final or expired
        (sessions end after 90 minutes): once across replicas (a lease), every PARVIS_PAYMENT_RECONCILE_INTERVAL s."""
        report = self.reconciliation.round(c.Reconcile(limit=500), expire=False)
        return report if report["examined"] else None  # logged at INFO when it did something, else at DEBUG

    @timer("reconcile_interval", exclusive=True)
    def expire_links(self) -> dict | None:
        """Links never started whose due date passed become failed (P0020): once across replicas."""
        expired = self.reconciliation.expire(500)
        return {"expired": expired} if expired else None
