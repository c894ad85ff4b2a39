"""Model registry: every finished job's model, measured on the project's holdout; promote and roll back."""
