"""Group commit: the requests that arrive while a round of writes runs are written together by the next round, so
that a round costs the same few round trips for one request or fifty. Used by the satisfaction service's vote ingest
(services/satisfaction/ingest.py) and the consultation service's ballots (services/consultation/casting.py).

A job is anything with `docs` (its documents: a round takes jobs while their documents fit `max_votes`), `error`
and `done` (a green event); the writer is the service's own (see IngestQueue).
"""
from __future__ import annotations

import logging

import eventlet
from eventlet.event import Event as GreenEvent

from contracts.errors import ServiceUnavailable

log = logging.getLogger(__name__)

RELEASE_AFTER = 0.2  # seconds: the longest a finished round's submits wait for the next round's votes to leave


class IngestQueue:
    """Group commit: the submits that arrive while rounds of writes are running are written together.

    A round costs the same few round trips (batch document, insert_many, kiosks, counters bulk_write, alert
    window) whatever the number of submits in it, instead of those per submit; its batch document is closed
    in the same round trip as the next round writes its own, or at once when no round follows. Up to
    `rounds` rounds run at once (one is best on nx-27017, which serialises the writes: bigger rounds). A
    submit that finds fewer rounds running starts one at once (no wait when idle); otherwise it queues, and
    when a round ends, its leader hands the lead to the first queued submit, which takes everything queued.
    A worker replies only after its round has stored its votes and applied their counters; a round that
    fails fails each of its submits (the kiosks resend; what was stored is a duplicate then, counted once by
    the recovery of the round's batch document). When a round hands the lead on, its submits reply only once
    the next round has sent its votes (or after RELEASE_AFTER): green threads run one at a time, and replies
    (and their metrics) run between the next round's first, short write and its answer otherwise, holding
    it up; while the database writes the votes, they cost nothing. Green threads of one process: no lock is
    needed, as no green thread switch happens between reading and changing this state.

    `writer` is what runs a round (`Rounds`, or a fake in the tests): `write(group, close, sent)`,
    `finish(close)` and `observe(stored, counted)`. A writer may also have `settle(close)` (the consultation's rounds,
    whose counts are applied when they are closed): a round that no round follows is then settled (what its closing
    applies) before its submits reply, and closed right after they have.
    """

    def __init__(self, rounds: int = 1, max_votes: int = 2000):
        self.rounds = rounds
        self.max_votes = max_votes
        self.queued: list[Submit] = []
        self.running = 0
        self.to_close: list[tuple[str, list[str]]] = []  # rounds done whose batch document is still open
        self.waiting: list[list[Submit]] = []  # rounds done whose submits wait to reply (see _release)

    def submit(self, writer, job: Submit) -> Submit:
        """Store the submit's votes (in a round with others); returns it with `stored` and `duplicates` set."""
        if self.running < self.rounds:  # then nothing is queued either
            self.running += 1
            self._lead(writer, job)
        else:
            self.queued.append(job)
            if job.done.wait() == "lead":  # sent once: "lead" (our turn to lead a round) or "done"
                self._lead(writer, job)
        if job.error is not None:
            raise job.error
        return job

    def _lead(self, writer, first: Submit) -> None:
        group, votes = [first], len(first.docs)
        while self.queued and votes + len(self.queued[0].docs) <= self.max_votes:
            job = self.queued.pop(0)
            group.append(job)
            votes += len(job.docs)
        counted = None
        close, self.to_close = self.to_close, []
        try:
            counted = writer.write(group, close, self._release)
            self.to_close.append((counted[2], counted[3]))
        except BaseException as exc:  # every submit of the round fails with it (the leader re-raises it)
            self.to_close.extend(close)  # maybe not closed: the next round closes them (again: harmless)
            other = exc if isinstance(exc, Exception) else ServiceUnavailable("Le service s'arrête.")
            for job in group:
                job.error = other
            first.error = exc
        finally:
            self._release()  # when the round failed before sending its votes
            handed = bool(self.queued)
            if handed:  # the next round, led by the first queued submit, releases this one's submits
                first.done = GreenEvent()
                self.waiting.append(group)
                eventlet.spawn_after(RELEASE_AFTER, self._release, group)  # if its first write is slow
                self.queued.pop(0).done.send("lead")
            else:
                self.running -= 1
                if self.running == 0 and hasattr(writer, "settle"):
                    self._settle(writer)  # what closing applies (the consultation's counts) is there when they reply
                for job in group[1:]:
                    job.done.send("done")
        if self.running == 0:
            self._close(writer)
        if handed:
            first.done.wait()
        if counted is not None:
            writer.observe(counted[0], counted[1])

    def _settle(self, writer) -> None:
        """What closing applies, for the rounds done that no round follows (`writer.settle`), before their submits
        reply; their closing follows the replies. Taken from `to_close` meanwhile: no round applies them twice."""
        if not self.to_close:
            return
        close, self.to_close = self.to_close, []
        try:
            writer.settle(close)
        except Exception:  # noqa: BLE001 - the closing applies them
            log.warning("settling %d rounds failed; left to their closing", len(close), exc_info=True)
        finally:
            self.to_close = close + self.to_close

    def _close(self, writer) -> None:
        """Close the rounds done that no round follows to close (`to_close`): now."""
        if not self.to_close:
            return
        close, self.to_close = self.to_close, []
        try:
            writer.finish(close)
        except Exception:  # noqa: BLE001 - still open: the next round (or recovery) closes them
            log.warning("closing %d batches failed; left to the next round", len(close), exc_info=True)
            self.to_close.extend(close)

    def _release(self, group: list[Submit] | None = None) -> None:
        """Let the submits of rounds done reply: all of them (a round is sending its votes), or one round's."""
        if group is None:
            groups, self.waiting = self.waiting, []
        elif any(g is group for g in self.waiting):
            groups, self.waiting = [group], [g for g in self.waiting if g is not group]
        else:
            return  # released already
        for g in groups:
            for job in g:
                job.done.send("done")
