"""How a training run talks to whoever runs it (a Celery worker writing to the DB, or a test)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


class JobCancelled(Exception):
    """Raised inside a training loop when the reporter says the job was cancelled."""


class Reporter(Protocol):
    def progress(self, step: int, total: int) -> None: ...

    def metrics(self, step: int, values: dict[str, float]) -> None: ...

    def log(self, message: str) -> None: ...

    def cancelled(self) -> bool: ...


@dataclass
class MemoryReporter:
    """Keeps everything in memory; for tests, notebooks and the CLI."""

    steps: list[tuple[int, int]] = field(default_factory=list)
    history: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    cancel_after_step: int | None = None

    def progress(self, step: int, total: int) -> None:
        self.steps.append((step, total))

    def metrics(self, step: int, values: dict[str, float]) -> None:
        self.history.append((step, dict(values)))

    def log(self, message: str) -> None:
        self.lines.append(message)

    def cancelled(self) -> bool:
        return (
            self.cancel_after_step is not None
            and bool(self.steps)
            and self.steps[-1][0] >= self.cancel_after_step
        )


def check_cancelled(reporter: Reporter) -> None:
    if reporter.cancelled():
        raise JobCancelled()


@dataclass
class TrainingResult:
    """What every job kind returns. `holdout_scores` lets the registry compute every metric the same way."""

    artifact_dir: Path
    threshold: float
    metrics: dict[str, float]
    holdout_scores: dict[int, float]  # item_id -> P(positive) on the project's holdout
    files: dict[str, str] = field(default_factory=dict)  # role -> path relative to artifact_dir
    method: str = ""  # how it was trained ('lora', 'full', ...): part of the registry version's name
    # multiclass (K > 2) only: item_id -> class probabilities; holdout_scores then hold the top-1 probability
    # and `threshold` is unused (the argmax decides)
    holdout_probs: dict[int, list[float]] = field(default_factory=dict)
