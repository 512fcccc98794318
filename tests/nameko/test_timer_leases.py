"""Exclusive timers across replicas (services/common/timers.py): two containers of one service on the real
database; an exclusive timer ticks in one of them only, the other takes over when the holder is stopped or
killed, and a tick longer than its lease keeps it; a per-process timer ticks in both."""
import itertools
import os
import threading

import eventlet
import pytest

from services.common.timers import LEASES, LeaseStore, ParvisTimer, timer
from tests.support import wait_until

_names = itertools.count()


def make_service(exclusive: bool, interval: float = 0.1, lease: float | None = 1.0, work: float = 0.0):
    """A service whose timer records which container ran each tick; one class per test (its own lease)."""
    ticks: list[tuple[str, float, float]] = []  # (container, started, ended)

    class Service:
        name = f"lease_probe_{os.getpid()}_{next(_names)}"

        @timer(interval, exclusive=exclusive, lease=lease)
        def tick(self):
            started = eventlet.hubs.get_hub().clock()
            eventlet.sleep(work)
            ticks.append((self.container_id, started, eventlet.hubs.get_hub().clock()))
            return 1

    return Service, ticks


@pytest.fixture
def replicas(container_factory, parvis_env):
    def go(service_cls, n=2):
        made = []
        for i in range(n):
            cls = type(service_cls.__name__, (service_cls,), {"container_id": f"replica-{i}"})
            container = container_factory(cls, {"AMQP_URI": parvis_env["amqp_url"], "serializer": "json"})
            container.start()
            made.append(container)
        return made
    return go


def runners(ticks, since=0.0):
    return {who for who, started, _ in ticks if started >= since}


def test_an_exclusive_timer_ticks_in_one_replica_and_another_takes_over_when_it_stops(replicas):
    Service, ticks = make_service(exclusive=True)
    first, second = replicas(Service)
    eventlet.sleep(1.5)
    assert len(ticks) >= 8, ticks
    assert len(runners(ticks)) == 1, f"both replicas ran the exclusive timer: {runners(ticks)}"
    holder = first if runners(ticks) == {"replica-0"} else second
    other = second if holder is first else first
    holder.stop()  # a clean stop releases the lease: the other replica takes it at its next tick
    stopped_at = eventlet.hubs.get_hub().clock()
    wait_until(lambda: runners(ticks, stopped_at), 2, 0.05, "the other replica ticking")
    assert runners(ticks, stopped_at) == {other.service_cls.container_id}
    taken = min(started for who, started, _ in ticks if started >= stopped_at) - stopped_at
    assert taken < 0.5, f"took over {taken:.2f} s after a clean stop (a released lease is taken at the next tick)"


def test_a_killed_holder_is_replaced_once_its_lease_runs_out(replicas):
    Service, ticks = make_service(exclusive=True, lease=1.0)
    first, second = replicas(Service)
    eventlet.sleep(0.6)
    [holder_id] = runners(ticks)
    holder = first if holder_id == "replica-0" else second
    holder.kill()  # no release: as after kill -9
    killed_at = eventlet.hubs.get_hub().clock()
    wait_until(lambda: runners(ticks, killed_at), 3, 0.05, "the other replica ticking")
    taken = min(started for who, started, _ in ticks if started >= killed_at) - killed_at
    assert 0.3 < taken < 1.5, f"taken over after {taken:.2f} s (the lease lasts 1 s)"


def test_a_tick_longer_than_its_lease_keeps_it(replicas):
    """A 2.5 s tick under a 1 s lease: renewed beside the tick, so the other replica never runs at the same time."""
    Service, ticks = make_service(exclusive=True, interval=0.1, lease=1.0, work=2.5)
    replicas(Service)
    eventlet.sleep(6)
    spans = sorted((started, ended) for _, started, ended in ticks)
    assert len(spans) >= 2
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start >= end, f"two ticks overlapped: {spans}"


def test_a_per_process_timer_ticks_in_every_replica(replicas):
    Service, ticks = make_service(exclusive=False)
    replicas(Service)
    eventlet.sleep(0.8)
    assert runners(ticks) == {"replica-0", "replica-1"}


def test_the_lease_is_taken_by_one_of_many_racing_owners(mongo):
    """Twenty owners asking at once for a free lease, then for one that ran out: one gets it each time."""
    coll = mongo.client().parvis_lease_race[LEASES]
    coll.drop()
    stores = [LeaseStore(coll, f"owner-{i}") for i in range(20)]

    def race(now):
        won, barrier = [], threading.Barrier(len(stores))

        def ask(store):
            barrier.wait()
            if store.acquire("race.tick", 10.0, now=now):
                won.append(store.owner)

        threads = [threading.Thread(target=ask, args=(s,)) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return won

    [first] = race(1000.0)
    assert race(1005.0) == [first], "held: only its owner renews it"
    [second] = race(1020.0)  # run out at 1015
    assert coll.find_one({"_id": "race.tick"})["owner"] == second
    mongo.client().drop_database("parvis_lease_race")


def test_every_timer_of_every_service_says_whether_it_is_exclusive():
    """A service's timer is ours (exclusive or not, said): nameko's bare @timer would run in every replica."""
    from nameko.timer import Timer
    from parvis.runner import SERVICE_CLASSES, load_class

    found = {}
    for name, path in SERVICE_CLASSES.items():
        cls = load_class(path)
        for attr in dir(cls):
            for ext in getattr(getattr(cls, attr), "nameko_entrypoints", ()):
                if isinstance(ext, Timer):
                    assert isinstance(ext, ParvisTimer), f"{name}.{attr}: use services.common.timers.timer"
                    found[f"{name}.{attr}"] = ext.exclusive
    assert found["satisfaction.recover_batches"] and found["agenda.announce_scheduled"]
    assert found["notification.daily_digest"] and found["satisfaction.watch"]
    assert not found["agenda.refresh_public_snapshot"] and not found["notification.dispatch"]
    assert found["payment_link.reconcile_round"] and found["payment_link.expire_links"]
