"""An asyncio-native client for nameko RPC over AMQP (aio-pika); nothing blocks the event loop.

Wire protocol, as nameko 2 speaks it: publish `{"args": [...], "kwargs": {...}}` to the topic
exchange `nameko-rpc` with routing key `<service>.<method>`, `reply_to` naming a queue bound to
that exchange under its own name, and a `correlation_id`; the service answers `{"result", "error"}`
to the exchange with `reply_to` as routing key. Context data travels in `nameko.<key>` headers.

One exclusive reply queue per process; calls in flight are futures keyed by correlation id, each
with its own timeout. Remote errors come back as the typed errors of contracts/errors.py.

When the broker goes away: the calls in flight fail at once with ServiceUnavailable (their replies would
have gone to a reply queue the broker dropped), and so does every call until the connection is back — no
request waits out its timeout. aio-pika's robust connection reconnects by itself (every RECONNECT_INTERVAL
seconds) and declares the reply queue again.

Durability, decided for RPC: requests are transient (not persisted) and expire after the call's timeout
(`expiration`). A call is a question someone waits for: after a broker restart or once its caller has given
up, running it would do a write whose answer nobody reads, possibly after the client retried it. So a call in
flight during a restart is lost and answered SERVICE_UNAVAILABLE; clients retry what is safe to retry (the
kiosks resend votes, which are idempotent by id). Events, retries and dead letters are the messages that
must survive, and do (durable queues, persistent messages, publisher confirms).
"""
from __future__ import annotations

import asyncio
import functools
import json
import logging
import uuid
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from pydantic import TypeAdapter, ValidationError

from contracts import rpc_contracts
from contracts.platform import sign_caller
from contracts.errors import ERRORS, ParvisError, ServiceUnavailable

log = logging.getLogger(__name__)

RPC_EXCHANGE = "nameko-rpc"
RECONNECT_INTERVAL = 1.0  # seconds between two attempts of the robust connection to come back
EMPTY_CALL = b'{"args": [], "kwargs": {}}'


class RemoteError(ParvisError):
    """An unexpected failure inside a service (a bug, not the caller's fault)."""


class RpcTimeout(ServiceUnavailable):
    pass


class RpcClient:
    """`secret`: PARVIS_SECRET, with which the `caller` of each call's context is signed for its method (services
    treat an unsigned caller as the public)."""

    def __init__(self, amqp_url: str, default_timeout: float = 10.0, secret: str | None = None):
        self.amqp_url = amqp_url
        self.default_timeout = default_timeout
        self.secret = secret
        self.connection: aio_pika.abc.AbstractRobustConnection | None = None
        self.channel = None
        self.exchange = None
        self.reply_queue_name = f"rpc.reply-gateway-{uuid.uuid4()}"
        self.pending: dict[str, asyncio.Future] = {}
        self._lock = asyncio.Lock()

    async def connect(self) -> None:
        async with self._lock:
            if self.connection is not None and not self.connection.is_closed:
                return
            self.connection = await aio_pika.connect_robust(self.amqp_url, reconnect_interval=RECONNECT_INTERVAL,
                                                            client_properties={"connection_name": "parvis-gateway"})
            self.connection.close_callbacks.add(self._on_connection_lost)
            self.channel = await self.connection.channel(publisher_confirms=False)
            self.exchange = await self.channel.declare_exchange(RPC_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
            queue = await self.channel.declare_queue(self.reply_queue_name, exclusive=True, auto_delete=True)
            await queue.bind(self.exchange, routing_key=self.reply_queue_name)
            await queue.consume(self._on_reply, no_ack=True)

    async def close(self) -> None:
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(ServiceUnavailable("Le client RPC s'arrête."))
        if self.connection is not None:
            await self.connection.close()
            self.connection = None

    @property
    def connected(self) -> bool:
        """Connected now (False while the robust connection is away and trying to come back)."""
        return self.connection is not None and not self.connection.is_closed and self.connection.connected.is_set()

    def _on_connection_lost(self, _connection, exc=None) -> None:
        """The broker went away: the calls in flight will get no reply (their reply queue is gone)."""
        pending, self.pending = self.pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(ServiceUnavailable("Messagerie indisponible (connexion perdue)."))

    def _expire(self, correlation_id: str, service: str) -> None:
        fut = self.pending.pop(correlation_id, None)
        if fut is not None and not fut.done():
            fut.set_exception(RpcTimeout(f"Le service {service} ne répond pas."))

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        fut = self.pending.pop(message.correlation_id or "", None)
        if fut is None or fut.done():
            return  # a reply after its timeout: nobody waits for it any more
        try:
            fut.set_result(json.loads(message.body))
        except ValueError as exc:
            fut.set_exception(RemoteError(f"undecodable reply: {exc}"))

    async def call(self, service: str, method: str, *, timeout: float | None = None,
                   context: dict[str, Any] | None = None, **kwargs) -> Any:
        if not self.connected:
            if self.connection is not None and not self.connection.is_closed:
                # The robust connection is coming back by itself: answer now rather than wait for it.
                raise ServiceUnavailable("Messagerie indisponible (reconnexion en cours).")
            try:
                await self.connect()
            except Exception as exc:
                raise ServiceUnavailable(f"Messagerie indisponible ({exc.__class__.__name__}).") from None
        correlation_id = uuid.uuid4().hex
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self.pending[correlation_id] = fut
        # One timer per call rather than asyncio.wait_for (an extra task and loop turn per call).
        timer = loop.call_later(timeout or self.default_timeout, self._expire, correlation_id, service)
        if context and self.secret and context.get("caller"):
            context = {**context, "caller_sig": sign_caller(self.secret, context["caller"], f"{service}.{method}")}
        headers = {f"nameko.{k}": v for k, v in context.items() if v is not None} if context else None
        body = json.dumps({"args": [], "kwargs": kwargs}, default=str).encode() if kwargs else EMPTY_CALL
        message = aio_pika.Message(body, content_type="application/json", correlation_id=correlation_id,
                                   reply_to=self.reply_queue_name, headers=headers,
                                   expiration=timeout or self.default_timeout)
        try:
            try:
                await self.exchange.publish(message, routing_key=f"{service}.{method}", mandatory=False)
            except (aio_pika.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
                raise ServiceUnavailable(f"Messagerie indisponible ({exc.__class__.__name__}).") from None
            reply = await fut
        finally:
            timer.cancel()
            self.pending.pop(correlation_id, None)
        error = reply.get("error")
        if error:
            raise remote_error(error)
        return reply.get("result")


def remote_error(error: dict) -> Exception:
    """Re-raise a service's exception as its contracts/errors.py type (or a RemoteError)."""
    exc_type = error.get("exc_type")
    args = error.get("exc_args") or []
    cls = ERRORS.get(exc_type)
    if cls is not None:
        message = args[0] if args else error.get("value", "")
        # nameko serialises an exception's arguments as text: a field of None arrives as "None".
        field = args[1] if len(args) > 1 and args[1] not in (None, "None") else None
        return cls(str(message), field)
    if exc_type in ("MethodNotFound", "UnknownService"):
        return ServiceUnavailable(f"Méthode inconnue : {error.get('value')}")
    if exc_type == "IncorrectSignature":
        return ERRORS["BadInput"](str(error.get("value")))
    return RemoteError(f"{exc_type}: {error.get('value')}")


@functools.lru_cache(maxsize=None)
def _reply_adapter(name: str) -> TypeAdapter | None:
    spec = rpc_contracts().get(name)
    return TypeAdapter(spec.reply) if spec is not None else None


def read_reply(service: str, method: str, raw: Any, as_model: bool = False) -> Any:
    """A service's reply read by its contract (contracts/), as the gateway uses it: Python data whose dates are
    datetimes (JSON carries them as text), or the contract's model itself with `as_model`. A reply that breaks
    its contract is the service's fault: a RemoteError, never data passed on half-checked."""
    adapter = _reply_adapter(f"{service}.{method}")
    if adapter is None:
        return raw
    try:
        value = adapter.validate_python(raw)
    except ValidationError as exc:
        raise RemoteError(f"{service}.{method}: reply breaks its contract: {exc}") from None
    return value if as_model else adapter.dump_python(value)
