"""The group commit of the satisfaction and consultation services (IngestQueue): who leads, who waits, and when a
finished round's submits reply. Green threads over a fake round writer (no database): the queue's own logic only."""
from __future__ import annotations

import time

import eventlet
import pytest

from services.satisfaction.ingest import RELEASE_AFTER, IngestQueue, Submit


class FakeRounds:
    """Rounds as the service runs them (ingest.Rounds): `first_write` seconds for the batch document, then `sent()`, then
    `insert` seconds for the votes. Records when each round sent its votes and what it held."""

    def __init__(self, first_write=0.0, insert=0.05, fail_round=None):
        self.first_write, self.insert, self.fail_round = first_write, insert, fail_round
        self.rounds: list[list[Submit]] = []
        self.sent_at: list[float] = []

    def write(self, group, close, sent):
        self.rounds.append(group)
        n = len(self.rounds)
        eventlet.sleep(self.first_write if n > 1 else 0.0)
        if n == self.fail_round:
            raise RuntimeError("database gone")
        sent()
        self.sent_at.append(time.monotonic())
        eventlet.sleep(self.insert)
        for job in group:
            job.stored, job.duplicates = list(job.docs), []
        return [d for job in group for d in job.docs], time.time(), f"batch-{n}", []

    def finish(self, closes):
        pass

    @staticmethod
    def observe(stored, counted):
        pass


def run(queue, service, submits, spacing=0.005):
    """Submit each job from its own green thread, `spacing` apart; returns {index: (finished_at, error)}."""
    done = {}

    def one(i, job):
        try:
            queue.submit(service, job)
            done[i] = (time.monotonic(), None)
        except Exception as exc:  # noqa: BLE001 - recorded for the test
            done[i] = (time.monotonic(), exc)

    threads = []
    for i, job in enumerate(submits):
        threads.append(eventlet.spawn(one, i, job))
        eventlet.sleep(spacing)
    for t in threads:
        t.wait()
    return done


def jobs(n):
    return [Submit([{"_id": f"v{i}"}], {"_id": "k"}, {"_id": "s"}) for i in range(n)]


def test_submits_that_arrive_during_a_round_share_the_next_one():
    service = FakeRounds()
    done = run(IngestQueue(), service, jobs(6))
    assert len(done) == 6 and all(err is None for _, err in done.values())
    assert [len(r) for r in service.rounds] == [1, 5], "the first alone (no wait when idle), the rest together"


def test_a_finished_round_replies_once_the_next_round_has_sent_its_votes():
    service = FakeRounds(first_write=0.05)
    submits = jobs(3)
    done = run(IngestQueue(), service, submits[:1] + submits[1:], spacing=0.002)
    assert [len(r) for r in service.rounds] == [1, 2]
    first_finished = done[0][0]
    assert first_finished >= service.sent_at[1], "round 1 replied before round 2 had sent its votes"


def test_a_slow_first_write_of_the_next_round_holds_replies_up_only_so_long():
    service = FakeRounds(first_write=1.0)
    done = run(IngestQueue(), service, jobs(3), spacing=0.002)
    waited = done[0][0] - service.sent_at[0]
    assert waited < service.insert + RELEASE_AFTER + 0.15, f"round 1 replied after {waited:.2f} s"
    assert done[1][0] >= service.sent_at[1], "round 2's own submits still wait for their votes"


def test_a_failed_round_fails_its_submits_and_releases_the_round_before():
    service = FakeRounds(first_write=0.05, fail_round=2)
    done = run(IngestQueue(), service, jobs(3), spacing=0.002)
    assert done[0][1] is None, "round 1 stored its votes"
    assert all(isinstance(done[i][1], RuntimeError) for i in (1, 2)), "round 2's submits get its error"
    assert done[0][0] - service.sent_at[0] < 0.5


@pytest.mark.parametrize("rounds", [1, 2])
def test_every_submit_ends_under_load(rounds):
    service = FakeRounds(first_write=0.003, insert=0.01)
    done = run(IngestQueue(rounds=rounds), service, jobs(200), spacing=0.0005)
    assert len(done) == 200 and all(err is None for _, err in done.values())
    assert sum(len(r) for r in service.rounds) == 200


class SettlingRounds(FakeRounds):
    """Rounds whose closing matters to their submits (the consultation's: counts applied when a round is closed):
    settled before their submits reply when no round follows, closed right after. Records when each settling and
    closing ended and what it held."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.settled: list[tuple[float, list[str]]] = []
        self.closed: list[tuple[float, list[str]]] = []
        self.closes: list[list[str]] = []

    def write(self, group, close, sent):
        self.closes.append([c[0] for c in close])
        return super().write(group, close, sent)

    def settle(self, closes):
        eventlet.sleep(0.02)
        self.settled.append((time.monotonic(), [c[0] for c in closes]))

    def finish(self, closes):
        eventlet.sleep(0.2)
        self.closed.append((time.monotonic(), [c[0] for c in closes]))


def test_a_round_no_round_follows_is_settled_before_its_submits_reply_and_closed_after():
    service = SettlingRounds(insert=0.02)
    done = run(IngestQueue(), service, jobs(4), spacing=0.002)
    assert [len(r) for r in service.rounds] == [1, 3]
    assert service.closes == [[], ["batch-1"]], "batch-1 closed by batch-2's first write"
    assert [names for _, names in service.settled] == [["batch-2"]]
    assert [names for _, names in service.closed] == [["batch-2"]]
    assert all(done[i][0] >= service.settled[0][0] for i in (1, 2, 3)), "a submit replied before its round settled"
    assert all(done[i][0] < service.closed[0][0] - 0.15 for i in (2, 3)), "the closing held the replies up"


def test_other_rounds_reply_without_waiting_for_their_closing():
    service = FakeRounds(insert=0.02)
    service.finish = lambda closes: (eventlet.sleep(0.2), service.rounds.append([]))
    done = run(IngestQueue(), service, jobs(4), spacing=0.002)
    # job 1 leads round 2 and closes it before it returns; the others reply first, without waiting 0.2 s for that
    assert all(done[1][0] - done[i][0] > 0.15 for i in (2, 3)), "the queue's default: replies, then the closing"
