"""Tests here change FORECOURT_* variables for child processes; the parent's cached settings
are re-read from the restored environment after each test."""

from __future__ import annotations

import pytest

from crawler.config import reset_settings


@pytest.fixture(autouse=True)
def fresh_settings(monkeypatch):
    yield
    monkeypatch.undo()
    reset_settings()
