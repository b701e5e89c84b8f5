"""Pipeline stages: plain functions over batches, shared by crawls and feeds.

normalize -> validate -> vin -> dedup -> quality -> store. `pipelines.run` strings them
together for one run; `pipelines.scrapy` wraps each as a Scrapy item pipeline.
"""
