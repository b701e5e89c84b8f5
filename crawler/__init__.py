"""forecourt core: configuration, models, data access, Scrapy plumbing and the CLI."""
