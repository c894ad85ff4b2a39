"""Training job kinds: each is a config dataclass plus a `run(config, dataset, reporter, workdir)` function."""
