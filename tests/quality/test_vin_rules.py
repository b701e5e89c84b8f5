"""VIN syntax, normalization, check digit, placeholders and checks: vininfo's own test VINs,
the real snapshots' placeholders, and the rules one by one."""

from __future__ import annotations

import json

import pytest

from quality import vin_checks, vins
from tests.conftest import REAL
from tests.quality.test_vin_decoding_real import snapshot_vins

VININFO = json.loads((REAL / "vins-vininfo" / "vininfo_test_vins.json").read_text())
REJECTED = ["tooshort", "AAAAAAAAAAAAAAAAO", "1\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n1",
            "AAAAAAAIAAAAAAAAA", "AAAAAAA:AAAAAAAAA"]


def test_strings_vininfo_rejects_are_not_vins():
    listed = [c["vin"] for c in VININFO if c["source"] == "test_module.py"]
    for raw in REJECTED:
        assert raw in listed
        d = vins.decode(raw)
        assert d.errors, raw
        assert d.make is None and d.model is None


@pytest.mark.parametrize("case", [c for c in VININFO if c["vin"] not in REJECTED],
                         ids=lambda c: c["vin"])
def test_vininfo_test_vins_decode_as_vininfo_specifies(case):
    d = vins.decode(case["vin"])
    expected = case["expected"]
    assert not d.errors
    if expected.get("brand"):  # "Bajaj (Bajaj)", "Lada (AvtoVAZ)": the brand, then its maker
        assert vin_checks.same_make(expected["brand"].split(" (")[0], d.make or ""), d
    elif expected.get("manufacturer") and expected["manufacturer"] != "UnsupportedBrand":
        assert vin_checks.same_make(expected["manufacturer"], d.make or ""), d
    if expected.get("manufacturer") == "UnsupportedBrand":
        assert d.make is None and d.country is None
    if expected.get("country"):
        assert d.country == expected["country"]
    if expected.get("years"):
        # ours is never wider than vininfo's candidates, and usually narrower
        assert d.model_years and set(d.model_years) <= set(expected["years"])
    if expected.get("wmi"):
        assert d.wmi == expected["wmi"]
    if "squish_vin" in expected:
        assert d.squish_vin == expected["squish_vin"]
    if "verify_checksum" in expected:
        # the fixture records that vininfo's test checks it; vininfo says what the answer is
        # (Ford Australia's position 9 is a body code: never a check digit)
        from vininfo import Vin

        assert d.check_digit_ok == Vin(case["vin"]).verify_checksum()


def test_vininfo_checksum_and_small_maker_cases():
    assert vins.decode("1M8GDM9AXKP042788").check_digit_ok
    assert not vins.decode("1M8GDM9AyKP042788").check_digit_ok  # faked, lower case
    lenient = vins.decode("WBA71DC010CH14720")  # valid check digit, 0 is no year code
    assert lenient.check_digit_ok and not lenient.year_code_ok
    assert vins.decode("KF1SF08WJ8B257338").squish_vin == "KF1SF08W8B"
    assert vins.decode("TM912345678901234").wmi == "TM9901"  # small maker: 6 characters
    assert vins.decode("JSA12345678901234").make == "Suzuki"


def test_snapshot_placeholders_are_flagged_and_real_vins_are_not():
    snap = snapshot_vins()
    in_production = {v for v, e in snap.items() if e["statuses"] and
                     all("Production" in s for s in e["statuses"] if s)}
    with_letters = {v for v in snap if any(c.isalpha() for c in v[12:])}
    arrived = {v for v, e in snap.items() if any("Stock" in s or "Transit" in s
                                                 for s in e["statuses"])}
    # The characterisation, on the data itself: letters in positions 13-17 only on cars
    # in production (one dealer kept showing a placeholder after the car arrived), every
    # one with a check digit counting I as 9 and Q as 8.
    assert with_letters - in_production == {"2T36CRAV4TW15E540"}
    assert len(with_letters) > 350 and len(in_production - with_letters) > 60
    for v in with_letters:
        d = vins.decode(v)
        assert d.placeholder and "production sequence" in d.placeholder_reason, v
        assert vins._check_digit(v, vins._PLACEHOLDER_VALUES) == v[8]
        flags = vin_checks.flags(vin_checks.checks(d, make="Toyota", year=snap[v]["year"]))
        assert flags == ["vin_placeholder"], (v, flags)
    for v in (arrived | in_production) - with_letters:
        d = vins.decode(v)
        assert not d.placeholder and d.check_digit_ok, v
        assert vin_checks.flags(vin_checks.checks(d, make="Toyota", year=2026)) == []
    iq = [v for v in with_letters if set(v) & set("IOQ")]
    assert len(iq) == 28 and all(vins.normalize(v) == (v, None) for v in iq)


@pytest.mark.parametrize("raw, vin", [
    (" 1fmcu14t3ju402061 ", "1FMCU14T3JU402061"),
    ("1FM-CU14T3-JU402061", "1FMCU14T3JU402061"),
    ("1FMCU14T3JU4O2O61", "1FMCU14T3JU402061"),  # O for 0, proven by the check digit
    ("1FMCUI4T3JU402061", "1FMCU14T3JU402061"),  # I for 1
])
def test_normalize_fixes_case_separators_and_proven_typos(raw, vin):
    d = vins.decode(raw)
    assert d.vin == vin and not d.errors
    assert d.make == "Ford" and d.model_year == 1988


@pytest.mark.parametrize("real", [
    "JH4DC4340RS003205",  # 1994 Acura Integra RS, built in Japan
    "KNAE55LC7J6018811",  # 2018 Kia Stinger GT2, built in Korea
    "WAUFFGFF8F1068897",  # 2015 Audi S3, built in Germany
])
def test_o_for_zero_typo_in_an_imported_cars_vin_is_fixed_by_its_check_digit(real):
    """Real VINs (fixtures/real/vins-vpic) of cars sold in the US but built elsewhere: the
    check digit is optional outside North America, yet theirs is valid and proves the fix."""
    assert vins.check_digit_ok(real) and not vins.check_digit_required(real)
    typo = real[:11] + real[11:].replace("0", "O", 1)
    d = vins.decode(typo)
    assert d.vin == real and d.corrected_from == typo and not d.placeholder
    i_for_one = vins.decode(real.replace("1", "I", 1))
    assert i_for_one.vin == real and not i_for_one.errors


def test_an_imported_vin_whose_typo_the_check_digit_does_not_prove_stays():
    real = "WAUFFGFF8F1068897"
    wrong = real[:8] + "5" + real[9:]  # any other check digit
    typo = wrong[:11] + "O" + wrong[12:]
    assert vins.normalize(typo) == (typo, None)
    assert vins.decode(typo).placeholder


def test_unprovable_i_o_q_stays_and_is_flagged():
    d = vins.decode("1FMCU14T4JU4O2O61")  # check digit fails either way
    assert d.vin == "1FMCU14T4JU4O2O61" and d.errors
    assert d.placeholder
    assert "vin_placeholder" in vin_checks.flags(vin_checks.checks(d))


def test_check_digit_is_required_in_north_america_only():
    us = vins.decode("1FMCU14T4JU402061")
    assert us.check_digit_required and not us.check_digit_ok
    assert vin_checks.flags(vin_checks.checks(us)) == ["vin_check_digit"]
    korea = vins.decode("KMTGA4SCDRU227656")
    assert not korea.check_digit_ok and not korea.check_digit_required
    assert vin_checks.flags(vin_checks.checks(korea)) == []


@pytest.mark.parametrize("stated, flag", [
    ({"make": "Ford", "year": 1988, "model": "Bronco II", "body": "SUV"}, None),
    ({"make": "Chevrolet", "year": 1988}, "vin_make_mismatch"),
    ({"make": "Ford", "year": 1989}, "vin_year_mismatch"),
    ({"make": "Ford", "model": "Mustang"}, "vin_model_mismatch"),
    ({"make": "Ford", "body": "Convertible"}, "vin_body_mismatch"),
])
def test_each_disagreement_with_the_source_is_its_own_flag(stated, flag):
    results = vin_checks.checks(vins.decode("1FMCU14T3JU402061"), **stated)
    assert vin_checks.flags(results) == ([flag] if flag else [])


def test_filler_and_counting_placeholders():
    assert vins.decode("1XXXXXXXXXXXXXXXX").placeholder_reason == "filler characters"
    assert vins.decode("JSA12345678901234").placeholder
    assert not vins.decode("W0LPC6DB3CC123456").placeholder  # six in a row can be real


def test_infiniti_on_nissans_wmi_is_no_make_mismatch():
    """5N1AL0MM8DC306971 is a real 2013 Infiniti JX35 (vPIC) built under Nissan's WMI 5N1."""
    d = vins.decode("5N1AL0MM8DC306971")
    assert (d.make, d.model, d.decoder) == ("Infiniti", "JX35", "vpic")
    assert vin_checks.fast_flags(d, make="INFINITI", year=2013, model="JX35") == []
    assert vin_checks.fast_flags(d, make="Nissan", year=2013) == ["vin_make_mismatch"]


@pytest.mark.parametrize("vin, stated, model", [
    ("JTKKU4B40C1028652", "Scion", "xD"),  # real 2012 Scion xD; vPIC: Toyota "Scion xD"
    ("JTKKU4B40C1028652", "SCION", None),
    ("WDDYJ7JA0KA000001", "Mercedes-AMG", "AMG GT"),  # AMG: vPIC names Mercedes-Benz
])
def test_a_brand_vpic_files_under_its_parent_is_no_make_mismatch(vin, stated, model):
    from pipelines import normalize

    vin = vin[:8] + vins.check_digit(vin[:8] + "0" + vin[9:]) + vin[9:]
    d = vins.decode(vin)
    assert d.decoder in ("vpic", "vpic-wmi") and d.make in ("Toyota", "Mercedes-Benz")
    flags = vin_checks.fast_flags(d, make=normalize.make(stated), model=model)
    assert "vin_make_mismatch" not in flags
    results = vin_checks.checks(d, make=normalize.make(stated), model=model)
    assert vin_checks.flags(results) == flags


def test_the_decoded_model_accepts_a_make_only_as_whole_words():
    assert vin_checks.model_names_make("Scion", "Scion xD")
    assert vin_checks.model_names_make("RAM", "Ram Van")  # Dodge's, in vPIC
    assert vin_checks.model_names_make("Land Rover", "Land Rover Defender")
    assert not vin_checks.model_names_make("Sci", "Scion xD")
    assert not vin_checks.model_names_make("Lexus", "Scion xD")
    assert not vin_checks.model_names_make("Scion", None)
    d = vins.decode("JTKKU4B40C1028652")
    assert vin_checks.fast_flags(d, make="Honda", year=2012) == ["vin_make_mismatch"]


def test_make_comparison_is_forgiving_only_where_names_differ():
    assert vin_checks.same_make("Mercedes Benz", "Mercedes-Benz")
    assert vin_checks.same_make("Skoda", "Škoda")
    assert not vin_checks.same_make("Hyundai", "Genesis")
    assert vin_checks.same_make("Chevrolet", "General Motors", exact=False)
    assert not vin_checks.same_make("Chevrolet", "General Motors")


def test_a_missing_or_short_vin_is_invalid_and_not_judged_a_placeholder():
    for raw, syntax in (("", "missing: no VIN given"), (" - ", "missing: no VIN given"),
                        (None, "missing: no VIN given"), ("ABC", "3 characters, not 17")):
        d = vins.decode(raw)
        results = {c.name: c for c in vin_checks.checks(d)}
        assert (results["syntax"].status, results["syntax"].detail) == ("fail", syntax)
        assert results["placeholder"].status == "skip"
        assert vin_checks.fast_flags(d) == vin_checks.flags(list(results.values())) \
            == ["vin_invalid"]


def test_fast_flags_equal_the_full_checks_on_every_real_vin():
    from tests.quality.test_vin_decoding_real import vpic_rows

    stated = [dict(make="Toyota", year=2026, model="RAV4", body="SUV"),
              dict(make="Honda", year=2024, model="Accord", body="Sedan"),
              dict(make=None, year=None), dict(make="Genesis", year=2023, model="GV70")]
    raws = [r["vin"] for r in vpic_rows()[::7]] + list(snapshot_vins())[::3] + \
        [c["vin"] for c in VININFO]
    for raw in raws:
        d = vins.decode(raw)
        for kw in stated:
            assert vin_checks.fast_flags(d, **kw) == \
                vin_checks.flags(vin_checks.checks(d, **kw)), (raw, kw)
