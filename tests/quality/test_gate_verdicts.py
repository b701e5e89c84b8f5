"""The gate's verdicts from counters and a baseline (pure: the DB-backed runs are in
tests/integration/test_gate_runs.py)."""

from __future__ import annotations

import datetime as dt

from quality import gate


def counters(valid=100, rejected=0, pages=20, **coverage):
    c = {"items": valid + rejected, "valid": valid, "rejected": rejected, "pages": pages,
         "coverage_base": valid}
    for name in ("price", "mileage", "images", "trim"):
        c[f"coverage_{name}"] = coverage.get(name, valid)
    return c


def judge(c, history=None, problems=(), complete=True, limits=None):
    history = history if history is not None else [counters() for _ in range(3)]
    return gate.evaluate(c, complete=complete, problems=list(problems),
                         history_counts=[h["valid"] for h in history],
                         limits=limits, history=history)


def test_a_run_like_its_history_is_healthy_and_may_remove():
    report = judge(counters(valid=98))
    assert report["verdict"] == "healthy" and report["may_remove"]
    assert report["reasons"] == []
    assert report["coverage"]["price"] == 1.0 and report["usual_coverage"]["price"] == 1.0


def test_a_tenth_of_the_usual_count_fails():
    report = judge(counters(valid=10))
    assert report["verdict"] == "failed" and not report["may_remove"]
    assert "10 vehicles against a usual 100 (10%)" in report["reasons"]


def test_half_the_usual_count_is_degraded():
    assert judge(counters(valid=50))["verdict"] == "degraded"


def test_a_field_emptied_by_a_template_change_degrades_the_run():
    report = judge(counters(valid=100, price=3))
    assert report["verdict"] == "degraded" and not report["may_remove"]
    assert report["reasons"] == ["price coverage 3% against a usual 100%"]


def test_a_field_the_dealer_never_fills_is_not_judged():
    history = [counters(trim=10) for _ in range(3)]
    assert judge(counters(trim=0), history=history)["verdict"] == "healthy"


def test_without_history_only_the_run_itself_is_judged():
    report = judge(counters(valid=5, price=0), history=[])
    assert report["verdict"] == "healthy" and report["baseline_count"] is None


def test_reject_error_and_block_rates():
    assert judge(counters(valid=70, rejected=30))["verdict"] == "degraded"
    assert judge(counters(valid=30, rejected=70), history=[])["verdict"] == "failed"
    errors = judge(counters(pages=20), problems=["5 page(s) raised errors while parsing"])
    assert errors["verdict"] == "degraded" and errors["error_rate"] == 0.25
    blocked = judge(counters(pages=20), problems=[f"blocked page /v/{i}" for i in range(6)])
    assert blocked["verdict"] == "failed" and blocked["block_rate"] == 0.3
    one = judge(counters(pages=20), problems=["blocked page /v/1"])
    assert one["verdict"] == "degraded"


def test_blocked_listing_fails_and_incomplete_degrades():
    assert judge(counters(), problems=["blocked listing page /inv"])["verdict"] == "failed"
    report = judge(counters(), complete=False)
    assert report["verdict"] == "degraded" and not report["may_remove"]


def test_a_warning_is_reported_and_changes_nothing():
    report = judge(counters(), problems=["warning: sitemap http://x/sitemap.xml not read "
                                         "(HTTP 404); the listing pages were read without it"])
    assert report["verdict"] == "healthy" and report["may_remove"]
    assert report["reasons"][0].startswith("warning: sitemap http://x/sitemap.xml")


def test_thresholds_are_per_dealer():
    limits = gate.thresholds({"gate": {"min_count_ratio": 0.4, "max_coverage_drop": "0.99",
                                       "max_reject_rate": "lots"}})
    assert limits["max_reject_rate"] == gate.DEFAULTS["max_reject_rate"]
    assert limits["fail_count_ratio"] == gate.DEFAULTS["fail_count_ratio"]
    report = judge(counters(valid=50, price=2), limits=limits)
    assert report["verdict"] == "healthy"


def test_coverage_of_a_few_changed_feed_rows_is_not_judged():
    # a feed whose unchanged rows took the fast path: only 8 of 100 went through the stages
    c = counters(valid=100, mileage=0)
    c.update(coverage_base=8, coverage_price=8, coverage_mileage=0, coverage_images=8,
             coverage_trim=8)
    assert judge(c)["verdict"] == "healthy"
    c.update(coverage_base=100, coverage_price=100, coverage_images=100, coverage_trim=100)
    assert judge(c)["verdict"] == "degraded"  # every row changed: a format change shows


def test_a_small_dealer_is_judged_by_ratio_below_the_fail_line_and_by_drop_above_it():
    usual_six = [counters(valid=6) for _ in range(3)]
    one = judge(counters(valid=1), history=usual_six)  # a feed cut to one row
    assert one["verdict"] == "failed" and not one["may_remove"]
    assert "1 vehicles against a usual 6 (17%)" in one["reasons"]
    # 3 of 6 sold in a day: a drop under min_count_drop, ordinary for a small lot
    assert judge(counters(valid=3), history=usual_six)["verdict"] == "healthy"
    usual_ten = [counters(valid=10) for _ in range(3)]
    # a drop of exactly min_count_drop (5) below min_count_ratio is judged
    assert judge(counters(valid=5), history=usual_ten)["verdict"] == "degraded"


def test_a_count_settles_after_enough_complete_runs_degraded_by_their_count_alone():
    limits = {**gate.DEFAULTS, "settle_after_runs": 3, "settle_after_hours": 24}
    now = dt.datetime(2026, 3, 31, 6, tzinfo=dt.UTC)
    day = dt.timedelta(days=1)
    this = {"count_only": True, "valid": 11}
    low = [(True, 12, now - day), (True, 13, now - 2 * day)]
    assert gate.settled_count(this, low, limits, now) == [11, 12, 13]
    assert gate.settled_count(this, low + [(True, 14, now - 3 * day), (False, 30, now)],
                              limits, now) == [11, 12, 13, 14]  # the whole streak
    assert gate.settled_count(this, low[:1], limits, now) is None  # not long enough yet
    assert gate.settled_count(this, [low[0], (False, 13, now - 2 * day)], limits,
                              now) is None  # broken streak
    minutes = [(True, 12, now - dt.timedelta(minutes=5)),
               (True, 12, now - dt.timedelta(minutes=10))]
    assert gate.settled_count(this, minutes, limits, now) is None  # the same run, repeated
    assert gate.settled_count({**this, "count_only": False}, low, limits, now) is None
    assert gate.settled_count(this, low, {**limits, "settle_after_runs": 0}, now) is None


def test_count_only_is_set_only_when_the_count_alone_degrades_a_complete_run():
    counters = {"items": 30, "valid": 30}
    alone = gate.evaluate(counters, complete=True, problems=[], history_counts=[50, 50])
    assert alone["verdict"] == "degraded" and alone["count_only"]
    also = gate.evaluate(counters, complete=True, problems=["something odd"],
                         history_counts=[50, 50])
    assert also["verdict"] == "degraded" and not also["count_only"]
    warned = gate.evaluate(counters, complete=True, history_counts=[50, 50],
                           problems=["warning: sitemap https://x.test/s.xml not read"])
    assert warned["verdict"] == "degraded" and warned["count_only"]  # a warning is no reason
    cut = gate.evaluate(counters, complete=False, problems=[], history_counts=[50, 50])
    assert not cut["count_only"]
    low = gate.evaluate({"items": 5, "valid": 5}, complete=True, problems=[],
                        history_counts=[50, 50])
    assert low["verdict"] == "failed" and not low["count_only"]  # never settles by itself


def test_new_arrivals_without_a_field_do_not_degrade_a_run_whose_old_cars_keep_it():
    # Real data (a new-car dealer, jkomskis snapshots): 15 cars, 12 with a real VIN, then 24
    # cars of which 12 are in-production placeholders. The share of real VINs fell from 80%
    # to 50%, but no car lost its VIN: the run was judged degraded and removed nothing.
    # Likewise a batch of arrivals not yet photographed.
    history = [counters(valid=15, images=12) for _ in range(3)]
    report = judge(counters(valid=24, images=12), history=history)
    assert report["verdict"] == "healthy", report["reasons"]
    # the cars that had the field losing it still degrades, in a bigger lot too
    report = judge(counters(valid=24, images=5), history=history)
    assert report["verdict"] == "degraded"
    assert report["reasons"] == ["images coverage 21% against a usual 80%"]


def test_other_vehicles_standing_in_for_the_lot_degrade_a_run_a_shrinking_lot_does_not():
    def removing(valid, unseen, established=100, limits=None):
        return gate.evaluate(counters(valid=valid), complete=True, problems=[],
                             history_counts=[established], limits=limits,
                             removing=(unseen, established))

    swapped = removing(valid=100, unseen=100)  # another dealer's lot, as many cars
    assert swapped["verdict"] == "degraded" and not swapped["count_only"]
    assert "would replace 100 of the 100 vehicles listed before it" in swapped["reasons"][0]
    assert removing(valid=100, unseen=40)["verdict"] == "healthy"  # 40 sold, 40 arrived
    assert removing(valid=95, unseen=60)["verdict"] == "degraded"  # 55 replaced, 5 gone
    # a shrinking lot is the count's to judge: 30 gone, none replaced
    assert removing(valid=70, unseen=30)["reasons"] == []
    lenient = removing(valid=20, unseen=80, limits={"min_count_ratio": 0.1,
                                                    "fail_count_ratio": 0.05})
    assert lenient["verdict"] == "healthy"  # a dealer whose thresholds allow the drop
    # a small lot turning over 4 of its 6 cars in a day is ordinary (min_count_drop)
    assert removing(valid=6, unseen=4, established=6)["reasons"] == []
