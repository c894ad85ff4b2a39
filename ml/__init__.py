"""Hardcase ML: scoring, training and evaluation. Never imports `app`; heavy libraries are imported lazily."""
