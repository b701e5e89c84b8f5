"""Each scoring rule on its own, then the score as a function of flags."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from crawler.models import Vehicle
from pipelines import quality as quality_stage
from quality import score as s

TODAY = dt.date(2026, 3, 1)
PHOTOS = [f"https://cdn.example/v/{i}.jpg" for i in range(5)]


def car(**kw) -> Vehicle:
    base = dict(vin="1FMCU14T3JU402061", source="https://x.test/v/1", condition="used",
                year=2022, make="Ford", model="Escape", trim="SE", exterior_color="Blue",
                mileage=30_000, price=Decimal("21000"), image_urls=PHOTOS,
                description="A clean one-owner Escape with service records and new tyres.")
    base.update(kw)
    return Vehicle(**base)


def ctx(**kw) -> s.Context:
    return s.Context(today=TODAY, **kw)


def test_a_complete_vehicle_scores_100_with_no_flags():
    assert s.score(car(), ctx()) == (100, [])


@pytest.mark.parametrize("rule, vehicle, flags", [
    (s.rule_price, car(price=None), ["price_missing"]),
    (s.rule_price, car(), []),
    (s.rule_trim, car(trim=None), ["missing_trim"]),
    (s.rule_model, car(model=None), ["missing_model"]),
    (s.rule_colors, car(exterior_color=None, interior_color=None), ["missing_colors"]),
    (s.rule_colors, car(exterior_color=None, interior_color="Black"), []),
    (s.rule_description, car(description="Nice car."), ["short_description"]),
    (s.rule_description, car(description=None), ["short_description"]),
    (s.rule_mileage, car(condition="new", year=2026, mileage=20_000), ["mileage_new_car_high"]),
    (s.rule_mileage, car(condition="new", year=2026, mileage=12), []),
    (s.rule_mileage, car(mileage=None), ["mileage_missing_used"]),
    (s.rule_mileage, car(year=2015, mileage=0), ["mileage_implausible"]),
    (s.rule_mileage, car(year=2024, mileage=400_000), ["mileage_implausible"]),
    (s.rule_mileage, car(year=2015, mileage=150_000), []),
    (s.rule_photos, car(image_urls=[]), ["no_photos"]),
    (s.rule_photos, car(image_urls=PHOTOS[:2]), ["few_photos"]),
    (s.rule_photos, car(image_urls=["https://cdn.example/img/image-coming-soon.png"]),
     ["photo_placeholder", "no_photos"]),
    (s.rule_photos, car(image_urls=[*PHOTOS, "https://d.example/NoImageAvailable.jpg"]),
     ["photo_placeholder"]),
])
def test_rule(rule, vehicle, flags):
    assert rule(vehicle, ctx()) == flags


def test_same_photo_on_another_vehicle_is_reused_but_its_own_is_not():
    v = car()
    assert s.rule_photos(v, ctx(photo_users={PHOTOS[0]: {v.vin}})) == []
    assert s.rule_photos(v, ctx(photo_users={PHOTOS[0]: {v.vin, "OTHERVIN"}})) == \
        ["photo_reused"]


def test_price_far_from_the_same_make_model_year_is_an_outlier():
    medians = {("ford", "escape", 2022, "USD"): (Decimal("22000"), 8)}
    assert s.rule_price_outlier(car(price=Decimal("9000")), ctx(price_medians=medians)) == \
        ["price_outlier"]
    assert s.rule_price_outlier(car(price=Decimal("52000")), ctx(price_medians=medians)) == \
        ["price_outlier"]
    assert s.rule_price_outlier(car(price=Decimal("19500")), ctx(price_medians=medians)) == []
    few = {("ford", "escape", 2022, "USD"): (Decimal("22000"), 2)}  # too few to judge
    assert s.rule_price_outlier(car(price=Decimal("9000")), ctx(price_medians=few)) == []
    assert s.rule_price_outlier(car(year=2021, price=Decimal("9000")),
                                ctx(price_medians=medians)) == []


def test_a_price_is_compared_with_its_own_currencys_market_only():
    """Markets were (make, model, year) whatever the currency: a ¥3,000,000 Escape was an
    outlier of the dollar market (136 times its median), and a €21,000 one was judged
    against dollars. Now a market is one model-year in one currency."""
    dollars = {("ford", "escape", 2022, "USD"): (Decimal("22000"), 8)}
    assert s.rule_price_outlier(car(price=Decimal("3000000"), currency="JPY"),
                                ctx(price_medians=dollars)) == []
    both = {**dollars, ("ford", "escape", 2022, "JPY"): (Decimal("3100000"), 5)}
    assert s.rule_price_outlier(car(price=Decimal("3000000"), currency="JPY"),
                                ctx(price_medians=both)) == []
    assert s.rule_price_outlier(car(price=Decimal("22000"), currency="JPY"),
                                ctx(price_medians=both)) == ["price_outlier"]
    assert s.market_key("Ford", "Escape", 2022, "jpy") == ("ford", "escape", 2022, "JPY")
    assert s.market_key("Ford", "Escape", 2022, None) == ("ford", "escape", 2022, "USD")


def test_cross_dealer_duplicate_needs_a_real_vin():
    v = car()
    assert s.rule_cross_dealer(v, ctx(other_dealer_vins={v.vin})) == ["cross_dealer_duplicate"]
    placeholder = car(vin_placeholder=True)
    assert s.rule_cross_dealer(placeholder, ctx(other_dealer_vins={v.vin})) == []


def test_score_is_100_minus_penalties_and_keeps_earlier_stage_flags():
    v = car(price=None, trim=None, quality_flags=["vin_check_digit", "price_placeholder"])
    points, flags = s.score(v, ctx())
    assert flags == ["missing_trim", "price_missing", "price_placeholder", "vin_check_digit"]
    assert points == 100 - 5 - 20 - 0 - 25 == s.points(flags)
    # rule flags are recomputed, not accumulated: fixing the trim clears its flag
    fixed = v.model_copy(update={"trim": "SE", "quality_flags": flags})
    assert "missing_trim" not in s.score(fixed, ctx())[1]


def test_score_never_goes_below_zero():
    assert s.points(list(s.PENALTIES)) == 0


def test_stage_stamps_rules_version_and_counts_coverage():
    vehicles = quality_stage.batch([car(), car(vin="2T3P1RFV7PC338201", price=None,
                                                image_urls=[]),
                                    car(vin="1HGCV1F34LA000001",
                                        image_urls=["https://cdn.test/coming-soon.jpg"])],
                                   ctx())
    assert all(v.rules_version == s.RULES_VERSION for v in vehicles)
    counts = quality_stage.coverage_counts(vehicles)
    assert counts["coverage_base"] == 3
    # a placeholder photo is no photo
    assert counts["coverage_price"] == 2 and counts["coverage_images"] == 1
    assert counts["coverage_trim"] == 3


def test_real_photos_agrees_with_the_per_url_check():
    from quality.score import placeholder_photo, real_photos

    urls = ["https://cdn.test/a/1.jpg", "https://cdn.test/images/coming-soon.png",
            "https://cdn.test/photos/2.jpg", "https://cdn.test/NoImage.gif",
            "https://cdn.test/stock_photo.jpg", "https://cdn.test/blank.png"]
    assert real_photos(urls) == [u for u in urls if not placeholder_photo(u)]
    assert real_photos(urls) == ["https://cdn.test/a/1.jpg", "https://cdn.test/photos/2.jpg"]
    plain = ["https://cdn.test/x/1.jpg", "https://cdn.test/x/2.jpg"]
    assert real_photos(plain) == plain and real_photos([]) == []
