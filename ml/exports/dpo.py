"""DPO preference pairs (JSONL) for the VLM: the human answer chosen, its own wrong or unsure one rejected."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ml.dataset import DatasetVersionDir

DEFAULT_LOW_CONFIDENCE_MARGIN = 0.15  # VlmDpoConfig's default, so an export matches what a job trains on


def default_vlm_model(dataset: DatasetVersionDir) -> str | None:
    """The cascade model whose name says it is a VLM (the most frequent one if several); None if none is."""
    names = Counter(
        p.model for r in dataset.iter_records() for p in r.predictions if "vlm" in p.model.lower()
    )
    return names.most_common(1)[0][0] if names else None


def export_dpo_pairs(
    dataset: DatasetVersionDir,
    out: Path,
    *,
    vlm_model: str | None = None,
    low_confidence_margin: float = DEFAULT_LOW_CONFIDENCE_MARGIN,
) -> Path:
    """`out/{train,val}.jsonl` of preference pairs built by `ml.training.vlm.pairs`.

    Without a VLM among the stored predictions, every labelled item pairs its answer with the opposite one.
    """
    from ml.training.vlm.pairs import build_preference_pairs, write_pairs_jsonl

    model = vlm_model or default_vlm_model(dataset)
    out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val"):
        pairs = build_preference_pairs(
            dataset, vlm_model=model, low_confidence_margin=low_confidence_margin, split=split
        )
        write_pairs_jsonl(pairs, out / f"{split}.jsonl")
    return out
