"""Compiled GraphQL paths: the four hottest operations answered without graphql-core's executor.

The contract every compiled path keeps:
- **What it may answer.** Only one operation each: the public `events` query of an anonymous caller or a
  citizen, over the gateway's public copy when it is ready (`events.py`), a kiosk's `submitKioskVotes`
  mutation (`votes.py`), a citizen's `castBudgetBallot` mutation (`ballots.py`), and an agent's or billing
  software's `createPaymentLink` (`links.py`). A document is parsed and validated once, with the limits of every
  request (depth, aliases, tokens: `plans.py`), and compiled into a plan; a request then only reads its variables.
- **The same answer as Strawberry.** The same objects, serialisers and error form (message, code, location,
  path); `tests/unit/test_fastpath.py`, `test_fastvotes.py`, `test_fastballots.py` and `test_fastlinks.py` compare
  both paths on many documents.
- **When it must hand over to Strawberry.** Whenever it is not sure: another operation or shape, a value in a
  form it does not read, invalid variables, a filter the contract refuses, a null for a non-null field, the
  copy not ready, or `strawberry_internals.check()` reporting that Strawberry changed. It then returns None
  and the request (its body replayed) goes to Strawberry, which answers or explains the error as always.
- **Strawberry's private parts** are used in `strawberry_internals.py` only, against the version pyproject.toml
  pins; a test fails loudly when an upgrade changes them.
- `PARVIS_COMPILED_PATHS` turns them off (`none`) or picks them (`events`, `votes`, `ballots`, `links`): Strawberry
  answers the rest.
"""
from __future__ import annotations

import logging
import uuid

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.compiled import strawberry_internals
from gateway.compiled.events import FastQueries
from gateway.compiled.ballots import FastBudgetBallots
from gateway.compiled.links import FastPaymentLinks
from gateway.compiled.votes import FastKioskVotes

log = logging.getLogger("parvis.gateway")

PATHS = ("events", "votes", "ballots", "links")
BILLERS = frozenset({"agent", "service"})  # who may create payment links (gateway/compiled/links.py)


class CompiledPaths:
    """The compiled paths a gateway runs (those the setting names, if Strawberry is as they expect)."""

    def __init__(self, gateway, wanted: tuple[str, ...] = PATHS):
        self.gateway = gateway
        problems = strawberry_internals.check() if wanted else []
        if problems:
            log.warning("compiled GraphQL paths off, Strawberry answers everything: %s", "; ".join(problems))
            wanted = ()
        self.events = FastQueries(gateway.schema, gateway.public_agenda) if "events" in wanted else None
        votes = FastKioskVotes(gateway.schema, production=gateway.settings.production) if "votes" in wanted else None
        self.votes = votes if votes is not None and votes.enabled else None
        ballots = FastBudgetBallots(gateway.schema, production=gateway.settings.production) \
            if "ballots" in wanted else None
        self.ballots = ballots if ballots is not None and ballots.enabled else None
        links = FastPaymentLinks(gateway.schema, production=gateway.settings.production) if "links" in wanted else None
        self.links = links if links is not None and links.enabled else None

    def middleware(self, app: ASGIApp) -> "CompiledPathsMiddleware":
        return CompiledPathsMiddleware(app, self)


class CompiledPathsMiddleware:
    """JSON POSTs that a compiled path can answer are answered there; the rest, with the body replayed, go to
    Strawberry. Sits after AuthMiddleware: a bad token never gets here."""

    def __init__(self, app: ASGIApp, paths: CompiledPaths):
        self.app, self.paths, self.gateway = app, paths, paths.gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        caller = scope.get("state", {}).get("caller")
        if scope["type"] != "http" or scope["method"] != "POST" or caller is None:
            return await self.app(scope, receive, send)
        public = (self.paths.events is not None and caller.role in ("public", "citizen")
                  and self.gateway.public_agenda.serving)
        kiosk = caller.role == "kiosk" and self.paths.votes is not None
        voter = caller.role == "citizen" and self.paths.ballots is not None
        biller = caller.role in BILLERS and self.paths.links is not None
        headers = dict(scope.get("headers") or [])
        if not (public or kiosk or voter or biller) or not headers.get(b"content-type", b"").startswith(
                b"application/json"):
            return await self.app(scope, receive, send)
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        try:
            payload = orjson.loads(body)
        except ValueError:  # orjson.JSONDecodeError: Strawberry answers with its own message
            payload = None
        result = None
        if payload is not None and public:
            result = self.paths.events.execute(payload)
        if payload is not None and result is None and (kiosk or voter):
            call = self.gateway.caller_call(caller, scope.get("state", {}).get("correlation_id") or uuid.uuid4().hex)
            if kiosk:
                result = await self.paths.votes.execute(
                    payload, lambda votes: call("satisfaction", "submit_votes", timeout=30.0, votes=votes))
            else:
                result = await self.paths.ballots.execute(
                    payload, lambda budget_id, headings: call("consultation", "cast_budget_ballot", timeout=30.0,
                                                              budget_id=budget_id, headings=headings))
        elif payload is not None and result is None and biller:
            call = self.gateway.caller_call(caller, scope.get("state", {}).get("correlation_id") or uuid.uuid4().hex)
            result = await self.paths.links.execute(payload, caller, call)
        if result is not None:
            data = orjson.dumps(result)
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
            await send({"type": "http.response.body", "body": data})
            return
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
