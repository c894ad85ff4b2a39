"""Hardcase web server: FastAPI app, domains packaged by feature. Never imports torch."""
