"""The web app and HTTP API (FastAPI): an adapter over the domain packages, never imported by them."""
