"""Per-platform dealer website spiders, plus the generic structured-data spider.

`SPIDERS` maps a dealership's platform to the spider that crawls it; a dealer with no known
platform gets the generic spider.
"""
