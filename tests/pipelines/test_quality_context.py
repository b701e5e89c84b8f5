"""The scoring context's photo users: only photos more than one vehicle uses are kept, and
the photo flags come out as with every photo's users spelled out."""

from __future__ import annotations

import random
from decimal import Decimal

from crawler.models import Vehicle
from pipelines import quality
from quality import score as score_mod


def every_users(vehicles, ahead, unstored_heroes):
    """The context's photo users as they were: a set for every photo of the batch."""
    users: dict[str, set[str]] = {}
    for v in vehicles:
        for url in v.image_urls:
            users.setdefault(url, set()).add(v.vin)
    for url in {v.image_urls[0] for v in vehicles if v.image_urls}:
        users[url].update(ahead.hero_users.get(url, ()))
        for unstored in unstored_heroes:
            users[url].update(unstored.get(url, ()))
    return users


def test_sparse_photo_users_flag_exactly_what_every_photos_users_flag():
    rng = random.Random(5)
    pool = [f"https://cdn.test/p/{i}.jpg" for i in range(40)]
    for _ in range(300):
        vehicles = [Vehicle(vin=f"1HGCV1F3{n:09d}", source=f"row {n}", make="Honda",
                            model="Civic", year=2021, price=Decimal("20000"),
                            image_urls=rng.sample(pool, rng.randint(0, 4)))
                    for n in range(rng.randint(1, 8))]
        heroes = {v.image_urls[0] for v in vehicles if v.image_urls}
        stored = {u: {rng.choice(["OTHER1", "OTHER2", vehicles[0].vin])}
                  for u in heroes if rng.random() < 0.3}
        ahead = quality.Lookups(heroes, {v.vin for v in vehicles}, stored, set())
        state = quality.RunQuality()
        state.medians_read.add(score_mod.market_key("Honda", "Civic", 2021, "USD"))
        for _ in range(rng.randint(0, 2)):
            state.unstored_heroes.append({rng.choice(pool): {rng.choice(["UNSTORED", "OTHER1"])}})
        ctx = quality.context_for(None, 1, vehicles, state, ahead)
        full = score_mod.Context(photo_users=every_users(vehicles, ahead, state.unstored_heroes))
        for v in vehicles:
            assert score_mod.rule_photos(v, ctx) == score_mod.rule_photos(v, full)
        assert all(len(vins) > 1 for vins in ctx.photo_users.values())
