"""The full Gal 2017 protocol runner (resumable), the label-efficiency table, cold-start acquisitions, SimCLR
features and active learning on them: all on tiny configurations that run in seconds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ml.simulate.acquisition import ACQUISITIONS, PoolView
from ml.simulate.coldstart import ball_graph, covered_by, probcover, purity_radius, typiclust
from ml.simulate.efficiency import Trace, efficiency_rows
from ml.simulate.protocol import ProtocolConfig, load_state, load_traces, run_protocol


def _tiny(out, variant: str) -> ProtocolConfig:
    return ProtocolConfig(
        out=out,
        variant=variant,
        strategies=["bald", "random"],
        seeds=1,
        max_labels=40,
        pool_subset=60,
        mc_samples=3,
        validation_size=20,
        test_size=200,
        train_size=600,
        epochs=1,
        min_steps=4,  # `continue` trains at least 40 steps a round (120 the first): most of these tests' time
    )


@pytest.mark.parametrize("variant", ["paper", "continue"])
def test_an_interrupted_protocol_run_resumes_to_the_same_result(tmp_path, variant):
    """Stopping after 3 rounds and rerunning gives the same labels, errors and acquisitions as one uninterrupted
    run: the per-round state on disk (and, for `continue`, the model and optimiser) is complete."""
    straight = _tiny(tmp_path / "straight", variant)
    run_protocol(straight, log=lambda _: None)
    interrupted = _tiny(tmp_path / "interrupted", variant)
    run_protocol(interrupted, log=lambda _: None, max_rounds=3)
    partial = load_traces(interrupted)
    assert sum(len(t.labels) for t in partial) == 3 and not all(t.finished for t in partial)
    run_protocol(_tiny(tmp_path / "interrupted", variant), log=lambda _: None)
    for a, b in zip(load_traces(straight), load_traces(interrupted), strict=True):
        assert a.finished and b.finished and a.labels == b.labels == [20, 30, 40]
        assert a.test_error == b.test_error and a.val_error == b.val_error
        assert (
            load_state(straight, a.strategy, a.seed)["labeled"]
            == load_state(interrupted, b.strategy, b.seed)["labeled"]
        )
    bald, random = load_traces(straight)
    assert bald.test_error[0] == random.test_error[0]  # same seed set and init: only the acquisition differs
    assert not list((tmp_path / "straight").rglob("*.pt"))  # finished runs keep no checkpoint
    document = json.loads((tmp_path / "straight" / "curves.json").read_text())
    assert document["efficiency"]["rows"][0]["paper (10% / 5%)"] == "145 / 335"
    assert document["strategies"]["bald"]["labels"] == [20, 30, 40]


def test_a_continued_training_run_without_its_model_file_starts_over_to_the_same_result(tmp_path):
    """The repository keeps round states but not models: such a `continue` run is redone from its first round
    and ends where an uninterrupted run does, instead of failing on the missing file."""
    straight = _tiny(tmp_path / "straight", "continue")
    run_protocol(straight, log=lambda _: None)
    cloned = _tiny(tmp_path / "cloned", "continue")
    run_protocol(cloned, log=lambda _: None, max_rounds=4)
    assert list((tmp_path / "cloned").rglob("*.pt"))
    for model_file in (tmp_path / "cloned").rglob("*.pt"):
        model_file.unlink()
    run_protocol(_tiny(tmp_path / "cloned", "continue"), log=lambda _: None)
    for a, b in zip(load_traces(straight), load_traces(cloned), strict=True):
        assert b.finished and b.labels == a.labels == [20, 30, 40] and b.test_error == a.test_error


def test_labels_to_target_are_per_seed_with_mean_std_and_say_what_did_not_reach():
    """Mean ± std over the seeds that reached a target; a finished seed that never did is '> budget', a running
    one 'not yet'; the paper's row sits beside ours."""
    traces = [
        Trace("bald", 0, [20, 30, 40], [0.2, 0.09, 0.04], finished=True),
        Trace("bald", 1, [20, 30, 40], [0.2, 0.08, 0.06], finished=True),
        Trace("random", 0, [20, 30], [0.3, 0.2], finished=False),
        Trace("random", 1, [20, 30, 40], [0.3, 0.2, 0.15], finished=True),
    ]
    rows = {r["strategy"]: r for r in efficiency_rows(traces, 40)}
    assert rows["bald"]["labels to 10% error"] == "30 ± 0"
    assert rows["bald"]["labels to 5% error"] == "40 ± 0 (1/2 seeds); > 40 (1 seeds)"
    assert rows["random"]["labels to 10% error"] == "> 40 (1 seeds); not yet (1 seeds unfinished)"
    assert rows["bald"]["paper (10% / 5%)"] == "145 / 335" and rows["random"]["seeds finished"] == "1/2"


def _blobs(sizes, centers, spread=0.3, seed=0):
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(c, spread, size=(n, 2)) for n, c in zip(sizes, centers, strict=True)])
    return x.astype(np.float32), np.repeat(np.arange(len(sizes)), sizes)


CENTERS = [(0.0, 0.0), (6.0, 0.0), (0.0, 6.0)]


def test_typiclust_takes_one_typical_point_per_dense_region_not_outliers():
    """Three blobs and far outliers: the first 3 picks land one per blob, near its centre."""
    x, y = _blobs([120, 80, 60], CENTERS)
    outliers = np.array([[20.0, 20.0], [-15.0, 9.0], [9.0, -14.0]], dtype=np.float32)
    features = np.concatenate([x, outliers])
    picks = typiclust(features, 3, seed=0)
    assert sorted(y[picks].tolist()) == [0, 1, 2]
    for p in picks:
        assert np.linalg.norm(features[p] - np.array(CENTERS[y[p]])) < 0.6
    more = typiclust(features, 2, labeled=picks, seed=0)
    assert not set(more.tolist()) & set(picks.tolist())


def test_probcover_covers_every_blob_before_a_second_point_in_any():
    """With δ from the purity rule, 3 picks cover 3 separate blobs; a labeled blob is treated as covered."""
    x, y = _blobs([150, 100, 50], CENTERS)
    delta = purity_radius(x, 3, seed=0)
    assert 0.1 < delta < 6.0
    graph = ball_graph(x, delta)
    assert sorted(y[probcover(x, 3, delta=delta, graph=graph)].tolist()) == [0, 1, 2]
    # a labeled point outside the graph (the centre of blob 0) already covers blob 0's core
    covered = covered_by(x, np.array([CENTERS[0]], dtype=np.float32), delta)
    assert sorted(y[probcover(x, 2, delta=delta, graph=graph, covered=covered)].tolist()) == [1, 2]


def test_badge_prefers_large_distinct_gradients_over_confident_points():
    """Two groups of confidently-wrong candidates (large gradients, opposite directions) and confident ones
    (gradients near 0): over 20 seeds, BADGE's two picks rarely include a confident point and nearly always take
    one from each group (k-means++ samples in proportion to squared distance, so this is a frequency)."""
    rng = np.random.default_rng(0)
    grads = np.concatenate(
        [rng.normal((10, 0), 0.2, (5, 2)), rng.normal((-10, 0), 0.2, (5, 2)), rng.normal(0, 0.01, (2, 2))]
    )
    group = np.array([0] * 5 + [1] * 5 + [2] * 2)
    both = confident = 0
    for seed in range(20):
        picks = ACQUISITIONS["badge"](
            PoolView(candidates=np.arange(12), seed=seed, gradient_embeddings=grads), 2
        )
        assert group[picks[0]] != 2  # the first pick is the largest gradient
        confident += int(2 in group[picks])
        both += sorted(group[picks].tolist()) == [0, 1]
    assert both >= 14 and confident <= 5


def _toy_features(folder, n_train=800, n_test=300, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3, (10, dim))

    def draw(n):
        y = rng.integers(0, 10, n)
        return (centers[y] + rng.normal(0, 1.0, (n, dim))).astype(np.float32), y

    x_train, y_train = draw(n_train)
    x_test, y_test = draw(n_test)
    folder.mkdir(parents=True)
    np.savez(folder / "features.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


def _tiny_feature_config(tmp_path, arms: list[str], **overrides):
    """Three rounds of 10 labels on the toy features in tmp_path/feat, results in tmp_path/al."""
    from ml.simulate.features_al import FeatureALConfig

    settings = dict(seeds=1, max_labels=30, validation_size=20, coldstart_pool=400, warm_pool=200)
    return FeatureALConfig(features=tmp_path / "feat", out=tmp_path / "al", arms=arms, **settings | overrides)


def test_active_learning_on_features_runs_every_arm_and_skips_finished_ones(tmp_path):
    """On separable toy features, TypiClust's cold start labels most classes in its first round, every arm
    writes its curve and the efficiency table, and a rerun reuses the finished runs."""
    from ml.simulate.features_al import run_feature_al

    _toy_features(tmp_path / "feat")
    config = _tiny_feature_config(tmp_path, ["random", "typiclust+bald:20", "probcover+badge:20"], steps=60)
    document = run_feature_al(config, log=lambda _: None)
    runs = {r["strategy"]: r for r in document["runs"]}
    assert set(runs) == set(config.arms) and all(r["labels"] == [10, 20, 30] for r in runs.values())
    assert all(r["finished"] for r in runs.values())
    assert runs["typiclust+bald:20"]["test_error"][0] < 0.5  # one typical point per class-like cluster
    assert [r["strategy"] for r in document["efficiency"]["rows"]] == config.arms
    stamp = (tmp_path / "al" / "runs" / "random-s0.json").stat().st_mtime_ns
    run_feature_al(config, log=lambda _: None)
    assert (tmp_path / "al" / "runs" / "random-s0.json").stat().st_mtime_ns == stamp


def test_simclr_features_are_trained_once_and_cached(tmp_path):
    """A few SimCLR steps (lightly's NT-Xent) give features for train and test; a second call reads the cache."""
    from ml.simulate.ssl import SSLConfig, build_features, load_features

    config = SSLConfig(out=tmp_path / "ssl", epochs=1, batch_size=64, train_size=192, time_budget_s=60)
    lines: list[str] = []
    build_features(config, log=lines.append)
    features = load_features(tmp_path / "ssl")
    assert features["x_train"].shape == (192, 128) and features["x_test"].shape == (10_000, 128)
    assert np.isfinite(features["x_train"]).all() and features["x_train"].std() > 0
    build_features(config, log=lines.append)
    assert "cached" in lines[-1]


def test_label_propagation_spreads_few_labels_over_their_clusters_without_reading_other_labels(tmp_path):
    """With one label per toy cluster, propagation over the pool's k-NN graph classifies the unseen test set
    almost perfectly (the MLP on 10 points cannot), and the pool's other labels are never read: scrambling them
    leaves every propagated distribution unchanged."""
    from ml.simulate.features_al import load_features, with_graphs
    from ml.simulate.propagation import classify, propagate

    _toy_features(tmp_path / "feat", n_train=600, n_test=300)
    from ml.simulate.features_al import FeatureALConfig

    config = FeatureALConfig(
        features=tmp_path / "feat", out=tmp_path / "al", learner="propagation", neighbours=10
    )
    data = with_graphs(config, load_features(config), log=lambda _: None)
    labeled = np.array([np.flatnonzero(data["y"] == c)[0] for c in range(10)])
    distribution = propagate(data["affinity"], labeled, data["y"][labeled], 10)
    assert np.allclose(distribution.sum(axis=1), 1.0)
    assert (distribution[labeled].argmax(1) == data["y"][labeled]).all()
    error = np.mean(classify(data["test_graph"], distribution).argmax(1) != data["y_test"])
    assert error < 0.05
    scrambled = data["y"].copy()
    others = np.setdiff1d(np.arange(len(scrambled)), labeled)
    scrambled[others] = np.random.default_rng(0).permutation(scrambled[others])
    again = propagate(data["affinity"], labeled, scrambled[labeled], 10)
    assert np.array_equal(again, distribution)


def test_propagation_arms_run_and_refuse_rules_that_need_the_mlp(tmp_path):
    """The margin rule runs on the propagation learner end to end; BALD (MC dropout) is refused up front."""
    import pytest

    from ml.simulate.features_al import FeatureALConfig, run_feature_al

    _toy_features(tmp_path / "feat", n_train=600, n_test=300)
    with pytest.raises(ValueError, match="needs the mlp learner"):
        FeatureALConfig(
            features=tmp_path / "feat", out=tmp_path / "x", arms=["typiclust+bald:20"], learner="propagation"
        )
    config = _tiny_feature_config(
        tmp_path, ["random", "typiclust+margin:20"], learner="propagation", neighbours=10
    )
    document = run_feature_al(config, log=lambda _: None)
    runs = {r["strategy"]: r for r in document["runs"]}
    assert all(r["labels"] == [10, 20, 30] and r["finished"] for r in runs.values())
    assert runs["typiclust+margin:20"]["test_error"][-1] < 0.1
    assert "label propagation" in (tmp_path / "al" / "table.md").read_text()


def test_pca_baseline_features_are_cached_and_described_for_the_report(tmp_path):
    """`--method pca` writes the same cache layout as SimCLR (no network); report recipes name the method."""
    from ml.simulate.ssl import SSLConfig, build_features, describe_features, load_features

    build_features(SSLConfig(out=tmp_path / "pca", method="pca", pca_components=8, train_size=300), log=print)
    features = load_features(tmp_path / "pca")
    assert features["x_train"].shape == (300, 8) and features["x_test"].shape == (10_000, 8)
    assert features["x_train"].std(axis=0)[0] >= features["x_train"].std(axis=0)[-1]  # ordered components
    assert describe_features(tmp_path / "pca").startswith("PCA features (8 components")
