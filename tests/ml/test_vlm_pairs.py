"""Preference pairs and SFT conversations built from a dataset version, and their JSONL round trip into trl."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml.dataset import DatasetInfo, DatasetRecord, DatasetVersionDir, StoredPrediction, write_dataset_dir
from ml.sample_data import sample_data_dir
from ml.training.vlm.conversations import build_sft_examples, human_answer, parse_yes_no, rationale
from ml.training.vlm.pairs import build_preference_pairs, write_pairs_jsonl

TRACON = sample_data_dir() / "roadwork" / "tracon" / "images"
CONE_PHOTO = TRACON / "test__2_PA-54076813.jpg"
EMPTY_PHOTO = TRACON / "test__ok12.png"
CONE_BOXES = [[0.1, 0.5, 0.2, 0.7, 0], [0.3, 0.5, 0.4, 0.7, 0], [0.6, 0.4, 0.9, 0.6, 1]]


def _record(item_id: int, label: int | None, predictions: list[StoredPrediction], split: str = "train"):
    return DatasetRecord(
        item_id=item_id,
        external_id=f"item-{item_id}",
        image=str(CONE_PHOTO if label else EMPTY_PHOTO),
        label=label,
        split=split,
        boxes=CONE_BOXES if label else [],
        predictions=predictions,
    )


def _dataset(tmp_path: Path, records: list[DatasetRecord]) -> DatasetVersionDir:
    info = DatasetInfo(project="roadwork", version=1, box_classes=["traffic_cone", "barrier"])
    return write_dataset_dir(tmp_path / "dataset", info, records)


def _vlm(label: str | None, score: float | None) -> StoredPrediction:
    return StoredPrediction(model="qwen-vl", score=score, label=label)


def _pairs(
    dataset: DatasetVersionDir, margin: float = 0.1, vlm_model: str | None = "qwen-vl"
) -> dict[int, dict]:
    pairs = build_preference_pairs(dataset, vlm_model=vlm_model, low_confidence_margin=margin)
    return {p["item_id"]: p for p in pairs}


def _text(turn: list[dict]) -> str:
    return turn[0]["content"][0]["text"]


def test_disagreeing_vlm_answer_is_the_rejected_side_and_the_human_answer_the_chosen(tmp_path):
    dataset = _dataset(tmp_path, [_record(1, 1, [_vlm("No, the road is clear.", 0.2)])])
    pairs = build_preference_pairs(
        dataset, vlm_model="qwen-vl", low_confidence_margin=0.1, with_rationale=True
    )
    assert len(pairs) == 1
    pair = pairs[0]
    assert _text(pair["chosen"]) == "yes — 2 traffic cones, 1 barrier"
    assert _text(pair["rejected"]) == "No, the road is clear."
    assert pair["reason"] == "disagreement"
    assert pair["prompt"][0]["content"][0] == {"type": "image"}
    assert pair["prompt"][0]["content"][1]["text"] == dataset.info.question
    assert pair["images"] == [str(CONE_PHOTO.resolve())]


def test_confident_agreement_makes_no_pair(tmp_path):
    dataset = _dataset(tmp_path, [_record(1, 1, [_vlm("yes", 0.95)]), _record(2, 0, [_vlm("no", 0.03)])])
    assert _pairs(dataset) == {}


def test_low_confidence_agreement_pairs_the_human_answer_against_the_opposite_one(tmp_path):
    dataset = _dataset(tmp_path, [_record(1, 0, [_vlm("no", 0.45)])])
    pair = _pairs(dataset, margin=0.1)[1]
    assert (_text(pair["chosen"]), _text(pair["rejected"]), pair["reason"]) == ("no", "yes", "low_confidence")
    assert _pairs(dataset, margin=0.02) == {}


def test_item_the_vlm_was_not_asked_pairs_with_the_opposite_answer(tmp_path):
    yolo_only = [StoredPrediction(model="yolo", score=0.99, label="positive")]
    dataset = _dataset(tmp_path, [_record(1, 1, yolo_only), _record(2, 0, [])])
    pairs = _pairs(dataset)
    assert {i: (_text(p["chosen"]), _text(p["rejected"]), p["reason"]) for i, p in pairs.items()} == {
        1: ("yes", "no", "not_asked"),
        2: ("no", "yes", "not_asked"),
    }


def test_without_a_vlm_model_every_labeled_train_item_pairs_with_the_opposite_answer(tmp_path):
    records = [
        _record(1, 1, [_vlm("yes", 0.99)]),
        _record(2, 0, [_vlm("no", 0.01)]),
        _record(3, None, [_vlm("yes", 0.9)]),
        _record(4, 1, [_vlm("yes", 0.9)], split="holdout"),
    ]
    pairs = _pairs(_dataset(tmp_path, records), vlm_model=None)
    assert sorted(pairs) == [1, 2]
    assert {_text(p["rejected"]) for p in pairs.values()} == {"yes", "no"}


def test_class_name_labels_of_the_cascade_count_as_the_vlm_answer(roadwork_dataset_dir):
    margin = 0.1
    expected = set()
    for record in roadwork_dataset_dir.records("train"):
        vlm = next(p for p in record.predictions if p.model == "vlm")
        says_yes = vlm.label == "positive"
        if says_yes != (record.label == 1) or abs(vlm.score - 0.5) < margin:
            expected.add(record.item_id)
    pairs = _pairs(roadwork_dataset_dir, margin=margin, vlm_model="vlm")
    assert set(pairs) == expected
    assert {_text(p["rejected"]) for p in pairs.values()} <= {"yes", "no"}
    assert any(p["reason"] == "disagreement" for p in pairs.values())
    for pair in pairs.values():
        assert parse_yes_no(_text(pair["chosen"])) is not parse_yes_no(_text(pair["rejected"]))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("yes", True),
        ("Yes, there are three cones.", True),
        ("  no.", False),
        ("NO roadwork", False),
        ("There is no roadwork here.", False),
        ("I can see cones, so yes", True),
        ("maybe", None),
        ("maybe yes, maybe no", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_yes_no_reads_the_committed_answer(text, expected):
    assert parse_yes_no(text) is expected


def test_rationale_counts_the_human_boxes_per_class(tmp_path):
    dataset = _dataset(tmp_path, [_record(1, 1, []), _record(2, 0, [])])
    positive, negative = dataset.records()
    assert rationale(positive, dataset.info) == "2 traffic cones, 1 barrier"
    assert human_answer(positive, dataset.info, with_rationale=False) == "yes"
    assert human_answer(negative, dataset.info, with_rationale=True) == "no"


def test_sft_examples_answer_every_labeled_train_item_with_its_label(roadwork_dataset_dir):
    rows = build_sft_examples(roadwork_dataset_dir, with_rationale=True)
    train = {r.item_id: r for r in roadwork_dataset_dir.records("train") if r.label is not None}
    assert {row["item_id"] for row in rows} == set(train)
    for row in rows:
        answer = row["completion"][0]["content"][0]["text"]
        assert parse_yes_no(answer) is (train[row["item_id"]].label == 1)
        assert Path(row["images"][0]).exists()


def test_multiclass_projects_are_refused(tmp_path):
    info = DatasetInfo(project="p", version=1, kind="multiclass", classes=["a", "b", "c"])
    dataset = write_dataset_dir(tmp_path / "d", info, [_record(1, 1, [])])
    with pytest.raises(ValueError, match="dataset.kind"):
        build_preference_pairs(dataset, vlm_model=None, low_confidence_margin=0.1)


def test_pairs_jsonl_loads_with_datasets_and_collates_into_dpo_batches(roadwork_dataset_dir, tmp_path):
    from datasets import Image, List, load_dataset
    from transformers import AutoProcessor
    from trl.trainer.dpo_trainer import DataCollatorForVisionPreference

    from ml.training.vlm.tiny import build_tiny_qwen2_vl

    pairs = build_preference_pairs(roadwork_dataset_dir, vlm_model="vlm", low_confidence_margin=0.1)
    path = write_pairs_jsonl(pairs, tmp_path / "pairs.jsonl")
    loaded = load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache"))
    assert {"prompt", "chosen", "rejected", "images"} <= set(loaded.column_names)
    assert len(loaded) == len(pairs)
    loaded = loaded.cast_column("images", List(Image(mode="RGB")))

    processor = AutoProcessor.from_pretrained(build_tiny_qwen2_vl(tmp_path / "tiny"))
    batch = DataCollatorForVisionPreference(processor)([loaded[0], loaded[1]])
    assert batch["input_ids"].shape[0] == 4  # chosen and rejected of two pairs
    assert batch["image_grid_thw"].shape[0] == 4
    assert int(batch["completion_mask"].sum()) > 0
