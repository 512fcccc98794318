"""Pure satisfaction rules: the Happy Index, vote checks, repeated presses, buckets, alerts, opening hours."""
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

from services.satisfaction import domain

NOW = datetime(2026, 3, 10, 14, 30, tzinfo=timezone.utc)  # a Tuesday, 15:30 in Paris


def vote(**kw):
    base = {"id": "2f1d3c4e-1111-4222-8333-944455556666", "rating": 1, "pressed_at": NOW, "follow_up": None}
    return SimpleNamespace(**{**base, **kw})


def test_happy_index_maps_ratings_linearly_from_100_to_0():
    assert [round(domain.rating_value(r, 4), 1) for r in (1, 2, 3, 4)] == [100.0, 66.7, 33.3, 0.0]
    assert [domain.rating_value(r, 5) for r in (1, 2, 3, 4, 5)] == [100.0, 75.0, 50.0, 25.0, 0.0]
    tally = domain.Tally.empty()
    for rating in (1, 1, 2, 4):
        tally.add_vote(rating, 4)
    assert tally.total == 4 and tally.negative == 1 and domain.happy_index(tally.score, tally.total) == 66.7
    assert domain.happy_index(0.0, 0) is None


def test_negative_is_the_lower_half_of_the_scale():
    assert [domain.is_negative(r, 4) for r in (1, 2, 3, 4)] == [False, False, True, True]
    assert [domain.is_negative(r, 5) for r in (1, 2, 3, 4, 5)] == [False, False, False, True, True]


def test_vote_checks():
    assert domain.check_vote(vote(), 4, NOW, None) is None
    assert "UUID" in domain.check_vote(vote(id="x"), 4, NOW, None)
    assert "échelle" in domain.check_vote(vote(rating=5), 4, NOW, None)
    assert domain.check_vote(vote(rating=5), 5, NOW, None) is None
    assert "futur" in domain.check_vote(vote(pressed_at=NOW + timedelta(minutes=5)), 4, NOW, None)
    assert domain.check_vote(vote(pressed_at=NOW + timedelta(seconds=30)), 4, NOW, None) is None, "small clock skew"
    assert "30 jours" in domain.check_vote(vote(pressed_at=NOW - timedelta(days=31)), 4, NOW, None)
    assert "suivi" in domain.check_vote(vote(follow_up="Autre"), 4, NOW, ["L'attente"])
    assert domain.check_vote(vote(follow_up="L'attente"), 4, NOW, ["L'attente"]) is None


def test_repeated_presses_within_n_seconds_count_as_one_in_any_order():
    t = [NOW, NOW + timedelta(seconds=1), NOW + timedelta(seconds=5), NOW + timedelta(seconds=6.5)]
    assert domain.flag_repeats(t, None, 3) == [False, True, False, True]
    assert domain.flag_repeats(list(reversed(t)), None, 3) == [True, False, True, False]
    assert domain.flag_repeats([NOW + timedelta(seconds=2)], NOW, 3) == [True], "against the last stored press"
    assert domain.flag_repeats(t, None, 0) == [False] * 4


def test_buckets_hour_utc_day_paris():
    late = datetime(2026, 3, 10, 23, 30, tzinfo=timezone.utc)  # already the 11th in Paris
    assert domain.day_start(late) == datetime(2026, 3, 10, 23, 0, tzinfo=timezone.utc)
    assert domain.hour_start(late) == datetime(2026, 3, 10, 23, 0, tzinfo=timezone.utc)
    assert domain.week_start(late) == datetime(2026, 3, 8, 23, 0, tzinfo=timezone.utc)  # Monday 9th, Paris
    incs = domain.votes_increments([{"pressed_ts": NOW.timestamp(), "rating": 1, "kiosk_id": "k", "site_id": "s"},
                                    {"pressed_ts": NOW.timestamp(), "rating": 4, "repeated": True, "kiosk_id": "k",
                                     "site_id": "s"}])
    assert len(incs) == 5 and all(e["tally"].total == 1 for e in incs.values()), "repeated presses are not counted"


def test_alert_rule():
    settings = {"threshold_percent": 50, "window_minutes": 15, "min_votes": 4}
    tally = domain.Tally.empty()
    for r in (4, 4, 4):
        tally.add_vote(r, 4)
    assert not domain.alert_holds(settings, tally), "fewer than min_votes"
    tally.add_vote(1, 4)
    assert domain.alert_holds(settings, tally)
    for r in (1, 1, 1):
        tally.add_vote(r, 4)
    assert not domain.alert_holds(settings, tally)  # 3/7 = 43 %
    assert domain.alert_holds({**settings, "index_below": 60}, tally)  # index 57.1
    assert domain.alert_counts(tally)["negative_percent"] == 42.9


def test_opening_hours_in_paris_time():
    hours = [{"weekday": 1, "opens": "09:00", "closes": "17:00"}]
    assert domain.is_open(hours, NOW)
    assert not domain.is_open(hours, NOW + timedelta(hours=2))
    assert domain.is_open([], NOW)


def test_spam_filter_for_comments():
    assert not domain.comment_is_spam("Très bon accueil, merci !")
    assert domain.comment_is_spam("Gagnez vite sur www.casino.xyz")
    assert domain.comment_is_spam("aaaaaaaaaaaaaa")
    assert domain.comment_is_spam("!!!! ???? 1234 5678")


def test_increments_of_votes_of_several_kiosks_add_up_per_counter():
    """A round of writes groups the votes of several kiosks: each vote counts in its kiosk's and its site's
    counters."""
    votes = [{"kiosk_id": "k1", "site_id": "s", "scale": 4, "rating": 1, "pressed_ts": NOW.timestamp()},
             {"kiosk_id": "k2", "site_id": "s", "scale": 5, "rating": 5, "pressed_ts": (NOW + timedelta(hours=1)).timestamp()},
             {"kiosk_id": "k2", "site_id": "s", "scale": 5, "rating": 2, "pressed_ts": NOW.timestamp(), "repeated": True}]
    incs = domain.votes_increments(votes)
    assert sorted(incs) == sorted([
        "kiosk:k1:hour:20260310T1400", "kiosk:k1:day:20260309T2300", "kiosk:k2:hour:20260310T1500",
        "kiosk:k2:day:20260309T2300", "site:s:hour:20260310T1400", "site:s:hour:20260310T1500",
        "site:s:day:20260309T2300", "site:s:minute:20260310T1430", "site:s:minute:20260310T1530"])
    day = incs["site:s:day:20260309T2300"]["tally"]
    assert (day.total, day.negative, day.score) == (2, 1, 100.0), "the repeated press is not counted"
    assert incs["site:s:day:20260309T2300"]["meta"] == {"scope": "site", "ref": "s", "gran": "day",
                                                         "t": int(datetime(2026, 3, 9, 23, tzinfo=timezone.utc).timestamp()),
                                                         "site_id": "s"}
    # A site's minute holds each kiosk's part (the kiosks' alert windows), as flat fields.
    minute = incs["site:s:minute:20260310T1430"]
    assert domain.entry_inc(minute) == {"r1": 1, "total": 1, "negative": 0, "score": 100.0,
                                        "k:k1:r1": 1, "k:k1:total": 1, "k:k1:negative": 0, "k:k1:score": 100.0}
    assert domain.kiosk_parts({"_id": "x", "r1": 3, "k:k-1_a:r1": 2, "k:k-1_a:total": 2, "k:k2:total": 1}) == {
        "k-1_a": {"r1": 2, "total": 2}, "k2": {"total": 1}}
    alone = domain.votes_increments(votes[:1])
    assert len(alone) == 5 and all(alone[k]["tally"].inc() == incs[k]["tally"].inc() for k in alone if "k1" in k)


def _v(vid, seconds, rating=1, repeated=False, kiosk="k1"):
    doc = {"_id": vid, "kiosk_id": kiosk, "site_id": "s", "scale": 4, "rating": rating,
           "pressed_ts": NOW.timestamp() + seconds}
    if repeated:
        doc["repeated"] = True
    return doc


def test_replayed_flags_judge_the_first_press_against_the_one_before_the_period():
    votes = [_v("c", 5), _v("a", 1), _v("b", 2), _v("d", 9)]  # any order
    assert domain.replay_flags(votes, None, 3) == {"a": False, "b": True, "c": False, "d": False}
    # The press before the period, 2 s before the first one: the first is a repeat too.
    assert domain.replay_flags(votes, NOW.timestamp() - 1, 3) == {"a": True, "b": True, "c": False, "d": False}
    assert domain.replay_flags(votes, NOW.timestamp() - 2, 3)["a"] is False, "3 s after: not a repeat"
    # A chain: each press within 3 s of the previous one (flagged or not) is a repeat.
    chain = [_v(f"v{i}", 2 * i) for i in range(4)]
    assert domain.replay_flags(chain, None, 3) == {"v0": False, "v1": True, "v2": True, "v3": True}
    assert not any(domain.replay_flags(chain, NOW.timestamp() - 1, 0).values()), "0 s: nothing is a repeat"
    # Same as the ingest's rule for presses arriving in order; ties broken by id, so a replay is stable.
    pressed = [NOW + timedelta(seconds=s) for s in (0, 1, 2, 7, 8, 20)]
    docs = [_v(f"x{i}", s) for i, s in enumerate((0, 1, 2, 7, 8, 20))]
    assert list(domain.replay_flags(docs, None, 3).values()) == domain.flag_repeats(pressed, None, 3)
    tie = [_v("t2", 0), _v("t1", 0)]
    assert domain.replay_flags(tie, None, 3) == domain.replay_flags(list(reversed(tie)), None, 3) == {"t1": False, "t2": True}


def test_recount_deltas_move_the_flipped_votes_in_or_out_of_every_counter():
    votes = [_v("a", 0, rating=4), _v("b", 1, rating=1, repeated=True), _v("c", 2, rating=3, repeated=True),
             _v("d", 3600, rating=2)]
    flags = domain.replay_flags(votes, None, 0)  # rule 0 s: nothing is a repeat
    flag, unflag = domain.flag_flips(votes, flags)
    assert flag == [] and [v["_id"] for v in unflag] == ["b", "c"]
    deltas = domain.recount_deltas(flag, unflag)
    assert sorted(deltas) == ["kiosk:k1:day:20260309T2300", "kiosk:k1:hour:20260310T1400", "site:s:day:20260309T2300",
                              "site:s:hour:20260310T1400", "site:s:minute:20260310T1430"]
    assert deltas["site:s:minute:20260310T1430"]["inc"]["k:k1:total"] == 2, "the kiosk's part of the window too"
    inc = deltas["site:s:hour:20260310T1400"]["inc"]
    assert inc == {"r1": 1, "r3": 1, "total": 2, "negative": 1, "score": round(100.0 + 100.0 / 3, 6)}
    assert deltas["site:s:hour:20260310T1400"]["meta"]["gran"] == "hour"
    # Back to 3 s: the same votes leave the counters again (negative deltas), the rest is untouched.
    now_counted = [{**v, "repeated": False} for v in votes]
    flag, unflag = domain.flag_flips(now_counted, domain.replay_flags(now_counted, None, 3))
    assert [v["_id"] for v in flag] == ["b", "c"] and unflag == []
    back = domain.recount_deltas(flag, unflag)
    assert back["site:s:hour:20260310T1400"]["inc"] == {"r1": -1, "r3": -1, "total": -2, "negative": -1,
                                                        "score": round(-100.0 - 100.0 / 3, 6)}
    # A flag and an unflag of the same rating in one counter cancel out: no write for it.
    swap = domain.recount_deltas([_v("p", 0, rating=2)], [_v("q", 90, rating=2, repeated=True)])
    assert "site:s:hour:20260310T1400" not in swap and swap["site:s:minute:20260310T1431"]["inc"]["k:k1:r2"] == 1
    assert swap["site:s:minute:20260310T1430"]["inc"]["total"] == -1
    # Replayed twice, nothing flips the second time.
    settled = [{**v, "repeated": flags[v["_id"]]} for v in votes]
    assert domain.flag_flips(settled, domain.replay_flags(settled, None, 0)) == ([], [])
