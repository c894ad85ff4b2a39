"""Dataset versions: immutable, hashed snapshots of consensus labels with a fixed per-project holdout."""
