"""The labeling queue: hardness ranking of items and leasing the hardest one to an annotator."""
