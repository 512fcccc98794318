"""The per-channel rate limit is shared by the dispatcher's pipelines (green threads): together they
never send faster than the rate."""
import time
from types import SimpleNamespace

import eventlet

from services.notification import dispatch


def test_pipelines_sharing_a_rate_limit_never_exceed_it(monkeypatch):
    # As under nameko (eventlet-patched): a pipeline's sleep lets the others run.
    monkeypatch.setattr(dispatch, "time", SimpleNamespace(monotonic=time.monotonic, sleep=eventlet.sleep))
    pace = dispatch._Pace(100.0)  # one send every 10 ms
    stamps: list[float] = []

    def pipeline():
        for _ in range(5):
            pace.wait()
            stamps.append(time.monotonic())

    pool = eventlet.GreenPool(4)
    for _ in range(4):
        pool.spawn(pipeline)
    pool.waitall()
    assert len(stamps) == 20
    assert max(stamps) - min(stamps) >= 19 * 0.010 - 0.002, "20 sends take at least 19 gaps"


def test_no_rate_means_no_wait():
    pace = dispatch._Pace(0)
    t0 = time.monotonic()
    for _ in range(1000):
        pace.wait()
    assert time.monotonic() - t0 < 0.1
