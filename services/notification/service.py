"""Notification service entrypoints."""
from __future__ import annotations

from nameko.rpc import rpc

from contracts import agenda as agenda_c
from contracts import notification as c
from contracts.errors import NotFound
from services.common.events import handle_event
from services.common.mongo import Mongo
from services.common.rpc import contract
from services.common.service import ServiceBase
from services.notification.store import NotificationStore


class NotificationService(ServiceBase):
    name = "notification"
    store: NotificationStore = Mongo(NotificationStore)

    @rpc
    @contract(c.REVOKE_TOKEN)
    def revoke_token(self, req: c.RevokeToken) -> dict:
        self.caller.require({"agent", "operator"})
        return self.store.revoke(req.token_id, req.expires_at, req.reason)

    @rpc
    @contract(c.LIST_REVOKED_TOKENS)
    def list_revoked_tokens(self, _req) -> list[dict]:
        return self.store.revoked()

    @rpc
    @contract(c.GET_ORGANIZATION_CONTACT)
    def get_organization_contact(self, req: c.GetOrganizationContact) -> dict:
        doc = self.store.organization_contact(req.id)
        if doc is None:
            raise NotFound(f"Organisation inconnue : {req.id}", "id")
        return {"id": doc["_id"], "name": doc["name"], "contact_email": doc.get("contact_email")}

    @handle_event("agenda", agenda_c.OrganizationUpserted.event_type)
    def on_organization_upserted(self, data: agenda_c.OrganizationUpserted, envelope) -> None:
        self.store.save_organization_contact(data.model_dump(), envelope.event_id, envelope.occurred_at)
