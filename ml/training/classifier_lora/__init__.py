"""Image classifier fine-tuned with LoRA (or fully, for comparison): `config` is torch-free, `trainer` runs it."""
