"""Which Content-Types declare a JSON body (pure logic of jobs.api.media)."""

from __future__ import annotations

import pytest

from jobs.api.media import is_json


@pytest.mark.parametrize("content_type", [
    "application/json", "Application/JSON", "application/json; charset=utf-8",
    " application/json ;charset=UTF-8", "application/merge-patch+json"])
def test_json_media_types_are_json(content_type):
    assert is_json(content_type)


@pytest.mark.parametrize("content_type", [
    None, "", "text/plain", "text/plain;charset=UTF-8", "text/json",
    "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
    "application/jsonp", "application/json-seq", "json", "application"])
def test_other_media_types_are_not(content_type):
    assert not is_json(content_type)
