"""VIN decoding measured on every real VIN set in fixtures/real, against vininfo alone.

Agreement is counted the same way for both decoders (quality.vin_checks.same_make: equal
names ignoring case, spaces and punctuation, or one inside the other), so the margin is
what the vPIC decoder adds, not a difference in counting.
"""

from __future__ import annotations

import csv
import gzip
import json
from functools import lru_cache

import pytest
import yaml

from quality import vin_checks, vins
from tests.conftest import REAL

VPIC = REAL / "vins-vpic"
JKOMSKIS = REAL / "jkomskis-daily"


@lru_cache(maxsize=1)
def vpic_rows() -> list[dict]:
    with open(VPIC / "all_vins_decoded.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@lru_cache(maxsize=1)
def snapshot_vins() -> dict[str, dict]:
    """Every VIN in the 45 daily snapshots, with every status it was listed under."""
    out: dict[str, dict] = {}
    for path in sorted(JKOMSKIS.glob("inventory_*.json.gz")):
        with gzip.open(path) as fh:
            for rec in json.load(fh):
                if not rec.get("vin"):
                    continue
                entry = out.setdefault(rec["vin"], {"year": int(rec["year"]), "statuses": set()})
                entry["statuses"].add(rec.get("status") or "")
    return out


def vininfo_view(vin: str) -> tuple[str | None, int | None]:
    """What vininfo alone says: manufacturer, and its most recent model year."""
    info = vins._vininfo_uncached(vin)
    years = info.get("years") or []
    return info.get("make"), (max(years) if years else None)


def agreement(pairs: list[tuple[str, int, str]]) -> dict[str, float]:
    """Share of (vin, year, make) decoded to the same make and year, ours and vininfo's."""
    ours_make = ours_year = theirs_make = theirs_year = 0
    for vin, year, make in pairs:
        d = vins.decode(vin)
        ours_make += bool(d.make) and vin_checks.same_make(make, d.make)
        ours_year += d.model_year == year
        their_make, their_year = vininfo_view(vin)
        theirs_make += bool(their_make) and vin_checks.same_make(make, their_make)
        theirs_year += their_year == year
    n = len(pairs)
    return {"make": ours_make / n, "year": ours_year / n,
            "vininfo_make": theirs_make / n, "vininfo_year": theirs_year / n, "n": n}


def test_vpic_set_make_and_year_agree_far_better_than_vininfo():
    pairs = [(r["vin"], int(r["model_year"]), r["make"]) for r in vpic_rows()]
    got = agreement(pairs)
    print(f"vPIC set: {got}")
    assert got["n"] == 9896
    assert got["make"] >= 0.999 and got["year"] >= 0.999
    assert got["make"] - got["vininfo_make"] >= 0.03  # vininfo: Genesis as Hyundai, ...
    assert got["year"] >= got["vininfo_year"]


def test_vpic_set_models_agree():
    rows = [r for r in vpic_rows() if r["model"]]
    same = sum(vin_checks.same_model(r["model"], vins.decode(r["vin"]).model or "")
               and vins.decode(r["vin"]).model is not None for r in rows)
    assert same / len(rows) >= 0.99


@pytest.mark.parametrize("group, make", [("test_vin_exceptions", "Genesis"),
                                         ("test_honda_2024", "Honda"),
                                         ("test_tesla", "Tesla"), ("test_kia_2024", "Kia"),
                                         ("test_ford_2023", "Ford")])
def test_each_vpic_group_decodes_its_make(group, make):
    rows = [r for r in vpic_rows() if r["group"] == group]
    decoded = [vins.decode(r["vin"]) for r in rows]
    assert rows and all(d.make and d.make.lower() == make.lower() for d in decoded)


def test_vpic_set_makes_all_agree_infiniti_on_nissans_wmi_too():
    """Every VIN of the vPIC set decodes to its make (same_make). 5N1AL0MM8DC306971, a 2013
    Infiniti JX35, was Nissan: a body-class pattern ('AL.M', make Nissan) came before the
    pattern naming the model ('AL0', Infiniti JX35); the make is now the model's."""
    rows = vpic_rows()
    wrong = [r["vin"] for r in rows
             if not vin_checks.same_make(r["make"], vins.decode(r["vin"]).make or "?")]
    assert len(rows) == 9896 and wrong == []
    d = vins.decode("5N1AL0MM8DC306971")
    assert (d.make, d.model, d.model_year) == ("Infiniti", "JX35", 2013)


@pytest.mark.parametrize("vin, brand, assembler", [
    ("95V2A1E5PPM099209", "Bajaj", "Dafra"),  # a Bajaj Dominar assembled by Dafra, Brazil
    ("XTAGFK330JY144213", "Lada", "AvtoVAZ"),
])
def test_vininfo_fallback_names_the_brand_not_its_assembler(vin, brand, assembler):
    """vininfo's own test VINs (fixtures/real/vins-vininfo) expect these brands."""
    case = next(c for c in json.loads((REAL / "vins-vininfo" / "vininfo_test_vins.json")
                                      .read_text()) if c["vin"] == vin)
    assert case["expected"]["brand"].split(" (")[0] == brand
    assert case["expected"]["manufacturer"] == assembler
    d = vins.decode(vin)
    assert (d.make, d.decoder) == (brand, "vininfo")
    flags = vin_checks.fast_flags(d, make=brand, year=case["expected"]["years"][0])
    assert "vin_make_mismatch" not in flags


def test_vininfo_labels_that_name_a_make_are_kept():
    # a label naming the brand more precisely, or a make of its own, is not the brand's
    # rule family (vininfo files Infiniti's codes under its Nissan rules)
    assert vins._vininfo_make("Infiniti", "Nissan") == "Infiniti"
    assert vins._vininfo_make("Renault Dacia", "Renault") == "Renault Dacia"
    assert vins._vininfo_make("Ford Australia", "FordAustralia") == "Ford Australia"
    assert vins._vininfo_make("AvtoVAZ", "Lada") == "Lada"
    assert vins._vininfo_make("Suzuki", "UnsupportedBrand") == "Suzuki"
    assert vins._vininfo_make("UnsupportedBrand", "UnsupportedBrand") is None


def test_2026_snapshot_vins_take_their_model_from_the_latest_patterns():
    """vPIC has no 2026 patterns yet; the latest ones name the RAV4 for the snapshots' WMIs
    (JTM, 2T3, ...). The model is told but not checked against a source (vpic-wmi)."""
    real = [v for v, e in snapshot_vins().items()
            if e["year"] == 2026 and not vins.decode(v).placeholder]
    assert len(real) > 100
    for vin in real:
        d = vins.decode(vin)
        assert (d.make, d.model, d.model_year, d.decoder) == ("Toyota", "RAV4", 2026,
                                                              "vpic-wmi"), vin
        assert vin_checks.fast_flags(d, make="Toyota", year=2026, model="Camry") == []


def test_shared_chrysler_codes_and_hyundai_built_genesis_get_the_right_brand():
    rows = {r["vin"]: r for r in vpic_rows() if r["make"] in ("Jeep", "Genesis")}
    wrong_before = [v for v, r in rows.items()
                    if not vin_checks.same_make(r["make"], vininfo_view(v)[0] or "?")]
    assert len(wrong_before) >= 100  # vininfo names Dodge for Jeeps, Hyundai for Genesis
    assert all(vins.decode(v).make == rows[v]["make"] for v in wrong_before)


def test_genesis_exceptions_decode_despite_a_wrong_check_digit_that_is_no_error():
    data = yaml.safe_load((VPIC / "test_vin_exceptions.yaml").read_text())
    cases = data["test_vin_exceptions"]
    assert len(cases) == 299
    for case in cases:
        d = vins.decode(case["vin"])
        assert not d.check_digit_ok and not d.check_digit_required  # made in Korea
        assert (d.make, d.model, d.model_year) == (case["make"], case["model"],
                                                   case["model_year"])
        assert d.body_class == case["body_class"]
        results = vin_checks.checks(d, make="Genesis", year=2024, model="G80", body="Sedan")
        assert vin_checks.flags(results) == []
        assert {c.name: c.status for c in results}["check digit"] == "warn"


def test_cars_test_decode_yaml_agrees_on_make_model_and_year():
    cases = yaml.safe_load((VPIC / "cars__test_decode.yaml").read_text())["test_decode"]
    got = agreement([(c["vin"], c["model_year"], c["make"]) for c in cases])
    assert got["make"] >= 0.98 and got["year"] == 1.0
    assert got["make"] >= got["vininfo_make"]


def test_snapshot_vins_decode_to_toyota_of_the_stated_year():
    snap = snapshot_vins()
    pairs = [(v, e["year"], "Toyota") for v, e in snap.items()]
    got = agreement(pairs)
    print(f"snapshots: {got}")
    assert got["n"] == len(snap) > 800
    # Every listed car, placeholders included (their WMI and year code are real). vininfo
    # rejects the 28 placeholders carrying I or Q outright.
    assert got["make"] == 1.0 and got["year"] == 1.0
    assert got["vininfo_make"] < 0.97


def with_check_digit(vin: str) -> str:
    return vin[:8] + vins.check_digit(vin[:8] + "0" + vin[9:]) + vin[9:]


def test_toyotas_built_by_subaru_or_mazda_are_toyotas():
    # VINs built on vPIC's own patterns for these models (serials made up, check digits
    # computed): vininfo names the plant's owner instead of the brand.
    cases = [("JF1ZNBB10R8700001", "GR86", 2024), ("3MYDLBJV0LY700001", "Yaris", 2020),
             ("7MUABAAG0RV000001", "Corolla Cross", 2024)]
    for raw, model, year in cases:
        vin = with_check_digit(raw)
        d = vins.decode(vin)
        assert (d.make, d.model, d.model_year, d.decoder) == ("Toyota", model, year, "vpic")
        theirs = vininfo_view(vin)[0]  # Subaru / Scion, Mazda Mexico, nothing
        assert theirs is None or not vin_checks.same_make("Toyota", theirs)


def test_indexed_pattern_matching_equals_trying_every_pattern():
    """vpic.match looks only at the patterns a descriptor's characters admit: on every real
    VIN of the vPIC set, in several model years, it merges what trying them all merges."""
    from quality import vpic

    def every_pattern(info, desc, year):
        out: dict[str, str] = {}
        for p in info.patterns:
            if (year is None or p.from_year <= year <= p.to_year) and \
                    vpic._compile(p.vds).match(desc):
                vpic.merge(out, p)
                if len(out) == 6:
                    break
        return out

    compared = 0
    for row in vpic_rows():
        vin = row["vin"].strip().upper()
        info = vpic.wmi(vpic.wmi_code(vin)) if len(vin) == 17 else None
        if info is None:
            continue
        desc = vpic.descriptor(vin)
        for year in (None, 2018):
            assert vpic.match(info, desc, year) == every_pattern(info, desc, year), (vin, year)
            compared += 1
    assert compared > 1000


def test_a_decode_from_the_pattern_cache_equals_a_cold_validated_one():
    """A pattern's first VIN is decoded and validated; later VINs of the pattern reuse its
    checked fields without validating again: on real dealer VINs (a dealer's cars share a
    few patterns) each such decode equals what validating it gives, and a cold decode."""
    rows = sorted(snapshot_vins())[:1500] + [row["vin"].strip() for row in vpic_rows()][:300]
    vins.clear_caches()
    forward = [vins.decode(v) for v in rows]  # patterns met again come from the cache
    cached = sum(1 for v in rows if len(v) == 17) - len(vins._PATTERNS)
    assert cached > 500  # the comparisons below cover many cached decodes
    vins.clear_caches()
    backward = [vins.decode(v) for v in reversed(rows)][::-1]  # other VINs come first
    for decode, again in zip(forward, backward, strict=True):
        validated = vins.VinDecode.model_validate(decode.__dict__, strict=True)
        assert validated == decode and list(validated.__dict__) == list(decode.__dict__)
        assert decode == again
