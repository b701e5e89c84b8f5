"""The HTTP API for the dealer UI: job status, triggers and inventory summaries.

`app.create_app()` builds the FastAPI application; `forecourt api` serves it with uvicorn.
Routes are thin: they authorize, call the same functions as the CLI, and translate errors to
problem+json.
"""
