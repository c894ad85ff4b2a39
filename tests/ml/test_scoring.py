"""Hardness measures and the priority blend, checked against hand-computed values and edge cases."""

from __future__ import annotations

import numpy as np
import pytest

from ml import scoring
from ml.scoring import StrategyConfig, hardness_for_item, rank_matrix

NAN = np.nan
H_09 = -(0.9 * np.log2(0.9) + 0.1 * np.log2(0.1))  # 0.468996 bits


def test_binary_entropy_matches_hand_values_and_is_finite_at_0_and_1():
    values = scoring.binary_entropy(np.array([0.0, 1.0, 0.5, 0.25]))
    np.testing.assert_allclose(values, [0.0, 0.0, 1.0, 0.811278], atol=1e-6)


def test_multiclass_entropy_of_mean_prediction():
    probs = np.array([[[0.5, 0.4, 0.1], [0.1, 0.8, 0.1]]])
    mean = scoring.mean_probs(probs)
    np.testing.assert_allclose(mean, [[0.3, 0.6, 0.1]])
    np.testing.assert_allclose(scoring.entropy(mean), [1.295462], atol=1e-6)
    np.testing.assert_allclose(scoring.margin(mean), [0.3])
    np.testing.assert_allclose(scoring.least_confidence(mean), [0.4])


def test_weighted_mean_ignores_missing_models():
    probs = scoring.binary_to_probs(np.array([[0.8, 0.4, NAN]]))
    mean = scoring.mean_probs(probs, np.array([3.0, 1.0, 5.0]))
    np.testing.assert_allclose(mean[:, 1], [0.7])


def test_all_missing_row_gives_nan_mean_and_zero_disagreement():
    probs = scoring.binary_to_probs(np.array([[NAN, NAN], [0.2, 0.4]]))
    assert np.isnan(scoring.mean_probs(probs)[0]).all()
    assert scoring.mutual_information(probs)[0] == 0.0
    assert scoring.variation_ratio(probs, threshold=0.5)[0] == 0.0


def test_bald_is_one_bit_minus_member_entropy_for_opposed_models():
    probs = scoring.binary_to_probs(np.array([[0.9, 0.1]]))
    np.testing.assert_allclose(scoring.mutual_information(probs), [1.0 - H_09], atol=1e-9)


def test_bald_is_zero_when_models_agree_or_one_model_scored():
    probs = scoring.binary_to_probs(np.array([[0.7, 0.7], [0.3, NAN], [0.0, 0.0], [1.0, 1.0]]))
    np.testing.assert_allclose(scoring.mutual_information(probs), [0, 0, 0, 0], atol=1e-12)


def test_vote_entropy_and_variation_ratio_count_hard_votes_at_the_threshold():
    probs = scoring.binary_to_probs(np.array([[0.9, 0.8, 0.1], [0.9, 0.8, 0.7]]))
    np.testing.assert_allclose(scoring.vote_entropy(probs, threshold=0.5), [0.918296, 0.0], atol=1e-6)
    np.testing.assert_allclose(scoring.variation_ratio(probs, threshold=0.5), [1 / 3, 0.0])
    # a production threshold of 0.75 turns the 0.7 vote negative
    np.testing.assert_allclose(scoring.variation_ratio(probs, threshold=0.75), [1 / 3, 1 / 3])


def test_vote_entropy_respects_model_weights():
    probs = scoring.binary_to_probs(np.array([[0.9, 0.1]]))
    share = scoring.vote_entropy(probs, np.array([3.0, 1.0]), threshold=0.5)
    np.testing.assert_allclose(share, [scoring.binary_entropy(np.array(0.25))])


def test_score_std_of_two_opposed_models_and_single_model():
    std = scoring.score_std(np.array([[0.9, 0.1], [0.6, NAN], [NAN, NAN]]))
    assert std[0] == pytest.approx(0.4)
    assert std[1] == 0.0
    assert np.isnan(std[2])


def test_threshold_distance_uses_the_production_threshold():
    assert scoring.threshold_distance(np.array([0.41]), 0.45)[0] == pytest.approx(0.04)


def test_box_disagreement_counts_unmatched_boxes():
    boxes = {
        "yolo": [[0, 0, 10, 10, "cone", 0.9]],
        "detr": [[1, 1, 10, 10, "cone", 0.8], [50, 50, 60, 60, "cone", 0.7]],
    }
    result = scoring.box_disagreement(boxes)
    assert result.unmatched == 1 and result.total == 3
    assert result.score == pytest.approx(1 / 3)


def test_box_disagreement_needs_same_class_and_enough_overlap():
    a = [[0, 0, 10, 10, "cone"]]
    assert scoring.box_disagreement({"a": a, "b": [[0, 0, 10, 10, "drum"]]}).score == 1.0
    assert scoring.box_disagreement({"a": a, "b": [[5, 5, 15, 15, "cone"]]}).score == 1.0
    assert scoring.box_disagreement({"a": a, "b": a}).score == 0.0
    assert scoring.box_disagreement({"a": a}).score == 0.0
    assert scoring.box_disagreement({"a": a, "b": []}).score == 1.0


def test_box_disagreement_matches_adjacent_cones_maximally_where_greedy_matching_would_not():
    # greedy takes the best pair (a1, b2: IoU 0.82) and strands a2 and b1; the maximum matching pairs
    # a1-b1 (0.57) and a2-b2 (0.54), so the two detectors agree on both cones
    a = [[4, 0, 14, 10, "cone"], [8, 0, 18, 10, "cone"]]
    b = [[0, 0, 12, 10, "cone"], [5, 0, 15, 10, "cone"]]
    result = scoring.box_disagreement({"a": a, "b": b}, iou_threshold=0.5)
    assert (result.unmatched, result.total, result.score) == (0, 4, 0.0)


@pytest.mark.parametrize("threshold", [0.0, -0.5, 1.5, float("nan")])
def test_box_disagreement_rejects_an_iou_threshold_outside_zero_to_one(threshold):
    with pytest.raises(ValueError, match="^iou_threshold"):
        scoring.box_disagreement({"a": [[0, 0, 1, 1, "cone"]], "b": []}, iou_threshold=threshold)


def test_item_api_reports_disagreement_reason_with_model_names():
    item = hardness_for_item(
        {"yolo": 0.93, "vlm": 0.08, "clf": None}, threshold=0.45, strategy=StrategyConfig("hybrid")
    )
    assert "models disagree: yolo 0.93 vs vlm 0.08" in item.reasons
    assert item.n_models == 2
    assert item.mean_score == pytest.approx(0.505)
    assert item.disagreement > 0.5


def test_near_threshold_and_single_model_reasons():
    item = hardness_for_item({"yolo": 0.41, "vlm": None}, threshold=0.45, strategy=StrategyConfig())
    assert item.reasons == ["only one model scored it (yolo 0.41)", "near threshold 0.41 (t=0.45)"]
    assert item.disagreement == 0.0 and item.score_std == 0.0


def test_item_scored_by_no_model_has_finite_zero_priority():
    item = hardness_for_item({"yolo": None, "vlm": None}, threshold=0.5, strategy=StrategyConfig())
    assert item.priority == 0.0
    assert item.reasons == ["no model scored it"]


def test_uncertainty_ranks_the_borderline_item_first_and_disagreement_the_split_one():
    P = np.array([[0.5, 0.5], [0.9, 0.1], [0.99, 0.98]])
    uncertain = rank_matrix(P, ["a", "b"], threshold=0.5, strategy=StrategyConfig("uncertainty"))
    disagree = rank_matrix(P, ["a", "b"], threshold=0.5, strategy=StrategyConfig("disagreement"))
    assert uncertain.priority.argmax() == 0
    assert disagree.priority.argmax() == 1
    assert uncertain.priority[2] < 0.2 and disagree.priority[2] < 0.1


def test_custom_blend_weights_reorder_items():
    P = np.array([[0.5, 0.5], [0.9, 0.1]])
    only_std = rank_matrix(P, ["a", "b"], threshold=0.5, strategy=StrategyConfig("hybrid", {"std": 1.0}))
    np.testing.assert_allclose(only_std.priority, [0.0, 0.8])


def test_model_weights_shift_the_mean_score():
    h = rank_matrix(
        np.array([[0.8, 0.4]]), ["yolo", "vlm"], threshold=0.5, strategy=StrategyConfig(), weights={"yolo": 3}
    )
    assert h.mean_score[0] == pytest.approx(0.7)


def test_random_priority_is_stable_per_item_and_changes_with_seed():
    P = np.full((1000, 2), 0.5)
    keys = np.arange(1000) * 7
    first = rank_matrix(
        P, ["a", "b"], threshold=0.5, strategy=StrategyConfig("random", seed=1), item_keys=keys
    )
    again = rank_matrix(
        P, ["a", "b"], threshold=0.5, strategy=StrategyConfig("random", seed=1), item_keys=keys
    )
    other = rank_matrix(
        P, ["a", "b"], threshold=0.5, strategy=StrategyConfig("random", seed=2), item_keys=keys
    )
    np.testing.assert_array_equal(first.priority, again.priority)
    assert not np.allclose(first.priority, other.priority)
    assert first.priority.min() >= 0.0 and first.priority.max() < 1.0
    assert abs(first.priority.mean() - 0.5) < 0.05


def test_item_api_matches_the_matrix_api():
    scores = {"yolo": 0.7, "vlm": 0.2, "clf": 0.55}
    item = hardness_for_item(scores, threshold=0.45, strategy=StrategyConfig())
    row = rank_matrix(np.array([[0.7, 0.2, 0.55]]), list(scores), threshold=0.45, strategy=StrategyConfig())
    assert item.priority == pytest.approx(row.priority[0])
    assert item.entropy == pytest.approx(row.entropy[0])


def test_multiclass_item_names_the_close_classes():
    item = hardness_for_item(
        {"a": [0.45, 0.4, 0.15], "b": [0.45, 0.4, 0.15]},
        threshold=0.5,
        strategy=StrategyConfig("uncertainty"),
        class_names=["cone", "drum", "sign"],
    )
    assert item.margin == pytest.approx(0.05)
    assert "top classes close: cone 0.45 vs drum 0.40" in item.reasons


def test_boxes_raise_priority_of_detection_item():
    agree = {"yolo": [[0, 0, 10, 10, "cone", 0.9]], "detr": [[0, 0, 10, 10, "cone", 0.8]]}
    split = {"yolo": [[0, 0, 10, 10, "cone", 0.9]], "detr": []}
    scores = {"yolo": 0.9, "detr": 0.9}
    calm = hardness_for_item(scores, threshold=0.5, strategy=StrategyConfig("disagreement"), boxes=agree)
    hard = hardness_for_item(scores, threshold=0.5, strategy=StrategyConfig("disagreement"), boxes=split)
    assert hard.priority > calm.priority
    assert hard.box_disagreement == 1.0
    assert "boxes disagree (100% unmatched)" in hard.reasons


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "greedy"}, "name"),
        ({"weights": {"vibes": 1.0}}, "weights"),
        ({"weights": {"std": -1}}, "weights"),
    ],
)
def test_strategy_config_rejects_bad_values(kwargs, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        StrategyConfig(**kwargs)


def test_rank_matrix_rejects_a_threshold_outside_0_1():
    with pytest.raises(ValueError, match="^threshold:"):
        rank_matrix(np.array([[0.5]]), ["a"], threshold=1.0, strategy=StrategyConfig())


def test_a_large_matrix_with_missing_scores_ranks_to_finite_priorities():
    """Vectorised over many items with 10% of the scores missing (speed is measured in bench/queue.py)."""
    rng = np.random.default_rng(0)
    P = rng.random((200_000, 3))
    P[rng.random(P.shape) < 0.1] = NAN
    h = rank_matrix(P, ["yolo", "vlm", "clf"], threshold=0.45, strategy=StrategyConfig())
    assert h.priority.shape == (200_000,)
    assert np.isfinite(h.priority).all()


def test_reasons_from_stored_measures_say_what_ranking_the_item_again_says() -> None:
    """The label page builds a binary item's reasons from the measures its ranking stored and each model's
    score, instead of ranking the item again: over random items (one to four models, some silent, boxes or
    none, every strategy, thresholds across the range) both give the same reasons."""
    rng = np.random.default_rng(7)
    for case in range(300):
        names = [f"m{j}" for j in range(rng.integers(1, 5))]
        values = [
            None if rng.random() < 0.2 else float(rng.choice([rng.random(), 0.5, 0.0, 1.0])) for _ in names
        ]
        if all(v is None for v in values):
            continue
        threshold = float(rng.uniform(0.05, 0.95))
        strategy = StrategyConfig(name=scoring.STRATEGIES[case % len(scoring.STRATEGIES)])
        boxes = np.array([rng.choice([0.0, float(rng.random())])])
        matrix = np.array([[np.nan if v is None else v for v in values]])
        ranked = rank_matrix(matrix, names, threshold=threshold, strategy=strategy, box_disagreement=boxes)
        measures = {name: float(getattr(ranked, name)[0]) for name in scoring.REASON_MEASURES}
        scores = dict(zip(names, values, strict=True))
        assert scoring.reasons_from_measures(
            measures, scores, threshold=threshold, strategy=strategy
        ) == ranked.reasons_for(0), (scores, threshold, strategy.name)
