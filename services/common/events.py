"""Events on the bus: building validated envelopes, and handlers that never lose a message.

Producing: a service asks `self.events.build(type, data)` for an envelope (validated against
contracts/, stamped with the worker's correlation id) and stores it with its write through the
repository (see mongo.py); the outbox relay publishes it.

Consuming: `@handle_event(source, type)` is nameko's event handler made reliable:
- the envelope and its data are validated against contracts/ before the handler runs; a message
  that does not match goes straight to the dead letters (retrying would not change it);
- handlers are idempotent by `event_id`: before the handler runs, the delivery claims the event in
  the service's `_inbox` collection (an insert on `_id`, atomic on nx-27017 and MongoDB alike);
  a second delivery finds the claim and is acknowledged without running the handler once the first
  is done, or put back behind a short delay while another process holds the claim. A claim whose
  holder died (kill -9 between claim and done) expires after INBOX_LEASE seconds and is taken over;
  a failed handler releases its claim so that its retry may run;
- nameko acks a message whose handler raised, which would lose it: here a failure is re-published
  to a delay queue (TTL, dead-lettered back to the handler's queue) for each of PARVIS_RETRY_DELAYS,
  then to the durable queue `parvis.dead-letters`, which `parvis dlq list|replay` reads. A domain
  refusal (ParvisError other than ServiceUnavailable) is not retried. No message loops forever.

Batches (`@handle_event(source, type, batch=N)`): the messages that arrive while a batch's worker runs wait, and
the next worker takes up to N of them at once: their claims in one insert, the handler called with the list of
(data, envelope), their "done" in one update. The handler answers {index: exception} for the items that failed
(each then takes the retry path above, alone), or raises, and every item of the batch takes it. On nx-27017 each
database command costs about a millisecond whatever its size: a batch of payment events costs four commands
instead of four for each event. The container's prefetch (PARVIS_MAX_WORKERS_<SERVICE>) bounds a batch.

The inbox keeps a handled event id for PARVIS_INBOX_RETENTION_DAYS (30): long enough for any redelivery
(retries end within minutes, a dead letter is replayed within days). MongoDB drops older rows by a TTL
index on `handled_at`; nx-27017 does not enforce TTL indexes, so each container also prunes them itself.
"""
from __future__ import annotations

import logging
import time
import traceback
import uuid
from datetime import datetime, timedelta, timezone

from eventlet.event import Event as GreenEvent
from amqp.exceptions import PreconditionFailed
from kombu import Connection, Queue
from nameko.amqp.publish import Publisher
from nameko.events import EventHandler
from nameko.exceptions import ContainerBeingKilled
from nameko.extensions import DependencyProvider, SharedExtension
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure

from contracts import ContractViolation, build_envelope, parse_envelope
from contracts.errors import ParvisError, ServiceUnavailable
from services.common import metrics
from services.common.mongo import Mongo, database_name, mongo_client
from services.common.settings import service_settings

log = logging.getLogger(__name__)

DEAD_LETTER_QUEUE = "parvis.dead-letters"
ATTEMPT_HEADER = "x-parvis-attempt"
INBOX_LEASE = 30.0  # seconds a claim of another process is honoured before it is taken over

CLAIMED, DONE, BUSY_HERE, BUSY_ELSEWHERE = "claimed", "done", "busy-here", "busy-elsewhere"


class EventBuilder:
    def __init__(self, service: str, worker_ctx):
        self.service = service
        self.worker_ctx = worker_ctx
        self.built = 0

    def build(self, event_type: str, data) -> dict:
        env = build_envelope(event_type, data, self.service, self.worker_ctx.data.get("correlation_id"))
        self.built += 1
        return env


class Events(DependencyProvider):
    """Injects an EventBuilder; after a worker that built events, wakes the outbox relay."""

    def setup(self):
        self._builders: dict[int, EventBuilder] = {}

    def get_dependency(self, worker_ctx):
        builder = EventBuilder(self.container.service_name, worker_ctx)
        self._builders[id(worker_ctx)] = builder
        return builder

    def worker_teardown(self, worker_ctx):
        builder = self._builders.pop(id(worker_ctx), None)
        if builder is not None and builder.built:
            for dep in self.container.dependencies:
                if isinstance(dep, Mongo) and dep.relay is not None:
                    dep.relay.poke()


def queue_arguments(queue_type: str) -> dict:
    """The declaration arguments of a durable queue of the given type (PARVIS_QUEUE_TYPE)."""
    return {"x-queue-type": "quorum"} if queue_type == "quorum" else {}


def retry_queue_name(queue: str, delay: float) -> str:
    return f"{queue}.retry-{int(delay * 1000)}ms"


class DeliveryGuard(SharedExtension):
    """Per container: the inbox of handled event ids, and the publisher for retries and dead letters."""

    def setup(self):
        self.settings = service_settings(self.container)
        self.amqp_url = self.container.config.get("AMQP_URI", self.settings.amqp_url)
        self.publisher = Publisher(self.amqp_url, use_confirms=True)
        self.client = mongo_client(self.settings.effective_mongo_url)
        self.inbox = self.client[database_name(self.container)]["_inbox"]
        self.owner = uuid.uuid4().hex  # this container's identity on its claims
        self.declared: set[str] = set()
        self.retention = timedelta(days=self.settings.inbox_retention_days)
        self._stopping = GreenEvent()

    def start(self):
        try:
            self.inbox.create_index("handled_at", expireAfterSeconds=int(self.retention.total_seconds()))
        except OperationFailure as exc:  # an index without TTL from before, or another retention: pruning still runs
            log.warning("inbox TTL index not created (%s); pruned by the service only", exc)
        self.container.spawn_managed_thread(self._prune_forever, identifier="inbox_prune")

    def prune(self, now: datetime | None = None) -> int:
        """Forget the event ids handled before the retention period; returns how many."""
        horizon = (now or datetime.now(timezone.utc)) - self.retention
        return self.inbox.delete_many({"handled_at": {"$lt": horizon}}).deleted_count

    def _prune_forever(self) -> None:
        every = min(3600.0, max(1.0, self.retention.total_seconds() / 4))
        while not self._stopping.wait(every):
            try:
                pruned = self.prune()
                if pruned:
                    log.info("inbox: %s handled event ids older than %s forgotten", pruned, self.retention)
            except Exception as exc:  # noqa: BLE001 - the database may be away: the next round prunes
                log.warning("inbox not pruned: %s", exc)

    def stop(self):
        if not self._stopping.ready():
            self._stopping.send(True)  # the pruning thread ends (nameko would kill it, and say so)
        self.client.close()

    def kill(self):
        self.client.close()

    def declare(self, queues: list[Queue]) -> None:
        with Connection(self.amqp_url) as conn:
            for queue in queues:
                if queue.name not in self.declared:
                    try:
                        queue.bind(conn.default_channel).declare()
                    except PreconditionFailed as exc:
                        # The queue exists with other arguments: most likely of the other type. RabbitMQ never
                        # changes a queue's type; starting would fail later and less clearly.
                        raise RuntimeError(
                            f"queue {queue.name} exists with other arguments than PARVIS_QUEUE_TYPE="
                            f"{self.settings.queue_type} asks ({exc}). A queue keeps its type: see the README, "
                            "\"Switching to quorum queues\"") from None
                    self.declared.add(queue.name)

    def claim(self, key: str, event_type: str) -> str:
        """Claim an event before handling it: CLAIMED (run it), DONE, BUSY_HERE or BUSY_ELSEWHERE."""
        now = time.time()
        try:
            self.inbox.insert_one({"_id": key, "type": event_type, "state": "running", "owner": self.owner,
                                   "at": now, "handled_at": datetime.now(timezone.utc)})
            return CLAIMED
        except DuplicateKeyError:
            pass
        doc = self.inbox.find_one({"_id": key}) or {}
        if doc.get("state", "done") == "done":  # rows written before claims existed have no state
            return DONE
        if doc.get("owner") == self.owner:
            return BUSY_HERE
        if now - float(doc.get("at") or 0) < INBOX_LEASE:
            return BUSY_ELSEWHERE
        # The holder's lease ran out (it died between claim and done): take the claim over, once.
        taken = self.inbox.update_one({"_id": key, "state": "running", "owner": doc.get("owner"), "at": doc.get("at")},
                                      {"$set": {"owner": self.owner, "at": now}})
        return CLAIMED if taken.modified_count == 1 else BUSY_ELSEWHERE

    def claim_many(self, keys: list[str], types: list[str]) -> list[str]:
        """`claim` for a batch: one insert of every claim; a key already there (handled, held, or twice in the
        batch) is then decided alone, as `claim` decides it."""
        now, at = time.time(), datetime.now(timezone.utc)
        taken: set[int] = set()
        try:
            self.inbox.insert_many([{"_id": key, "type": event_type, "state": "running", "owner": self.owner,
                                     "at": now, "handled_at": at} for key, event_type in zip(keys, types)],
                                   ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors") or []
            if not errors or any(e.get("code") not in (11000, 11001) for e in errors):
                raise
            taken = {e["index"] for e in errors}
        return [self.claim(key, event_type) if i in taken else CLAIMED
                for i, (key, event_type) in enumerate(zip(keys, types))]

    def done(self, key: str) -> None:
        self.inbox.update_one({"_id": key}, {"$set": {"state": "done", "at": time.time()}})

    def done_many(self, keys: list[str]) -> None:
        if keys:
            self.inbox.update_many({"_id": {"$in": keys}}, {"$set": {"state": "done", "at": time.time()}})

    def release(self, key: str) -> None:
        self.inbox.delete_one({"_id": key, "owner": self.owner, "state": "running"})

    def republish(self, body, headers: dict, routing_key: str, expiration: float | None = None) -> None:
        self.publisher.publish(body, exchange="", routing_key=routing_key, headers=headers,
                               expiration=expiration)


class ReliableEventHandler(EventHandler):
    """`wanted(repository, envelope)`, when given, is asked first: an event it says nothing here wants (a payment
    event of a régie no partner listens to) is acknowledged without a claim in the inbox nor a worker, as the
    handler would have done nothing with it. It must be cheap (cached reads) and side-effect free; if it fails,
    the event takes the usual path."""

    guard = DeliveryGuard()

    def __init__(self, *args, wanted=None, batch: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.wanted = wanted
        self.batch = batch  # 0: a worker per message; N: up to N messages a worker (see the module's docstring)
        self._pending: list[Delivery] = []
        self._draining = False

    def setup(self):
        super().setup()
        settings = service_settings(self.container)
        self.delays = settings.retry_delays
        kind = queue_arguments(settings.queue_type)
        if kind:  # nameko declares the handler's queue without arguments: the same queue, of the chosen type
            q = self.queue
            self.queue = Queue(q.name, exchange=q.exchange, routing_key=q.routing_key, durable=True,
                               queue_arguments=kind)
        name = self.queue.name
        retry_queues = [
            Queue(retry_queue_name(name, d), durable=True, queue_arguments={
                "x-message-ttl": int(d * 1000),
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": name,
                **kind,
            })
            for d in self.delays
        ]
        # The handler's own queue first: a type that does not match is said before nameko tries.
        self._to_declare = [self.queue, *retry_queues, Queue(DEAD_LETTER_QUEUE, durable=True, queue_arguments=kind)]

    def start(self):
        self.guard.declare(self._to_declare)
        super().start()

    @property
    def handler_name(self) -> str:
        return f"{self.container.service_name}.{self.method_name}"

    def _count(self, outcome: str) -> None:
        metrics.EVENTS_HANDLED.labels(self.container.service_name, self.method_name, outcome).inc()

    def handle_message(self, body, message):
        try:
            envelope, data = parse_envelope(body)
        except ContractViolation as exc:
            log.error("invalid event dead-lettered: %s", exc, extra={"queue": self.queue.name})
            self._count("invalid")
            self._dead_letter(body, message, f"ContractViolation: {exc}", attempts=0)
            return
        if self.wanted is not None:
            try:
                repository = next((d.repo for d in self.container.dependencies if isinstance(d, Mongo)), None)
                wanted = self.wanted(repository, envelope)
            except Exception:  # noqa: BLE001 - the usual path decides
                log.warning("could not tell whether %s is wanted; handled as usual", envelope.event_id, exc_info=True)
                wanted = True
            if not wanted:
                self._count("skipped")
                self.queue_consumer.ack_message(message)
                return
        if self.batch:
            self._pending.append(Delivery(body, message, envelope, data))
            if not self._draining:  # green threads: nothing switches between this test and the flag
                self._draining = True
                self.container.spawn_managed_thread(self._drain, identifier=f"{self.handler_name}.batches")
            return
        key = f"{self.method_name}:{envelope.event_id}"
        try:
            claim = self.guard.claim(key, envelope.type)
        except Exception:  # database away: let the broker redeliver later rather than guess
            log.exception("inbox unavailable; requeueing %s", envelope.event_id)
            self.queue_consumer.requeue_message(message)
            return
        if claim in (DONE, BUSY_HERE):
            # Handled, or being handled in this process, whose outcome (done, or retry of the
            # original) covers this copy too.
            self._count("duplicate")
            self.queue_consumer.ack_message(message)
            return
        if claim == BUSY_ELSEWHERE:
            self._defer(body, message, envelope)
            return
        context_data = self.unpack_message_headers(message)
        context_data.setdefault("correlation_id", envelope.correlation_id)
        handle_result = lambda worker_ctx, result=None, exc_info=None: self._handled(  # noqa: E731
            message, body, key, envelope, worker_ctx, result, exc_info)
        try:
            self.container.spawn_worker(self, (data, envelope), {}, context_data=context_data,
                                        handle_result=handle_result)
        except ContainerBeingKilled:
            self._release(key)
            self.queue_consumer.requeue_message(message)

    # -- batches ----------------------------------------------------------------------------------------
    def _drain(self) -> None:
        """Run the waiting messages in batches, one batch's worker at a time, until none waits."""
        try:
            while self._pending:
                batch, self._pending = self._pending[:self.batch], self._pending[self.batch:]
                self._run_batch(batch)
        finally:
            self._draining = False

    def _run_batch(self, batch: list["Delivery"]) -> None:
        keys = [f"{self.method_name}:{d.envelope.event_id}" for d in batch]
        try:
            claims = self.guard.claim_many(keys, [d.envelope.type for d in batch])
        except Exception:  # database away: let the broker redeliver later rather than guess
            log.exception("inbox unavailable; requeueing %s event(s)", len(batch))
            for d in batch:
                self.queue_consumer.requeue_message(d.message)
            return
        run: list[tuple[Delivery, str]] = []
        for d, key, claim in zip(batch, keys, claims):
            if claim in (DONE, BUSY_HERE):
                self._count("duplicate")
                self.queue_consumer.ack_message(d.message)
            elif claim == BUSY_ELSEWHERE:
                self._defer(d.body, d.message, d.envelope)
            else:
                run.append((d, key))
        if not run:
            return
        context_data = self.unpack_message_headers(run[0][0].message)
        context_data.setdefault("correlation_id", run[0][0].envelope.correlation_id)
        finished = GreenEvent()

        def handle_result(worker_ctx, result=None, exc_info=None):
            try:
                self._batch_handled(run, worker_ctx, result, exc_info)
            finally:
                finished.send(True)
            return result, exc_info

        try:
            self.container.spawn_worker(self, ([(d.data, d.envelope) for d, _ in run],), {},
                                        context_data=context_data, handle_result=handle_result)
        except ContainerBeingKilled:
            for d, key in run:
                self._release(key)
                self.queue_consumer.requeue_message(d.message)
            return
        finished.wait()

    def _batch_handled(self, run, worker_ctx, result, exc_info) -> None:
        """Each item as `_handled` settles one: the batch's failure is every item's; otherwise the items the handler
        named failed alone, and the others are done together."""
        failed: dict = {} if exc_info is not None else dict(result or {})
        ok = [(d, key) for i, (d, key) in enumerate(run) if exc_info is None and i not in failed]
        if ok:
            try:
                self.guard.done_many([key for _, key in ok])
            except Exception:  # handled, but not marked: a redelivery after the lease runs them again
                log.exception("could not mark %s event(s) done", len(ok))
            for d, _ in ok:
                self._count("ok")
                self.queue_consumer.ack_message(d.message)
        for i, (d, key) in enumerate(run):
            if exc_info is not None:
                self._handled(d.message, d.body, key, d.envelope, worker_ctx, None, exc_info)
            elif i in failed:
                exc = failed[i]
                self._handled(d.message, d.body, key, d.envelope, worker_ctx, None,
                              (type(exc), exc, exc.__traceback__))

    def _release(self, key: str) -> None:
        try:
            self.guard.release(key)
        except Exception:  # the lease expires on its own
            log.exception("could not release the claim %s", key)

    def _defer(self, body, message, envelope) -> None:
        """Another process holds the claim: look again after the first retry delay (not an attempt)."""
        delay = self.delays[0] if self.delays else 1.0
        try:
            self.guard.republish(body, dict(message.headers or {}), retry_queue_name(self.queue.name, delay))
            self._count("deferred")
            self.queue_consumer.ack_message(message)
        except Exception:
            log.exception("could not defer %s; requeueing", envelope.event_id)
            self.queue_consumer.requeue_message(message)

    def _handled(self, message, body, key, envelope, worker_ctx, result, exc_info):
        if exc_info is None:
            try:
                self.guard.done(key)
            except Exception:  # handled, but not marked: a redelivery after the lease runs it again
                log.exception("could not mark %s done", key)
            self._count("ok")
            self.queue_consumer.ack_message(message)
            return result, exc_info
        self._release(key)
        exc = exc_info[1]
        attempt = int((message.headers or {}).get(ATTEMPT_HEADER, 0))
        permanent = isinstance(exc, (ParvisError, ContractViolation)) and not isinstance(exc, ServiceUnavailable)
        error = "".join(traceback.format_exception_only(exc_info[0], exc)).strip()
        try:
            if not permanent and attempt < len(self.delays):
                delay = self.delays[attempt]
                headers = dict(message.headers or {})
                headers[ATTEMPT_HEADER] = attempt + 1
                headers["x-parvis-last-error"] = error[:1000]
                self.guard.republish(body, headers, retry_queue_name(self.queue.name, delay))
                self._count("retried")
                log.warning("handler failed (attempt %s), retry in %ss: %s", attempt + 1, delay, error,
                            extra={"event_id": envelope.event_id, "event_type": envelope.type})
            else:
                self._dead_letter(body, message, error, attempts=attempt + 1, ack=False)
            self.queue_consumer.ack_message(message)
        except Exception:
            # Could not park the message: give it back to the broker rather than lose it.
            log.exception("could not retry or dead-letter %s; requeueing", envelope.event_id)
            self.queue_consumer.requeue_message(message)
        return result, exc_info

    def _dead_letter(self, body, message, error: str, attempts: int, ack: bool = True) -> None:
        headers = {k: v for k, v in (message.headers or {}).items() if not k.startswith("x-parvis-")}
        headers.update({
            "x-parvis-original-queue": self.queue.name,
            "x-parvis-handler": self.handler_name,
            "x-parvis-error": error[:2000],
            "x-parvis-attempts": attempts,
            "x-parvis-dead-lettered-at": datetime.now(timezone.utc).isoformat(),
        })
        self.guard.republish(body, headers, DEAD_LETTER_QUEUE)
        self._count("dead_lettered")
        log.error("event dead-lettered after %s attempt(s): %s", attempts, error, extra={"queue": self.queue.name})
        if ack:
            self.queue_consumer.ack_message(message)


class Delivery:
    """A message waiting for its batch (`@handle_event(..., batch=N)`)."""

    __slots__ = ("body", "message", "envelope", "data")

    def __init__(self, body, message, envelope, data):
        self.body, self.message, self.envelope, self.data = body, message, envelope, data


handle_event = ReliableEventHandler.decorator
