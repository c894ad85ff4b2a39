"""Training jobs: the DB row is the truth; Celery only carries the work to a GPU worker."""
