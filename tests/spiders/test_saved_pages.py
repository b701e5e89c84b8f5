"""Saved-page tests: every fixtures/sites/<platform>/cases/<case>.(html|json) page, extracted
as its platform, must give exactly the classification and items recorded beside it in
<case>.json (written by `forecourt extract PAGE --url URL --platform P --record`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crawler.cli.extract import item_json
from spiders.extract.dispatch import extract_page

SITES = Path(__file__).resolve().parents[2] / "fixtures" / "sites"


def cases() -> list[Path]:
    found = []
    for expected in sorted(SITES.glob("*/cases/*.json")):
        pages = [p for p in expected.parent.glob(expected.stem + ".*") if p != expected]
        if pages:
            found.append(expected)
    return found


@pytest.mark.parametrize("expected_file", cases(), ids=lambda p: f"{p.parts[-3]}/{p.stem}")
def test_saved_page_extracts_as_recorded(expected_file: Path):
    expected = json.loads(expected_file.read_text())
    page = next(p for p in expected_file.parent.glob(expected_file.stem + ".*")
                if p != expected_file)
    kind, items = extract_page(page.read_text(), expected["url"], expected.get("platform"))
    assert kind == expected["classification"]
    assert [item_json(i, raw=False) for i in items] == expected["items"]


def test_there_are_saved_cases_for_every_platform():
    from spiders.registry import platforms

    with_cases = {p.parts[-3] for p in cases()}
    assert set(platforms()) <= with_cases
