"""Outbound safety for HTTP feed fetches: the guarded httpx client and transport."""

from __future__ import annotations

import json

import httpx
import pytest

from crawler import fixture_server, netguard
from crawler.config import reset_settings
from crawler.errors import UnsafeURL

pytestmark = pytest.mark.integration


@pytest.fixture
def servers(tmp_path):
    inner_root = tmp_path / "inner"
    inner_root.mkdir()
    (inner_root / "feed.csv").write_text("VIN,Price\n1HGCM82633A004352,1\n")
    inner = fixture_server.serve(inner_root, host="127.0.0.2")
    outer_root = tmp_path / "outer"
    outer_root.mkdir()
    (outer_root / "feed.csv").write_text("VIN,Price\n1HGCM82633A004352,2\n")
    (outer_root / "routes.json").write_text(json.dumps({
        "/moved.csv": {"redirect": fixture_server.base_url(inner) + "/feed.csv"},
        "/here.csv": {"redirect": "{{BASE}}/feed.csv"},
        "/metadata.csv": {"redirect": "http://169.254.169.254/latest/user-data"},
    }))
    outer = fixture_server.serve(outer_root)
    yield fixture_server.base_url(outer), fixture_server.base_url(inner), \
        inner.RequestHandlerClass.hits
    for s in (outer, inner):
        s.shutdown()
        s.server_close()


def test_feed_fetch_follows_safe_redirects_and_refuses_forbidden_ones(servers):
    outer, inner, inner_hits = servers
    with netguard.safe_client(follow_redirects=True, timeout=5) as client:
        assert client.get(outer + "/here.csv").text.endswith(",2\n")
        for path in ("/moved.csv", "/metadata.csv"):
            with pytest.raises(UnsafeURL) as info:
                client.get(outer + path)
            assert "refused" in str(info.value)
    assert inner_hits == {}


def test_allow_list_opens_the_redirect(servers, monkeypatch):
    outer, inner, inner_hits = servers
    monkeypatch.setenv("FORECOURT_ALLOW_PRIVATE_HOSTS", '["127.0.0.1", "127.0.0.2"]')
    reset_settings()
    try:
        with netguard.safe_client(follow_redirects=True, timeout=5) as client:
            assert client.get(outer + "/moved.csv").text.endswith(",1\n")
    finally:
        monkeypatch.undo()
        reset_settings()
    assert inner_hits["/feed.csv"] == 1


def test_transport_checks_each_connection_without_the_hook(servers, monkeypatch):
    """The network backend resolves, checks and connects to the checked address itself, so
    the check holds at connection time (a DNS answer that changes cannot slip in)."""
    outer, inner, inner_hits = servers
    with httpx.Client(transport=netguard.safe_transport(), follow_redirects=True) as client:
        with pytest.raises(UnsafeURL):
            client.get(inner + "/feed.csv")
        with pytest.raises(UnsafeURL):
            client.get(outer + "/moved.csv")
    monkeypatch.setenv("FORECOURT_ALLOW_PRIVATE_HOSTS", "[]")
    reset_settings()
    try:
        with httpx.Client(transport=netguard.safe_transport()) as client:
            for url in (outer + "/feed.csv", outer.replace("127.0.0.1", "localhost")):
                with pytest.raises(UnsafeURL):
                    client.get(url)
    finally:
        monkeypatch.undo()
        reset_settings()
    assert inner_hits == {}
