"""Consultation service entrypoints: surveys, consultations and participatory budgets, online and on paper.

Transport only. Rules in domain.py, questions.py, revisions.py, phases.py, budget.py, results.py, ballots.py,
pabulib.py; storage in store.py; orchestration in lifecycle.py (a consultation's life, its form, its panel),
responses.py (taking part online), casting.py (secret ballots in rounds), projects.py (a budget's projects),
offline.py (booth check-ins, paper), publication.py (results, receipts, exports), clock.py (the timer); metrics in
metrics.py; what is answered in views.py.
"""
from __future__ import annotations

import logging
import time

from nameko.rpc import RpcProxy

from contracts import consultation as c
from contracts.errors import ParvisError
from services.common.events import Events
from services.common.mongo import Mongo, utcnow
from services.common.rpc import batch_calls, batch_reply, contract, rpc
from services.common.service import ServiceBase
from services.common.settings import Settings, timer
from services.consultation import casting, clock
from services.consultation.casting import Urn, UrnState
from services.consultation.lifecycle import Consultations, to_millisecond
from services.consultation.offline import Offline
from services.consultation.projects import Projects
from services.consultation.publication import Publication
from services.consultation.reference import CommuneList, Communes
from services.consultation.responses import Responses
from services.consultation.settings import ConsultationSettings
from services.consultation.store import ConsultationStore

log = logging.getLogger(__name__)


class ConsultationService(ServiceBase):
    name = "consultation"
    store: ConsultationStore = Mongo(ConsultationStore)
    events = Events()
    settings: ConsultationSettings = Settings(ConsultationSettings)
    urn: UrnState = Urn()
    agenda = RpcProxy("agenda")
    communes = Communes()

    # -- the orchestrations, per request (each takes the instant of the request) ---------------------------
    @staticmethod
    def _now():
        return to_millisecond(utcnow())

    @property
    def consultations(self) -> Consultations:
        return Consultations(self.store, self.events.build, self.caller, CommuneList(self.communes, self.agenda),
                             self.settings.secret, self._now())

    @property
    def responses(self) -> Responses:
        return Responses(self.store, self.urn, self.caller, self._now())

    @property
    def publication(self) -> Publication:
        return Publication(self.store, self.caller, self._now())

    @property
    def projects(self) -> Projects:
        return Projects(self.store, self.events.build, self.caller, self._now(), self.publication.outcome)

    @property
    def offline(self) -> Offline:
        return Offline(self.store, self.caller, self.settings.secret, self._now())

    # -- a consultation's life (agents) --------------------------------------------------------------
    @rpc
    @contract(c.CREATE_CONSULTATION)
    def create_consultation(self, req: c.CreateConsultation) -> dict:
        return self.consultations.create(req)

    @rpc
    @contract(c.UPDATE_CONSULTATION)
    def update_consultation(self, req: c.UpdateConsultation) -> dict:
        return self.consultations.update(req)

    @rpc
    @contract(c.SCHEDULE_CONSULTATION)
    def schedule_consultation(self, req: c.ConsultationRef) -> dict:
        return self.consultations.act(req.id, "schedule")

    @rpc
    @contract(c.UNSCHEDULE_CONSULTATION)
    def unschedule_consultation(self, req: c.ConsultationRef) -> dict:
        return self.consultations.act(req.id, "unschedule")

    @rpc
    @contract(c.OPEN_CONSULTATION)
    def open_consultation(self, req: c.ConsultationRef) -> dict:
        return self.consultations.act(req.id, "open")

    @rpc
    @contract(c.CLOSE_CONSULTATION)
    def close_consultation(self, req: c.CloseConsultation) -> dict:
        if req.reason:
            log.info("closing %s early: %s", req.id, req.reason)
        return self.consultations.act(req.id, "close")

    @rpc
    @contract(c.PUBLISH_RESULTS)
    def publish_results(self, req: c.ConsultationRef) -> dict:
        return self.consultations.act(req.id, "publish_results")

    @rpc
    @contract(c.ARCHIVE_CONSULTATION)
    def archive_consultation(self, req: c.ConsultationRef) -> dict:
        return self.consultations.act(req.id, "archive")

    @rpc
    @contract(c.ADVANCE_BUDGET_PHASE)
    def advance_budget_phase(self, req: c.AdvanceBudgetPhase) -> dict:
        return self.consultations.advance_phase(req)

    @rpc
    @contract(c.IMPORT_PANEL_MEMBERS)
    def import_panel_members(self, req: c.ImportPanelMembers) -> dict:
        return self.consultations.import_panel(req)

    # -- the form (agents) ------------------------------------------------------------------------------
    @rpc
    @contract(c.ADD_QUESTION)
    def add_question(self, req: c.AddQuestion) -> dict:
        return self.consultations.add_question(req)

    @rpc
    @contract(c.UPDATE_QUESTION)
    def update_question(self, req: c.UpdateQuestion) -> dict:
        return self.consultations.update_question(req)

    @rpc
    @contract(c.REMOVE_QUESTION)
    def remove_question(self, req: c.RemoveQuestion) -> dict:
        return self.consultations.remove_question(req)

    @rpc
    @contract(c.REORDER_QUESTIONS)
    def reorder_questions(self, req: c.ReorderQuestions) -> dict:
        return self.consultations.reorder(req)

    # -- taking part (citizens) -----------------------------------------------------------------------------
    @rpc
    @contract(c.SAVE_RESPONSE)
    def save_response(self, req: c.SaveResponse) -> dict:
        return self.responses.save_draft(req)

    @rpc
    @contract(c.SUBMIT_RESPONSE)
    def submit_response(self, req: c.SaveResponse) -> dict:
        return self.responses.submit(req)

    @rpc
    @contract(c.GET_MY_RESPONSE)
    def get_my_response(self, req: c.GetMyResponse) -> dict:
        return self.responses.mine(req)

    @rpc
    @contract(c.CAST_BUDGET_BALLOT)
    def cast_budget_ballot(self, req: c.CastBudgetBallot) -> dict:
        return self.responses.cast_ballot(req)

    @rpc
    @contract(c.CAST_BUDGET_BALLOTS)
    def cast_budget_ballots(self, req) -> dict:
        """The ballots the gateway received together (gateway/batching.py): each checked and answered as
        cast_budget_ballot would, for its own caller; those that pass are written in one round."""
        calls = batch_calls(self.settings.secret, c.CAST_BUDGET_BALLOT, req.items)
        now, jobs = self._now(), {}
        for call in calls:
            if call.error is not None:
                continue
            try:
                jobs[id(call)], call.result = Responses(self.store, self.urn, call.caller, now).ballot(call.request)
            except ParvisError as exc:
                call.error = exc
            except Exception as exc:  # noqa: BLE001 - that ballot alone fails, as it would alone
                log.exception("a ballot of a batch failed")
                call.error = exc
        casting.cast_many(self.store, self.urn, list(jobs.values()))
        for call in calls:
            job = jobs.get(id(call))
            if job is not None and job.error is not None:
                call.error = job.error
        return batch_reply(c.CAST_BUDGET_BALLOT, calls)

    @rpc
    @contract(c.MY_PARTICIPATIONS)
    def my_participations(self, req: c.MyParticipations) -> dict:
        return self.responses.participations(req)

    # -- a budget's projects ------------------------------------------------------------------------------
    @rpc
    @contract(c.PROPOSE_PROJECT)
    def propose_project(self, req: c.ProposeProject) -> dict:
        return self.projects.propose(req)

    @rpc
    @contract(c.UPDATE_PROJECT)
    def update_project(self, req: c.UpdateProject) -> dict:
        return self.projects.update(req)

    @rpc
    @contract(c.MODERATE_PROJECT)
    def moderate_project(self, req: c.ModerateProject) -> dict:
        return self.projects.moderate(req)

    @rpc
    @contract(c.SUPPORT_PROJECT)
    def support_project(self, req: c.ProjectRef) -> dict:
        return self.projects.support(req)

    @rpc
    @contract(c.ASSESS_PROJECT)
    def assess_project(self, req: c.AssessProject) -> dict:
        return self.projects.assess(req)

    @rpc
    @contract(c.PRICE_PROJECT)
    def price_project(self, req: c.PriceProject) -> dict:
        return self.projects.price(req)

    @rpc
    @contract(c.SELECT_PROJECTS)
    def select_projects(self, req: c.SelectProjects) -> list[dict]:
        return self.projects.select(req)

    @rpc
    @contract(c.LIST_PROJECTS)
    def list_projects(self, req: c.ListProjects) -> dict:
        return self.projects.page(req)

    @rpc
    @contract(c.GET_PROJECT)
    def get_project(self, req: c.ProjectRef) -> dict:
        return self.projects.get(req)

    # -- offline (agents) -----------------------------------------------------------------------------------
    @rpc
    @contract(c.CHECK_IN_VOTER)
    def check_in_voter(self, req: c.CheckInVoter) -> dict:
        return self.offline.check_in(req)

    @rpc
    @contract(c.ENTER_PAPER_BALLOTS)
    def enter_paper_ballots(self, req: c.EnterPaperBallots) -> dict:
        return self.offline.enter_ballots(req)

    @rpc
    @contract(c.ENTER_PAPER_TOTALS)
    def enter_paper_totals(self, req: c.EnterPaperTotals) -> dict:
        return self.offline.enter_totals(req)

    @rpc
    @contract(c.LIST_PAPER_ENTRIES)
    def list_paper_entries(self, req: c.ListPaperEntries) -> dict:
        return self.offline.page(req)

    # -- reading ----------------------------------------------------------------------------------------
    @rpc
    @contract(c.LIST_CONSULTATIONS)
    def list_consultations(self, req: c.ListConsultations) -> dict:
        return self.consultations.page(req)

    @rpc
    @contract(c.GET_CONSULTATION)
    def get_consultation(self, req: c.ConsultationRef) -> dict:
        return self.consultations.get(req.id)

    @rpc
    @contract(c.CONSULTATION_RESULTS)
    def consultation_results(self, req: c.ConsultationRef) -> dict:
        return self.publication.results(req.id)

    @rpc
    @contract(c.LIST_RECEIPTS)
    def list_receipts(self, req: c.ListReceipts) -> dict:
        return self.publication.receipts(req)

    @rpc
    @contract(c.VERIFY_RECEIPT)
    def verify_receipt(self, req: c.VerifyReceipt) -> dict:
        return self.publication.verify(req)

    @rpc
    @contract(c.EXPORT_RESULTS)
    def export_results(self, req: c.ExportResults) -> dict:
        return self.publication.export(req)

    # -- the clock ----------------------------------------------------------------------------------------
    @timer("clock_interval", eager=True, exclusive=True)  # one replica recovers rounds; transitions are conditional too
    def tick(self) -> int:
        """States and budget phases whose time has come (each an event, written once whatever the replicas),
        rounds of ballots and counts a crash left unfinished, then the counters' markers of finished writes."""
        now = self._now()
        done = clock.tick(self.store, self.events.build, now) + casting.recover(self.store, time.time(), self.settings.cast_recovery_after)
        self.store.flush_prunes()
        return done
