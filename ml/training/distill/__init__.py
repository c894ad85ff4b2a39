"""Distil the cascade's stored predictions into a small student classifier (`config` is torch-free)."""
