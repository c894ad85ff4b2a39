"""Drift monitoring: per model, recent score/embedding windows against a reference window."""
