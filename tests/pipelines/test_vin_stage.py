"""The VIN stage: decode, flags from every check, a missing make and model filled from
the VIN."""

from __future__ import annotations

from crawler.models import Vehicle
from pipelines import vin as vin_stage


def vehicle(vin: str, **kw) -> Vehicle:
    return Vehicle(vin=vin, source="row 1", **kw)


def test_agreeing_vehicle_gets_its_decode_and_no_flags():
    v = vin_stage.check(vehicle("KMTGA4SCDRU227656", make="Genesis", year=2024, model="G80"))
    assert v.quality_flags == [] and not v.vin_placeholder
    assert v.vin_decoded["make"] == "Genesis" and v.vin_decoded["model"] == "G80"
    assert v.vin_decoded["model_year"] == 2024 and v.vin_decoded["decoder"] == "vpic"


def test_hyundai_stated_for_a_genesis_vin_is_a_make_mismatch():
    v = vin_stage.check(vehicle("KMTGA4SCDRU227656", make="Hyundai", year=2024))
    assert v.quality_flags == ["vin_make_mismatch"]


def test_missing_make_is_filled_from_the_vin():
    v = vin_stage.check(vehicle("1C4HJXDG2NW150034", year=2022, model="Wrangler"))
    assert v.make == "Jeep" and v.quality_flags == []


def test_missing_model_is_filled_from_the_vin():
    # a real 2026 RAV4 from the snapshots: vPIC's latest patterns name the model
    v = vin_stage.check(vehicle("2T36CRAV0TC007127", year=2026))
    assert (v.make, v.model, v.quality_flags) == ("Toyota", "RAV4", [])
    assert v.vin_decoded["decoder"] == "vpic-wmi"  # told, not checked against the source
    stated = vin_stage.check(vehicle("KMTGA4SCDRU227656", make="Genesis", model="G80 2.5T"))
    assert stated.model == "G80 2.5T"


def test_model_is_not_filled_when_the_stated_make_disagrees_with_the_vin():
    v = vin_stage.check(vehicle("KMTGA4SCDRU227656", make="Hyundai", year=2024))
    assert v.model is None and v.quality_flags == ["vin_make_mismatch"]


def test_placeholder_is_kept_flagged_and_still_decoded():
    v = vin_stage.check(vehicle("2T36CRAV0TW10I008", make="Toyota", year=2026))
    assert v.vin == "2T36CRAV0TW10I008" and v.vin_placeholder
    assert v.quality_flags == ["vin_placeholder"]
    assert v.vin_decoded["placeholder_reason"].startswith("letters in the production")


def test_typo_proven_by_the_check_digit_is_corrected():
    v = vin_stage.check(vehicle("1FMCU14T3JU4O2O61", make="Ford", year=1988))
    assert v.vin == "1FMCU14T3JU402061" and v.quality_flags == []


def test_stage_replaces_its_own_old_flags_and_keeps_other_stages_flags():
    v = vehicle("1FMCU14T4JU402061", make="Ford", year=1988,
                quality_flags=["price_placeholder", "vin_make_mismatch"])
    assert vin_stage.check(v).quality_flags == ["price_placeholder", "vin_check_digit"]


def test_batch_checks_every_vehicle():
    out = vin_stage.batch([vehicle("1FMCU14T3JU402061", make="Ford", year=1990),
                           vehicle("JTM6CRAV4T102AQ22", make="Toyota", year=2026)])
    assert [v.quality_flags for v in out] == [["vin_year_mismatch"], ["vin_placeholder"]]


def test_updated_copies_as_model_copy_does():
    import pickle
    from decimal import Decimal

    from crawler.models import updated

    v = vehicle("KMTGA4SCDRU227656", make="Genesis", price=Decimal("41000"),
                image_urls=["https://x.test/1.jpg"])
    changes = {"quality_score": 90, "quality_flags": ["no_trim"], "make": "GENESIS"}
    new = updated(v, changes)
    assert new == v.model_copy(update=changes)
    assert new.model_dump() == v.model_copy(update=changes).model_dump()
    assert new.model_fields_set == v.model_copy(update=changes).model_fields_set
    assert v.make == "Genesis" and v.quality_score is None  # the original is untouched
    assert pickle.loads(pickle.dumps(new)) == new


def test_vehicles_with_the_same_decode_share_one_summary_and_hash_as_if_they_did_not():
    from crawler.db.copy_text import copy_body
    from pipelines.store import content_hash, prepare

    a = vin_stage.check(vehicle("1C4HJXDG2NW150034", year=2022, model="Wrangler"))
    b = vin_stage.check(vehicle("1C4HJXDG4NW150035", year=2022, model="Wrangler"))
    assert a.vin_decoded is b.vin_decoded  # one object, pickled and dumped once
    memo: dict[int, str] = {}
    bodies = [copy_body(a, memo), copy_body(b, memo)]
    assert bodies == [copy_body(a), copy_body(b)]
    assert list(memo) == [id(a.vin_decoded)]
    # a batch made with the shared JSON carries the hashes each vehicle has on its own
    lines = prepare([a, b])
    assert [line.rsplit("\t", 1)[1] for line in lines] == [content_hash(a), content_hash(b)]
