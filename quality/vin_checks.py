"""Every check of a VIN against itself and against what the source states about the car.

Each check is a `VinCheck`: its name, a status (ok, warn, fail, skip), a human detail, and
the quality flag it raises when it fails. The VIN stage keeps the flags; `forecourt vin`
prints the whole list.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel

from quality.vins import VinDecode

Status = Literal["ok", "warn", "fail", "skip"]

# Groups vininfo names instead of the brand (vPIC names the brand itself).
_GROUPS = {
    "generalmotors": {"chevrolet", "gmc", "buick", "cadillac", "pontiac", "saturn",
                      "oldsmobile", "hummer", "opel"},
    "chrysler": {"chrysler", "dodge", "jeep", "ram", "plymouth"},
    "dodge": {"dodge", "ram", "jeep", "chrysler"},
    "hyundai": {"hyundai", "genesis"},
    "toyota": {"toyota", "lexus", "scion"},
    "nissan": {"nissan", "infiniti", "datsun"},
    "honda": {"honda", "acura"},
    "ford": {"ford", "lincoln", "mercury"},
    "volkswagen": {"volkswagen", "audi", "seat", "skoda"},
    "opelvauxhall": {"opel", "vauxhall"},
}
# Sub-brands a dealer may state where vPIC names the parent make (exact decoders too).
_SUB_BRANDS = {"mercedesbenz": {"mercedesamg", "amg", "mercedesmaybach"}}
_BODY_FAMILIES = [
    ("pickup", re.compile(r"pickup|pick-up|truck|crew ?cab|sport utility truck", re.I)),
    ("van", re.compile(r"\bvan\b|minivan|cargo", re.I)),
    ("suv", re.compile(r"suv|sport utility|crossover|\bcuv\b|multi-purpose", re.I)),
    ("convertible", re.compile(r"convertible|cabrio|roadster|spyder|spider", re.I)),
    ("coupe", re.compile(r"coupe|coupé", re.I)),
    ("wagon", re.compile(r"wagon|estate|touring", re.I)),
    ("hatchback", re.compile(r"hatch|liftback", re.I)),
    ("sedan", re.compile(r"sedan|saloon", re.I)),
]


class VinCheck(BaseModel):
    name: str
    status: Status
    detail: str
    flag: str | None = None  # the quality flag this check raises (when it fails)


@lru_cache(maxsize=8192)
def key(name: str | None) -> str:
    """Comparable form of a name: no accents, case, spaces or punctuation."""
    s = unicodedata.normalize("NFKD", name or "").encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]", "", s.lower())


@lru_cache(maxsize=8192)
def same_make(stated: str, decoded: str, exact: bool = True) -> bool:
    a, b = key(stated), key(decoded)
    if not a or not b:
        return True
    if a == b or a in b or b in a or a in _SUB_BRANDS.get(b, ()):
        return True
    return not exact and a in _GROUPS.get(b, set())


@lru_cache(maxsize=8192)
def model_names_make(stated: str, model: str | None) -> bool:
    """Whether the decoded model's name holds the stated make as whole words: vPIC names
    Toyota's Scions "Scion xD" (make Toyota), and Dodge's older Rams "Ram Van"."""
    a = key(stated)
    words = [w for w in (key(w) for w in re.split(r"[\s/]+", model or "")) if w]
    return bool(a) and any("".join(words[i:j]) == a for i in range(len(words))
                           for j in range(i + 1, len(words) + 1))


def make_agrees(stated: str, decoded: str, exact: bool, model: str | None) -> bool:
    return same_make(stated, decoded, exact) or model_names_make(stated, model)


@lru_cache(maxsize=16384)
def same_model(stated: str, decoded: str) -> bool:
    a, b = key(stated), key(decoded)
    if not a or not b or a in b or b in a:
        return True
    # Word overlap: "Silverado 1500 LT" and "Silverado"; ignore bare numbers and trims.
    words = lambda s: {key(w) for w in re.split(r"[\s/]+", s) if re.search(r"[a-z]{2,}", w, re.I)}  # noqa: E731
    return bool(words(stated) & words(decoded))


@lru_cache(maxsize=4096)
def body_family(body: str | None) -> str | None:
    for family, pattern in _BODY_FAMILIES:
        if body and pattern.search(body):
            return family
    return None


def checks(d: VinDecode, *, make: str | None = None, year: int | None = None,
           model: str | None = None, body: str | None = None) -> list[VinCheck]:
    """Every check, in the order `forecourt vin` prints them."""
    out: list[VinCheck] = []
    add = lambda *a, **k: out.append(VinCheck(name=a[0], status=a[1], detail=a[2], **k))  # noqa: E731
    if d.corrected_from:
        add("normalized", "warn", f"read {d.corrected_from} as {d.vin} (I/O/Q typo; the "
            "check digit confirms it)")
    if d.errors and not d.placeholder:
        add("syntax", "fail", "; ".join(d.errors), flag="vin_invalid")
    else:
        add("syntax", "ok" if not d.errors else "warn",
            "17 valid characters" if not d.errors else "; ".join(d.errors))
    if d.placeholder:
        add("placeholder", "fail", d.placeholder_reason or "placeholder", flag="vin_placeholder")
    elif len(d.vin) != 17:  # the shape of a real VIN is 17 characters: nothing to judge
        add("placeholder", "skip", "not checked: no VIN" if not d.vin else
            "not checked: not 17 characters")
    else:
        add("placeholder", "ok", "a real VIN's shape")
    if len(d.vin) != 17:
        return out
    filler = d.placeholder and not (d.placeholder_reason or "").startswith("letters in the")
    if d.placeholder:
        add("check digit", "skip", "not checked on a placeholder")
    elif d.check_digit_ok:
        add("check digit", "ok", f"position 9 is {d.check_digit}")
    elif d.check_digit_required:
        add("check digit", "fail", f"position 9 is {d.vin[8]}, should be {d.check_digit} "
            "(required in North America)", flag="vin_check_digit")
    else:
        add("check digit", "warn", f"position 9 is {d.vin[8]}, not {d.check_digit} (optional "
            f"outside North America)")
    add("model year code", "ok" if d.year_code_ok else "warn",
        f"{d.vin[9]} -> {', '.join(map(str, d.model_years)) or 'not a year code'}")
    exact = d.decoder in ("vpic", "vpic-wmi")
    if filler or not d.make:
        add("make", "skip", "the VIN names no make" if not filler else "placeholder")
    elif not make:
        add("make", "skip", f"VIN says {d.make}; the source states none")
    elif make_agrees(make, d.make, exact, d.model):
        add("make", "ok", f"{make} (VIN: {d.make}, {d.decoder})")
    else:
        add("make", "fail", f"source says {make}, VIN says {d.make} ({d.decoder})",
            flag="vin_make_mismatch")
    if filler or not d.model_years:
        add("model year", "skip", "no model year in the VIN")
    elif year is None:
        add("model year", "skip", f"VIN says {d.model_year}; the source states none")
    elif year in d.model_years:
        add("model year", "ok", f"{year}")
    else:
        add("model year", "fail", f"source says {year}, VIN says "
            f"{' or '.join(map(str, d.model_years))}", flag="vin_year_mismatch")
    if filler or not d.model or d.decoder != "vpic":
        add("model", "skip", "the VIN's pattern names no model")
    elif not model:
        add("model", "skip", f"VIN says {d.model}; the source states none")
    elif same_model(model, d.model):
        add("model", "ok", f"{model} (VIN: {d.model})")
    else:
        add("model", "fail", f"source says {model}, VIN says {d.model}",
            flag="vin_model_mismatch")
    stated_family, vin_family = body_family(body), body_family(d.body_class)
    if filler or not vin_family or not stated_family:
        add("body", "skip", f"VIN says {d.body_class or 'nothing'}; source says "
            f"{body or 'nothing'}")
    elif stated_family == vin_family:
        add("body", "ok", f"{body} (VIN: {d.body_class})")
    else:
        add("body", "fail", f"source says {body}, VIN says {d.body_class}",
            flag="vin_body_mismatch")
    return out


def flags(results: list[VinCheck]) -> list[str]:
    return sorted({c.flag for c in results if c.status == "fail" and c.flag})


def fast_flags(d: VinDecode, *, make: str | None = None, year: int | None = None,
               model: str | None = None, body: str | None = None) -> list[str]:
    """The flags `flags(checks(...))` gives, without building the checks (the VIN stage's
    path: a feed of a million rows). Tests hold the two equal on every real VIN set."""
    out = []
    if d.errors and not d.placeholder:
        out.append("vin_invalid")
    if d.placeholder:
        out.append("vin_placeholder")
    if len(d.vin) != 17:
        return out
    if not d.placeholder and not d.check_digit_ok and d.check_digit_required:
        out.append("vin_check_digit")
    filler = d.placeholder and not (d.placeholder_reason or "").startswith("letters in the")
    if filler:
        return sorted(out)
    out.extend(_stated_flags(d.make, d.decoder, tuple(d.model_years), d.model, d.body_class,
                             make, year, model, body))
    return sorted(out)


@lru_cache(maxsize=65536)
def _stated_flags(vin_make, decoder, years, vin_model, vin_body, make, year, model, body
                  ) -> tuple[str, ...]:
    out = []
    if vin_make and make and not make_agrees(make, vin_make, decoder in ("vpic", "vpic-wmi"),
                                              vin_model):
        out.append("vin_make_mismatch")
    if years and year is not None and year not in years:
        out.append("vin_year_mismatch")
    if vin_model and decoder == "vpic" and model and not same_model(model, vin_model):
        out.append("vin_model_mismatch")
    stated_family, vin_family = body_family(body), body_family(vin_body)
    if stated_family and vin_family and stated_family != vin_family:
        out.append("vin_body_mismatch")
    return tuple(out)
