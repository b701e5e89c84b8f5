"""Feed ingestion: streaming readers, column mappings and the feed loop."""
