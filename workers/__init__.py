"""Celery workers: the DB is the truth, Celery only carries work."""
