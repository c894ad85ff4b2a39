"""Pieces every image-classifier job shares: data, training loop, EMA, checkpoints, calibration, model card.

Only `common.config` is torch-free; the other modules import torch and are loaded by trainers only.
"""
