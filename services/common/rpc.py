"""RPC methods bound to their contracts, and the caller that the gateway authenticated."""
from __future__ import annotations

import functools
import logging
from typing import Any, Iterable

from nameko.extensions import DependencyProvider
from nameko.rpc import rpc as nameko_rpc
from pydantic import BaseModel, TypeAdapter, ValidationError

from contracts import RpcContract
from contracts.errors import BadInput, Forbidden, ParvisError, validation_error
from contracts.platform import Caller, caller_signed
from services.common.settings import service_settings

log = logging.getLogger(__name__)


def rpc(fn):
    """nameko's @rpc, with the platform's refusals (contracts/errors.py) declared expected: nameko then tells them
    from faults (services/common/logs.py logs a refusal in one line, a fault with its traceback)."""
    return nameko_rpc(expected_exceptions=(ParvisError,))(fn)


def contract(spec: RpcContract):
    """Validate keyword arguments against `spec.request` and the result against `spec.reply`.

    The method receives the request model; what it returns is dumped to JSON-ready data. Positional
    arguments are refused: the wire format names every field.
    """
    reply = TypeAdapter(spec.reply)

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(self, *args, **kwargs):
            if args:
                raise BadInput(f"{spec.name} takes keyword arguments only")
            try:
                request = spec.request.model_validate(kwargs)
            except ValidationError as exc:
                raise validation_error(exc) from None
            result = fn(self, request)
            return reply.dump_python(reply.validate_python(_plain(result)), mode="json")

        wrapper.contract = spec
        return wrapper

    return decorate


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class CallerView:
    def __init__(self, caller: Caller):
        self.caller = caller

    def __getattr__(self, name):
        return getattr(self.caller, name)

    def require(self, roles: Iterable[str]) -> Caller:
        """Authorisation checked again in the service for anything that writes."""
        if self.caller.role not in set(roles):
            raise Forbidden("Vous n'avez pas le droit de faire cette action.")
        return self.caller


class CallerProvider(DependencyProvider):
    """Injects who is calling: the `caller` of the context data when the gateway (or the command line) signed it for
    this very method, less than a minute ago (contracts/platform.py); the public otherwise. A caller that claims a
    role without a valid signature is logged: someone publishes on the broker who should not."""

    def setup(self):
        self.secret = service_settings(self.container).secret
        self.service = self.container.service_name

    def get_dependency(self, worker_ctx):
        raw = worker_ctx.data.get("caller") or {}
        if not raw:
            return CallerView(Caller())
        target = f"{self.service}.{worker_ctx.entrypoint.method_name}"
        if not isinstance(raw, dict) or not caller_signed(self.secret, raw, target, worker_ctx.data.get("caller_sig")):
            log.warning("unsigned or forged caller for %s treated as the public: %s", target, raw)
            return CallerView(Caller())
        try:
            caller = Caller.model_validate(raw)
        except ValidationError:
            caller = Caller()
        return CallerView(caller)


# -- batched RPCs (contracts/platform.py: batch_of) -------------------------------------------------------------
class BatchCall:
    """One item of a batched RPC: its caller (trusted as for the single method called alone), its request checked
    against the single method's contract, and, once known, its result or its refusal."""

    __slots__ = ("caller", "request", "result", "error", "correlation_id")

    def __init__(self, caller: CallerView, request: BaseModel | None, error: BaseException | None,
                 correlation_id: str | None):
        self.caller, self.request, self.error, self.correlation_id = caller, request, error, correlation_id
        self.result: Any = None


def batch_calls(secret: str, single: RpcContract, items: list) -> list[BatchCall]:
    """The items of a batched call of `single`, each with its own caller: a caller signed for `single` less than a
    minute ago, the public otherwise (as CallerProvider does for one call); an item whose arguments break the
    request's contract is refused alone."""
    calls = []
    for item in items:
        raw = item.caller or {}
        caller = Caller()
        if raw:
            if caller_signed(secret, raw, single.name, item.caller_sig):
                try:
                    caller = Caller.model_validate(raw)
                except ValidationError:
                    pass
            else:
                log.warning("unsigned or forged caller in a batch of %s treated as the public: %s", single.name, raw)
        try:
            request, error = single.request.model_validate(item.args), None
        except ValidationError as exc:
            request, error = None, validation_error(exc)
        calls.append(BatchCall(CallerView(caller), request, error, item.correlation_id))
    return calls


def settle(calls: list[BatchCall], answers: list[dict]) -> None:
    """Each call's `{"result": …}` or `{"error": …}` from a batch's answers, in the calls' order."""
    for call, answer in zip(calls, answers):
        if "error" in answer:
            call.error = answer["error"]
        else:
            call.result = answer["result"]


def batch_reply(single: RpcContract, calls: list[BatchCall]) -> dict:
    """`{"results": [...]}` in the items' order: each result as the single method's reply (checked by its contract),
    each refusal in the form nameko gives an exception (gateway/rpc.py: remote_error reads both alike)."""
    reply = _reply_adapter(single.name)
    results = []
    for call in calls:
        if call.error is None:
            try:
                results.append({"result": reply.dump_python(reply.validate_python(_plain(call.result)), mode="json")})
                continue
            except ValidationError as exc:  # our fault, not the caller's: that item alone fails
                log.error("a result of %s breaks its contract: %s", single.name, exc)
                call.error = RuntimeError("reply breaks its contract")
        results.append({"error": error_form(call.error)})
    return {"results": results}


@functools.lru_cache(maxsize=None)
def _reply_adapter(name: str) -> TypeAdapter:
    from contracts import rpc_contracts

    return TypeAdapter(rpc_contracts()[name].reply)


def error_form(exc: BaseException) -> dict:
    if isinstance(exc, ParvisError):
        return {"exc_type": type(exc).__name__, "exc_args": [exc.message, exc.field], "value": exc.message}
    return {"exc_type": type(exc).__name__, "exc_args": [], "value": "erreur interne"}
