"""Self-supervised pretraining of a backbone on the project's image pool (lightly's SimCLR / BYOL heads, losses
and augmentations): `config` is torch-free, `ssl` holds the method and its loop, `trainer` runs the job."""
