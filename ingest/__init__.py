"""Feed ingestion: streaming readers, column mappings, the feed loop and the feed job."""
