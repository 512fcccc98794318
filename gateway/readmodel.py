"""The gateway's copy of the public agenda: the published events, kept in memory, fed by the agenda.

Why: the public `events` query is the platform's hottest read (websites, the app, widgets on 36 commune
sites). Answering it from memory saves an RPC round trip per request and lets the gateway serve it without
going through the broker at all (see gateway/compiled/events.py for the other half).

How it stays right:
- at start, the whole public read model is fetched from the agenda (`agenda.public_feed`, pages of 500);
- then the changes after a cursor (updated_at, id), re-reading an overlap of OVERLAP seconds every
  OVERLAP_EVERY seconds to absorb the clocks of several agenda instances: on every `agenda.*` event seen on the bus (a queue of the gateway
  bound to the agenda's event exchange; each message validated against contracts/), at once after an
  agenda mutation made through this gateway (read-your-writes), and every POLL seconds as a safety net;
- who may see what stays the agenda's rule: the filter, order and cursors are those of the agenda service,
  shared with it in contracts/agenda_public.py, applied to the fields the feed sends;
- when the copy is not loaded or has not synced for STALE_AFTER seconds, `ready` is False and the
  gateway asks the agenda by RPC, as before.
Only the public's view is kept: agents and organisers (who also see pending revisions and other states)
are always answered by the agenda service.
"""
from __future__ import annotations

import asyncio
import bisect
import json
import logging
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import aio_pika
from prometheus_client import Counter, Gauge
from pydantic import ValidationError

from contracts import ContractViolation, parse_envelope
from contracts import agenda as c
from contracts import agenda_public
from contracts.errors import validation_error

log = logging.getLogger("parvis.gateway.readmodel")

POLL = 1.0
OVERLAP = 10.0
OVERLAP_EVERY = 30.0
STALE_AFTER = 15.0
REFERENCE_EVERY = 60.0  # seconds between two reads of the reference data (they change on an import)
PAGE = 500  # feed items a sync asks for at once
RPC_PAGE = 500  # events an agenda.search_events call returns at most (its contract)
SHORT_SPAN = timedelta(days=2)

READ_MODEL_EVENTS = Gauge("parvis_gateway_public_events", "Events in the gateway's public agenda copy")
READ_MODEL_SYNCS = Counter("parvis_gateway_public_syncs_total", "Syncs of the gateway's public agenda copy",
                           ["trigger", "outcome"])
READ_MODEL_AGE = Gauge("parvis_gateway_public_sync_age_seconds", "Seconds since the last successful sync")


class Entry:
    """One event: the fields the filter reads (as in the agenda's documents) and its public view."""

    __slots__ = ("doc", "view", "node", "updated_ts")

    def __init__(self, item: c.PublicFeedItem, to_node: Callable[[dict], Any]):
        view = item.view
        self.updated_ts = item.updated_ts
        self.view = view.model_dump()
        self.node = to_node(self.view)
        self.node._parvis_rendered = {}  # gateway/compiled/events.py keeps this event's renderings here
        self.doc = {
            "_id": view.id, "moderation_state": view.moderation_state, "visible_from": item.visible_from,
            "commune": view.location.commune, "category": view.category, "theme": view.theme,
            "organizer": view.organizer, "accessibility": list(view.accessibility), "price_kind": item.price_kind,
            "updated_at": view.updated_at, "starts_at": view.starts_at, "ends_at": view.ends_at,
            "occurrences": [{"starts_at": o.starts_at, "ends_at": o.ends_at} for o in view.occurrences],
            "search": item.search, "entry": self,
        }


class Page:
    """A page of the public's events: their views (Python data), their GraphQL objects, and the page's cursors."""

    __slots__ = ("views", "nodes", "cursors", "total", "has_next", "end_cursor")

    def __init__(self, views: list[dict], nodes: list, cursors: list[str], total: int, has_next: bool,
                 end_cursor: str | None):
        self.views, self.nodes, self.cursors, self.total = views, nodes, cursors, total
        self.has_next, self.end_cursor = has_next, end_cursor


class PublicAgenda:
    def __init__(self, call: Callable, to_node: Callable[[dict], Any], amqp_url: str | None = None):
        self._call = call  # async (service, method, **kwargs) -> result
        self._to_node = to_node
        self.amqp_url = amqp_url
        self.entries: dict[str, Entry] = {}
        self.by_commune: dict[str, list[dict]] | None = None
        self.windows: dict | None = None
        self.cursor = (0.0, "")
        self.loaded = False
        self.synced_at = 0.0
        self.overlap_at = time.monotonic()
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._connection = None
        self.reference: agenda_public.Reference | None = None  # the agenda's communes, categories and themes
        self.reference_at = 0.0

    # -- state ----------------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self.loaded and time.monotonic() - self.synced_at < STALE_AFTER

    def docs(self, communes: list[str]) -> list[dict]:
        if not communes:
            return [e.doc for e in self.entries.values()]
        groups = self.by_commune
        if groups is None:
            groups = {}
            for e in self.entries.values():
                groups.setdefault(e.doc["commune"], []).append(e.doc)
            self.by_commune = groups
        return [d for slug in dict.fromkeys(communes) for d in groups.get(slug, ())]

    def _windows(self) -> dict:
        """Per commune (and None for all): the events lasting ≤ SHORT_SPAN sorted by start, their starts, and
        the longer ones (recurrences), so that a date range only looks at the events that can overlap it."""
        index = self.windows
        if index is None:
            groups: dict = {}
            for e in self.entries.values():
                for key in (e.doc["commune"], None):
                    groups.setdefault(key, []).append(e.doc)
            index = {}
            for key, docs in groups.items():
                short = sorted((d for d in docs if d["ends_at"] - d["starts_at"] <= SHORT_SPAN),
                               key=lambda d: (d["starts_at"], d["_id"]))
                index[key] = (short, [d["starts_at"] for d in short],
                              [d for d in docs if d["ends_at"] - d["starts_at"] > SHORT_SPAN])
            self.windows = index
        return index

    def candidates(self, f: c.EventFilter) -> list[dict]:
        """The documents the filter has to look at; a superset of those it matches."""
        if f.updated_since or not (f.starts_after or f.starts_before):
            return self.docs(f.communes)
        index = self._windows()
        after = agenda_public.to_utc(f.starts_after) if f.starts_after else None
        before = agenda_public.to_utc(f.starts_before) if f.starts_before else None
        out: list[dict] = []
        for key in (dict.fromkeys(f.communes) if f.communes else (None,)):
            if key not in index:
                continue
            short, starts, long = index[key]
            # An event lasting ≤ SHORT_SPAN that starts before after - SHORT_SPAN has ended before `after`.
            lo = bisect.bisect_left(starts, after - SHORT_SPAN) if after else 0
            hi = bisect.bisect_left(starts, before) if before else len(starts)
            out.extend(short[lo:hi])
            out.extend(long)
        return out

    def search(self, f: c.EventFilter, first: int, after: str | None, now: datetime) -> Page:
        """The agenda's public search (its own predicate, order and cursors) over the copy."""
        found = agenda_public.search(self.candidates(f), f, now)
        docs, cursors, has_next = agenda_public.keyset_page(found, first, after, bool(f.updated_since))
        entries = [d["entry"] for d in docs]
        return Page([e.view for e in entries], [e.node for e in entries], cursors, len(found), has_next,
                    cursors[-1] if cursors else after)

    def read_filter(self, filter: dict, first: int, after: str | None, most: int = RPC_PAGE) -> c.EventFilter:
        """A public search read by the agenda's contract (the same limits with or without the copy), its communes,
        categories and themes checked against the reference data (names accepted: « Labège »); `most` events at
        once (the exports take more than a GraphQL page, in several RPC pages without the copy)."""
        try:
            f = c.EventFilter.model_validate(filter)
            c.SearchEvents(filter=f, first=min(first, RPC_PAGE) if first <= most else first, after=after)
        except ValidationError as exc:
            raise validation_error(exc) from None
        return agenda_public.resolve_filter(f, self.reference) if self.reference is not None else f

    async def page(self, filter: dict, first: int, after: str | None = None, most: int = RPC_PAGE) -> Page:
        """The public's `events` (GraphQL, exports, widget): from this copy when it is ready, else from the agenda
        service, page after page when more than one RPC page is asked for."""
        f = self.read_filter(filter, first, after, most)
        if self.ready:
            return self.search(f, first, after, datetime.now(timezone.utc))
        views, cursors, total, has_next, end = [], [], 0, True, after
        while has_next and len(views) < first:
            got: c.EventPage = await self._call("agenda", "search_events", filter=filter,
                                                first=min(RPC_PAGE, first - len(views)), after=end)
            views += [v.model_dump() for v in got.items]
            cursors += got.cursors
            total, has_next, end = got.total, got.has_next, got.end_cursor
        return Page(views, [self._to_node(v) for v in views], cursors, total, has_next, end)

    # -- syncing --------------------------------------------------------------------------------
    async def sync(self, trigger: str = "poll") -> None:
        async with self._lock:
            try:
                changed = await self._pull()
            except Exception:
                READ_MODEL_SYNCS.labels(trigger, "error").inc()
                raise
            READ_MODEL_SYNCS.labels(trigger, "ok").inc()
            self.loaded = True
            self.synced_at = time.monotonic()
            if changed:
                self.by_commune = self.windows = None
            READ_MODEL_EVENTS.set(len(self.entries))

    async def _pull(self) -> int:
        after_ts, after_id = self.cursor
        if self.loaded and time.monotonic() - self.overlap_at >= OVERLAP_EVERY:
            # Now and then, re-read an overlap: a write of another agenda instance may carry a slightly
            # older clock than the cursor. (Every time would re-read every recent change on every sync.)
            after_ts, after_id = max(0.0, after_ts - OVERLAP), ""
            self.overlap_at = time.monotonic()
        if self.reference is None or time.monotonic() - self.reference_at > REFERENCE_EVERY:
            await self._pull_reference()
        changed = 0
        entries = dict(self.entries)
        while True:
            feed: c.PublicFeed = await self._call("agenda", "public_feed", after_ts=after_ts, after_id=after_id,
                                                  first=PAGE)
            for item in feed.items:
                known = entries.get(item.view.id)
                if known is None or known.updated_ts != item.updated_ts:  # every agenda write moves updated_at
                    entries[item.view.id] = Entry(item, self._to_node)
                    changed += 1
                after_ts, after_id = item.updated_ts, item.view.id
                if (after_ts, after_id) > self.cursor:
                    self.cursor = (after_ts, after_id)
            if feed.complete or not feed.items:
                break
        self.entries = entries  # swapped whole: a search in progress keeps a consistent view
        return changed

    async def _pull_reference(self) -> None:
        lists = [await self._call("agenda", method) for method in ("list_communes", "list_categories", "list_themes")]
        self.reference = agenda_public.Reference(*({x.slug: x.name for x in rows} for rows in lists))
        self.reference_at = time.monotonic()

    async def changed(self) -> None:
        """After an agenda mutation made through this gateway: the copy catches up before the reply."""
        try:
            await asyncio.wait_for(self.sync("mutation"), 3.0)
        except Exception as exc:  # noqa: BLE001 - the poll will catch up; reads fall back when stale
            log.warning("public agenda not synced after a mutation: %s", exc)

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._keep_fresh()))
        if self.amqp_url:
            self._tasks.append(asyncio.create_task(self._listen()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        self._tasks.clear()
        if self._connection is not None:
            await self._connection.close()

    async def _keep_fresh(self) -> None:
        delay, trigger = POLL, "start"
        while True:
            try:
                await self.sync(trigger)
                delay = POLL
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep the copy; `ready` turns False when stale
                log.warning("public agenda not synced: %s", exc)
                delay = min(delay * 2, 10.0)
            READ_MODEL_AGE.set(time.monotonic() - self.synced_at if self.loaded else float("nan"))
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
                trigger = "event"
            except asyncio.TimeoutError:
                trigger = "poll"
            self._wake.clear()

    async def _listen(self) -> None:
        """Wake the sync on every agenda event (validated against contracts/); reconnects by itself."""
        while True:
            try:
                self._connection = await aio_pika.connect_robust(
                    self.amqp_url, client_properties={"connection_name": "parvis-gateway-agenda-events"})
                channel = await self._connection.channel()
                exchange = await channel.declare_exchange("agenda.events", aio_pika.ExchangeType.TOPIC, durable=True)
                queue = await channel.declare_queue(exclusive=True, auto_delete=True)
                await queue.bind(exchange, routing_key="agenda.#")
                async with queue.iterator(no_ack=True) as messages:
                    async for message in messages:
                        try:
                            parse_envelope(json.loads(message.body))
                        except (ContractViolation, ValueError) as exc:
                            log.warning("agenda event ignored, contract broken: %s", exc)
                            continue
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - polling keeps the copy fresh meanwhile
                log.warning("agenda events not followed (%s); retrying", exc)
                await asyncio.sleep(2.0)
