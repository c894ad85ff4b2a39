"""Signed webhooks: per-project endpoints told when a model is promoted or rolled back, a job ends, drift alarms."""
