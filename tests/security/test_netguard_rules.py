"""The outbound address rules (pure logic: no network beyond the local resolver)."""

from __future__ import annotations

import pytest

from crawler import netguard
from crawler.errors import UnsafeURL
from crawler.urls import check_http_url

NOTHING = netguard.parse_allow_list([])
TESTS = netguard.parse_allow_list(["127.0.0.1", "localhost"])


@pytest.mark.parametrize("address, why", [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"),
    ("fd12:3456::1", "private"), ("169.254.10.10", "link-local"), ("fe80::1", "link-local"),
    ("100.64.0.1", "carrier-grade NAT"), ("100.127.255.254", "carrier-grade NAT"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"), ("0.0.0.0", "unspecified"),
    ("::", "unspecified"), ("240.0.0.1", "reserved"), ("255.255.255.255", "reserved"),
    ("169.254.169.254", "metadata"), ("fd00:ec2::254", "metadata"),
    ("100.100.100.200", "metadata"), ("168.63.129.16", "metadata"),
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:169.254.169.254", "metadata"),
    ("2002:a00:1::", "private"),  # 6to4 around 10.0.0.1
    ("64:ff9b::a9fe:a9fe", "metadata"),  # NAT64 around 169.254.169.254
    ("198.18.0.1", "private"), ("192.0.2.1", "private"), ("2001:db8::1", "private"),
])
def test_non_public_addresses_are_refused_by_default(address, why):
    problem = netguard.address_problem(address)
    assert problem is not None and why in problem
    with pytest.raises(UnsafeURL):
        netguard.check_address("dealer.example", address, NOTHING)


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700::6810:84e5",
                                     "151.101.1.69", "100.128.0.1", "172.32.0.1"])
def test_public_addresses_pass(address):
    assert netguard.address_problem(address) is None
    netguard.check_address("dealer.example", address, NOTHING)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/", "http://2130706433/", "http://0x7f000001/", "http://017700000001/",
    "http://127.1/", "http://[::1]:8080/", "http://[::ffff:7f00:1]/", "http://0.0.0.0/",
    "http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/",
    "http://metadata.google.internal/computeMetadata/v1/", "http://METADATA.google.internal./",
    "http://10.0.0.1:5432/", "http://user:pw@192.168.0.10/",
])
def test_literal_and_metadata_urls_are_refused_without_dns(url):
    with pytest.raises(UnsafeURL) as info:
        netguard.check_static(url, NOTHING)
    assert "refused" in str(info.value)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://127.0.0.1:6379/_FLUSHALL",
                                 "ftp://dealer.example/feed.csv", "http:///nohost",
                                 "dict://127.0.0.1:11211/"])
def test_only_http_and_https_may_be_fetched(url):
    with pytest.raises(UnsafeURL):
        netguard.check_static(url, TESTS)


def test_names_resolving_to_loopback_are_refused_after_dns():
    with pytest.raises(UnsafeURL) as info:
        netguard.check_url("http://localhost:8000/inventory", NOTHING)
    assert "loopback" in str(info.value)
    assert netguard.check_host("localhost", 80, TESTS) == ["127.0.0.1"] or \
        "127.0.0.1" in netguard.check_host("localhost", 80, TESTS)


def test_allow_list_names_hosts_and_networks():
    allow = netguard.parse_allow_list(["localhost", "10.20.0.0/16", "*.corp.internal", "::1"])
    netguard.check_address("localhost", "127.0.0.1", allow)  # by name
    netguard.check_address("x", "10.20.3.4", allow)  # by network
    netguard.check_address("feeds.corp.internal", "10.99.0.1", allow)  # by name suffix
    netguard.check_address("x", "::1", allow)
    with pytest.raises(UnsafeURL):
        netguard.check_address("x", "10.21.0.1", allow)
    with pytest.raises(UnsafeURL):
        netguard.check_address("corp.internal.evil", "10.99.0.1", allow)


def test_metadata_needs_an_exact_allow_entry_not_a_broad_network():
    broad = netguard.parse_allow_list(["169.254.0.0/16", "0.0.0.0/0", "fd00::/8"])
    netguard.check_address("x", "169.254.1.1", broad)
    for address in ("169.254.169.254", "fd00:ec2::254"):
        with pytest.raises(UnsafeURL) as info:
            netguard.check_address("x", address, broad)
        assert "metadata" in str(info.value)
    netguard.check_address("x", "169.254.169.254",
                           netguard.parse_allow_list(["169.254.169.254"]))


def test_configured_allow_list_comes_from_settings(monkeypatch):
    from crawler.config import reset_settings

    monkeypatch.setenv("FORECOURT_ALLOW_PRIVATE_HOSTS", '["192.168.7.0/24"]')
    reset_settings()
    try:
        netguard.check_address("x", "192.168.7.9")
        with pytest.raises(UnsafeURL):
            netguard.check_address("x", "127.0.0.1")
    finally:
        monkeypatch.undo()
        reset_settings()
    netguard.check_address("x", "127.0.0.1")  # the test session allows it


def test_dealer_urls_are_checked_when_added(monkeypatch):
    from crawler.config import reset_settings

    assert check_http_url("http://127.0.0.1:8000/") == "http://127.0.0.1:8000/"
    monkeypatch.setenv("FORECOURT_ALLOW_PRIVATE_HOSTS", "[]")
    reset_settings()
    try:
        for url in ("http://127.0.0.1:8000/", "http://localhost/", "http://[::1]/",
                    "http://169.254.169.254/"):
            with pytest.raises(UnsafeURL):
                check_http_url(url)
        # a name that does not resolve is accepted: every fetch checks again
        assert check_http_url("https://dealer.invalid/") == "https://dealer.invalid/"
    finally:
        monkeypatch.undo()
        reset_settings()


def test_dealers_add_refuses_private_website_and_feed_urls(db):
    import os
    import subprocess
    import sys
    from pathlib import Path

    forecourt = str(Path(sys.executable).parent / "forecourt")
    env = dict(os.environ, FORECOURT_ALLOW_PRIVATE_HOSTS="[]")
    for args in (["--url", "http://169.254.169.254/latest/"],
                 ["--url", "https://dealer.example/", "--feed", "http://127.0.0.1:6379/feed"]):
        out = subprocess.run([forecourt, "dealers", "add", "evil", "--name", "Evil", *args],
                             capture_output=True, text=True, env=env, timeout=60)
        assert out.returncode != 0
        assert "refused" in out.stdout + out.stderr
        assert "Traceback" not in out.stdout + out.stderr
    assert db.execute("SELECT count(*) AS n FROM dealerships").fetchone()["n"] == 0
