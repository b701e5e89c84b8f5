"""Politeness is on for every crawl: robots.txt, AutoThrottle, a per-domain limit."""

from __future__ import annotations

import os
import subprocess
import sys


def test_every_crawl_obeys_robots_and_throttles():
    code = ("from scrapy.utils.project import get_project_settings as g; s = g();"
            "print(s.getbool('ROBOTSTXT_OBEY'), s.getbool('AUTOTHROTTLE_ENABLED'),"
            " s.getint('CONCURRENT_REQUESTS_PER_DOMAIN'),"
            " 'pipelines.scrapy_stages.StorePipeline' in s.getdict('ITEM_PIPELINES'))")
    env = {**os.environ, "SCRAPY_SETTINGS_MODULE": "crawler.settings"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["True", "True", "4", "True"]


def test_per_domain_limit_comes_from_configuration():
    code = ("from scrapy.utils.project import get_project_settings as g;"
            "print(g().getint('CONCURRENT_REQUESTS_PER_DOMAIN'))")
    env = {**os.environ, "SCRAPY_SETTINGS_MODULE": "crawler.settings",
           "FORECOURT_CONCURRENT_REQUESTS_PER_DOMAIN": "2"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == "2"
