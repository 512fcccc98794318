"""The Parvis gateway: Starlette + Strawberry over the asyncio nameko RPC client.

Routes: /graphql (GraphiQL in dev only), /healthz, /readyz, /metrics, the web's pages (gateway/web/: / is its home
page) and the plain routes of gateway/routes/.
"""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ipaddress
import logging
import re
import time
import uuid
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, disable_created_metrics, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from cross_web import HTTPException
from strawberry.asgi import GraphQL

from contracts.errors import ParvisError, ServiceUnavailable, Unauthenticated
from contracts.platform import Caller
from gateway import auth, graphiql
from gateway.batching import batchers
from gateway.errors import english_request, map_errors
from gateway.limits import RateLimiter, client_address
from gateway.compiled import CompiledPaths
from gateway.readmodel import PublicAgenda
from gateway import web
from gateway.routes import all_routes
from gateway.rpc import RemoteError, RpcClient, read_reply
from gateway.schema import MAX_DOCUMENT_BYTES, build_schema
from gateway.schema.agenda import to_event
from gateway.schema.platform import ping_all
from gateway.settings import GatewaySettings
from gateway.sharedreads import SharedReads
from core import logjson
from core.settings import SERVICES
from core.logjson import SLO_BUCKETS

log = logging.getLogger("parvis.gateway")
disable_created_metrics()
correlation_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)

MAX_BODY_BYTES = 1 << 20  # 1 MiB: a GraphQL document plus 500 kiosk votes fit well below it
CORRELATION_RE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

RPC_CALLS = Counter("parvis_rpc_client_calls_total", "RPC calls from the gateway", ["service", "method", "outcome"])
RPC_DURATION = Histogram("parvis_rpc_client_duration_seconds", "RPC round trip seen by the gateway",
                         ["service", "method"], buckets=SLO_BUCKETS)
HTTP_REQUESTS = Counter("parvis_http_requests_total", "HTTP requests", ["route", "status"])
HTTP_DURATION = Histogram("parvis_http_request_duration_seconds", "HTTP request time", ["route"], buckets=SLO_BUCKETS)
ROUTES = {"/graphql", "/healthz", "/readyz", "/metrics", "/"}
UNLIMITED = {"/healthz", "/readyz", "/metrics"}  # probes and scrapes, not clients
RATE_LIMITED = Counter("parvis_gateway_rate_limited_total", "Anonymous requests refused by the rate limit")


class GatewayJsonFormatter(logjson.JsonFormatter):
    def context(self) -> dict:
        cid = correlation_var.get()
        return {"correlation_id": cid} if cid else {}


def configure_logging(level: str = "INFO") -> None:
    logjson.configure(GatewayJsonFormatter("gateway"), level, quiet=("aiormq", "aio_pika"))


class Revocations:
    """Revoked token ids, refreshed from the notification service every few seconds."""

    def __init__(self):
        self.ids: set[str] = set()
        self.loaded = False

    def add(self, token_id: str) -> None:
        self.ids.add(token_id)

    async def refresh(self, rpc: RpcClient) -> None:
        rows = await rpc.call("notification", "list_revoked_tokens", timeout=2.0, context={"background": True})
        self.ids = {r["token_id"] for r in rows}
        self.loaded = True

    async def keep_fresh(self, rpc: RpcClient, every: float = 5.0) -> None:
        while True:
            try:
                await self.refresh(rpc)
            except Exception as exc:  # noqa: BLE001 - keep the last list; say so
                log.warning("revocation list not refreshed: %s", exc)
            await asyncio.sleep(every if self.loaded else 1.0)


class Limits:
    """Caps request bodies, limits anonymous clients' rate (gateway/limits.py), and sets the correlation id (kept
    from X-Correlation-Id when sane)."""

    def __init__(self, app: ASGIApp, settings: GatewaySettings, max_body: int = MAX_BODY_BYTES):
        self.app, self.max_body = app, max_body
        self.trusted = settings.trusted_proxies
        self.limiter = RateLimiter(settings.rate_limit, settings.rate_burst)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(b"x-correlation-id", b"").decode("latin-1")
        cid = incoming if CORRELATION_RE.match(incoming) else uuid.uuid4().hex
        correlation_var.set(cid)
        scope.setdefault("state", {})["correlation_id"] = cid
        client = client_address(scope, self.trusted)
        scope["state"]["client"] = client
        if scope["type"] == "websocket":
            return await self.app(scope, receive, send)
        if b"authorization" not in headers and scope["path"] not in UNLIMITED and client is not None:
            wait = self.limiter.allow(client)
            if wait:
                RATE_LIMITED.inc()
                return await _too_many(scope, receive, send, wait)
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            return await _too_large(scope, receive, send)
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _BodyTooLarge()
            return message

        started = time.perf_counter()
        status_holder = {"status": 500}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                message.setdefault("headers", []).append((b"x-correlation-id", cid.encode()))
            await send(message)

        route = scope["path"] if scope["path"] in ROUTES else "other"
        try:
            await self.app(scope, limited_receive, send_wrapper)
        except _BodyTooLarge:
            await _too_large(scope, receive, send)
            status_holder["status"] = 413
        finally:
            HTTP_REQUESTS.labels(route, str(status_holder["status"])).inc()
            HTTP_DURATION.labels(route).observe(time.perf_counter() - started)


DOCUMENT_TOO_LARGE = "document too large"
HTTP_REASONS = {  # Strawberry's reasons for refusing a request before GraphQL runs
    DOCUMENT_TOO_LARGE: f"Document GraphQL trop long : {MAX_DOCUMENT_BYTES // 1024} Kio au plus (les données vont "
                        "dans les variables).",
    "Unable to parse request body as JSON": "Le corps de la requête n'est pas du JSON valide : envoyez "
                                            '{"query": "…", "variables": {…}} avec Content-Type: application/json.',
    "No GraphQL query found in the request": "Aucune requête GraphQL : le champ « query » manque.",
    "Unsupported content type": "Type de contenu non pris en charge : envoyez du JSON (Content-Type: "
                                "application/json).",
    "The GraphQL operation's `query` must be a string or null, if provided.": "« query » doit être un texte.",
    "The GraphQL operation's `variables` must be an object or null, if provided.": "« variables » doit être un objet.",
    "The GraphQL operation's `extensions` must be an object or null, if provided.": "« extensions » doit être un "
                                                                                     "objet.",
    "GraphQL only supports GET and POST requests.": "GraphQL n'accepte que GET et POST.",
}


def _private(address: str | None) -> bool:
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return ip.is_private or ip.is_loopback


def http_error(status: int, reason: str, english: bool = False) -> JSONResponse:
    if english:
        message = reason
    elif reason in HTTP_REASONS:
        message = HTTP_REASONS[reason]
    elif "mutations are not allowed" in reason.lower() or "not allowed when using get" in reason.lower():
        message = "Cette opération passe par POST, pas par GET."
    else:
        message = f"Requête refusée : {reason}"
    code = {405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}.get(status, "BAD_REQUEST")
    return JSONResponse({"errors": [{"message": message, "extensions": {"code": code}}]}, status_code=status)


async def _too_many(scope, receive, send, wait: float):
    seconds = max(1, int(wait + 0.999))
    body = {"errors": [{"message": f"Trop de requêtes depuis cette adresse : réessayez dans {seconds} s.",
                        "extensions": {"code": "RATE_LIMITED"}}]}
    await JSONResponse(body, status_code=429, headers={"Retry-After": str(seconds)})(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


async def _too_large(scope, receive, send):
    body = {"errors": [{"message": f"Requête trop volumineuse (maximum {MAX_BODY_BYTES // 1024} Kio).",
                        "extensions": {"code": "PAYLOAD_TOO_LARGE"}}]}
    await JSONResponse(body, status_code=413)(scope, receive, send)


class ParvisGraphQL(GraphQL):
    def __init__(self, schema, gateway: "Gateway", **kwargs):
        super().__init__(schema, **kwargs)
        self.gateway = gateway

    async def get_context(self, request, response) -> dict[str, Any]:
        return self.gateway.context(request, response)

    async def parse_http_body(self, request):
        """Strawberry's reading of the body, and a GraphQL document of MAX_DOCUMENT_BYTES at most."""
        data = await super().parse_http_body(request)
        for item in data if isinstance(data, list) else [data]:
            if isinstance(item.query, str) and len(item.query.encode()) > MAX_DOCUMENT_BYTES:
                raise HTTPException(413, DOCUMENT_TOO_LARGE)
        return data

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """As Strawberry's, except that a request it cannot read (not JSON, no query, a method it refuses) gets a
        GraphQL error with a code and a French message, not a line of English plain text."""
        if scope["type"] != "http":
            return await super().__call__(scope, receive, send)
        request = Request(scope=scope, receive=receive)
        try:
            response = await self.run(request)
        except HTTPException as exc:
            response = http_error(exc.status_code, exc.reason, english_request(request))
        await response(scope, receive, send)

    async def render_graphql_ide(self, request) -> Response:
        """Strawberry's GraphiQL, its assets served by the gateway rather than a CDN (gateway/graphiql.py)."""
        return HTMLResponse(graphiql.page(self.graphql_ide_html))

    async def process_result(self, request, result):
        map_errors(result.errors, self.gateway.settings.production, english_request(request))
        return await super().process_result(request, result)


class Gateway:
    def __init__(self, settings: GatewaySettings | None = None):
        self.settings = settings or GatewaySettings.from_env()
        self.rpc = RpcClient(self.settings.amqp_url, secret=self.settings.secret)
        self.revocations = Revocations()
        self.schema = build_schema(production=self.settings.production)
        self.public_agenda = PublicAgenda(self._public_call, to_event, self.settings.amqp_url)
        self.compiled = CompiledPaths(self, self.settings.compiled_paths)
        self.shared_results = SharedReads("consultation_results")
        self.batchers = batchers(self.rpc, self.settings.secret, self.settings.rpc_batches,
                                 max(1, self.settings.rpc_batches_in_flight))
        self._tasks: list[asyncio.Task] = []

    async def _public_call(self, service: str, method: str, **kwargs):
        """The public copy's syncs: polls, logged by the service at DEBUG."""
        return await self.call(service, method, caller=Caller(), correlation_id=uuid.uuid4().hex, timeout=10.0,
                               as_model=True, background=True, **kwargs)

    # -- authentication -----------------------------------------------------------------------
    def authenticate(self, headers, params=None) -> Caller:
        value = headers.get("authorization", "")
        if not value and params is not None:
            value = params.get("Authorization") or params.get("authorization") or ""
        if not value:
            return Caller()
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("En-tête Authorization attendu : « Bearer <jeton> ».")
        if not self.revocations.loaded:  # fail closed: a revoked token must not pass while the list is unknown
            raise ServiceUnavailable("Les jetons ne peuvent pas encore être vérifiés : réessayez dans un instant.")
        return auth.verify(self.settings.secret, token.strip(), self.revocations.ids)

    def context(self, request, response) -> dict[str, Any]:
        caller = request.scope.get("state", {}).get("caller") or Caller()
        cid = request.scope.get("state", {}).get("correlation_id") or uuid.uuid4().hex
        return {"request": request, "response": response, "caller": caller, "rpc": self.rpc, "gateway": self,
                "call": self.caller_call(caller, cid),
                "correlation_id": cid, "revocations": self.revocations, "settings": self.settings,
                "public_agenda": self.public_agenda}

    def caller_call(self, caller: Caller, correlation_id: str):
        """`call(service, method, timeout=None, **kwargs)` on behalf of one request's caller."""
        async def call(service: str, method: str, timeout: float | None = None, **kwargs):
            return await self.call(service, method, caller=caller, correlation_id=correlation_id, timeout=timeout,
                                   **kwargs)
        return call

    async def call(self, service: str, method: str, *, caller: Caller, correlation_id: str,
                   timeout: float | None = None, as_model: bool = False, background: bool = False, **kwargs):
        """`service.method(**kwargs)` on behalf of `caller`; the reply read by its contract (gateway/rpc.py)."""
        started = time.perf_counter()
        outcome = "ok"
        try:
            batcher = self.batchers.get((service, method))
            if batcher is not None:
                raw = await batcher.call(kwargs, caller.model_dump(exclude_none=True), correlation_id, timeout)
                return read_reply(service, method, raw, as_model)
            context = {"correlation_id": correlation_id, "caller": caller.model_dump(exclude_none=True)}
            if background:
                context["background"] = True
            raw = await self.rpc.call(service, method, timeout=timeout, context=context, **kwargs)
            return read_reply(service, method, raw, as_model)
        except ServiceUnavailable:
            outcome = "unavailable"
            raise
        except RemoteError:
            outcome = "error"
            raise
        except ParvisError:
            outcome = "rejected"
            raise
        except Exception:
            outcome = "error"
            raise
        finally:
            RPC_CALLS.labels(service, method, outcome).inc()
            RPC_DURATION.labels(service, method).observe(time.perf_counter() - started)

    # -- lifecycle ----------------------------------------------------------------------------
    async def startup(self) -> None:
        try:
            await self.rpc.connect()
        except Exception as exc:  # noqa: BLE001 - /readyz tells; calls reconnect lazily
            log.warning("broker not reachable at start: %s", exc)
        try:  # tokens are refused until the revocation list is known: wait a little for it before serving
            await asyncio.wait_for(self.revocations.refresh(self.rpc), 3.0)
        except Exception as exc:  # noqa: BLE001 - /readyz says so; keep_fresh goes on trying
            log.warning("revocation list not loaded at start (tokens refused until it is): %s", exc)
        self._tasks.append(asyncio.create_task(self.revocations.keep_fresh(self.rpc)))
        await self.public_agenda.start()

    async def shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.public_agenda.stop()
        await self.rpc.close()

    # -- routes -------------------------------------------------------------------------------
    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        """Ready when the broker and every service answer; the body says which part is down (`down`), and how
        the public agenda's copy is doing (it answers the public even while the rest is away)."""
        try:
            await self.rpc.connect()
        except Exception:  # noqa: BLE001 - reported below
            pass
        broker = self.rpc.connected
        services = await ping_all(self.rpc, timeout=1.0) if broker else []
        ready = broker and all(s["ok"] for s in services) and self.revocations.loaded
        public = self.public_agenda
        age = public.age()
        copy = {"loaded": public.loaded, "fresh": public.ready, "serving": public.serving,
                "age_seconds": None if age is None else round(age, 1), "following_events": public.following}
        down = ([] if broker else ["broker"]) + [s["name"] for s in services if not s["ok"]]
        if not broker:
            down += [s for s in SERVICES]  # not reachable without the broker
        if not self.revocations.loaded:
            down.append("revocations")
        if not public.ready:
            down.append("public_agenda_copy")
        if not public.following:
            down.append("agenda_events")
        body = {"status": "ready" if ready else "unready", "broker": broker, "down": down,
                "revocations_loaded": self.revocations.loaded,
                "services": {s["name"]: {k: v for k, v in s.items() if k != "name"} for s in services},
                "public_agenda": copy}
        return JSONResponse(body, status_code=200 if ready else 503)

    async def metrics(self, request: Request) -> Response:
        """In production, for the platform's own network only (Prometheus scrapes from inside): the figures say
        what runs and how busy it is, which is nobody else's business."""
        client = request.scope.get("state", {}).get("client")
        if self.settings.production and not _private(client):
            return JSONResponse({"error": "Réservé à la supervision.", "code": "FORBIDDEN"}, status_code=403)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


class AuthMiddleware:
    """Resolves the bearer token once per request; a bad token is refused before GraphQL runs."""

    def __init__(self, app: ASGIApp, gateway: Gateway):
        self.app, self.gateway = app, gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
            try:
                scope.setdefault("state", {})["caller"] = self.gateway.authenticate(headers)
            except (Unauthenticated, ServiceUnavailable) as exc:
                body = {"errors": [{"message": exc.message, "extensions": {"code": exc.code}}]}
                status = 401 if isinstance(exc, Unauthenticated) else 503
                return await JSONResponse(body, status_code=status)(scope, receive, send)
        return await self.app(scope, receive, send)


def create_app(settings: GatewaySettings | None = None) -> Starlette:
    gateway = Gateway(settings)
    graphql = ParvisGraphQL(gateway.schema, gateway, graphql_ide=None if gateway.settings.production else "graphiql",
                            allow_queries_via_get=True)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await gateway.startup()
        yield
        await gateway.shutdown()

    app = Starlette(
        routes=[
            Route("/healthz", gateway.healthz),
            Route("/readyz", gateway.readyz),
            Route("/metrics", gateway.metrics),
            Route("/graphql", AuthMiddleware(gateway.compiled.middleware(graphql), gateway), methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),  # subscriptions (graphql-transport-ws)
            *web.routes(gateway),  # the site's pages first: `/` is its home page
            *all_routes(gateway),
            *([] if gateway.settings.production else [Route(graphiql.ASSETS_PATH + "{path:path}", graphiql.asset)]),
        ],
        lifespan=lifespan,
    )
    app.state.gateway = gateway
    app.state.gateway_graphiql_html = graphql.graphql_ide_html if graphql.graphql_ide else ""
    ROUTES.update(r.path for r in app.routes if "{" not in r.path)  # metric labels: known paths only
    return Limits(app, gateway.settings)  # outermost: correlation id, rate and body caps apply to every route


def main() -> None:
    import uvicorn

    settings = GatewaySettings.from_env()
    configure_logging(settings.log_level)
    uvicorn.run(create_app(settings), host="0.0.0.0" if settings.production else "127.0.0.1",
                port=settings.http_port, log_level="warning", access_log=False, lifespan="on")
