"""Retraining policies and the loop runs they start: freeze, train, evaluate, decide, promote."""
