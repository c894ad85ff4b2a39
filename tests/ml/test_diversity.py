"""Batch diversity helpers: perceptual hashes on real photos, near-duplicate windows, k-center, positive quota."""

from __future__ import annotations

import io
from datetime import datetime, timedelta

import numpy as np
from PIL import Image

from ml import scoring
from ml.sample_data import sample_data_dir
from ml.scoring import ItemSignature

DATA = sample_data_dir()


def _photo(name: str) -> Image.Image:
    return Image.open(DATA / "roadwork" / "tracon" / "images" / name).convert("RGB")


def _tracon_names() -> list[str]:
    return sorted(p.name for p in (DATA / "roadwork" / "tracon" / "images").iterdir())[:6]


def test_hamming_distance_counts_differing_bits():
    assert scoring.hamming_distance(0b1011, 0b0001) == 2
    assert scoring.hamming_distance(2**63, 0) == 1


def test_phash_survives_resize_and_jpeg_but_separates_different_photos():
    names = _tracon_names()
    original = _photo(names[0])
    buffer = io.BytesIO()
    original.resize((original.width // 2, original.height // 2)).save(buffer, "JPEG", quality=60)
    recompressed = Image.open(io.BytesIO(buffer.getvalue()))
    h0, h1 = scoring.perceptual_hash(original), scoring.perceptual_hash(recompressed)
    assert 0 <= h0 < 2**64
    assert scoring.hamming_distance(h0, h1) <= 6
    others = [scoring.perceptual_hash(_photo(n)) for n in names[1:]]
    assert min(scoring.hamming_distance(h0, h) for h in others) > 6


def test_near_duplicate_by_hash_or_camera_time_window():
    t0 = datetime(2026, 5, 1, 12, 0, 0)
    a = ItemSignature(phash=0b1111, camera_id="cam-1", captured_at=t0)
    assert scoring.is_near_duplicate(a, ItemSignature(phash=0b1110))
    assert scoring.is_near_duplicate(
        a, ItemSignature(camera_id="cam-1", captured_at=t0 + timedelta(seconds=30))
    )
    assert not scoring.is_near_duplicate(
        a, ItemSignature(camera_id="cam-1", captured_at=t0 + timedelta(minutes=5))
    )
    assert not scoring.is_near_duplicate(a, ItemSignature(camera_id="cam-2", captured_at=t0))
    assert not scoring.is_near_duplicate(a, ItemSignature(phash=2**40 - 1), max_hamming=6)
    assert not scoring.is_near_duplicate(ItemSignature(), ItemSignature())


def _three_clusters() -> np.ndarray:
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    return np.concatenate([c + rng.normal(0, 0.1, size=(20, 2)) for c in centers])


def test_k_center_greedy_covers_every_cluster():
    picks = scoring.k_center_greedy(_three_clusters(), 3)
    assert sorted(set(picks // 20)) == [0, 1, 2]


def test_k_center_greedy_skips_clusters_already_selected():
    features = _three_clusters()
    picks = scoring.k_center_greedy(features, 1, selected=np.arange(40))
    assert picks.tolist()[0] // 20 == 2
    assert len(scoring.k_center_greedy(features, 100, selected=np.arange(40))) == 20


def test_kmeans_pp_seeding_returns_distinct_spread_points():
    picks = scoring.kmeans_pp_seeding(_three_clusters(), 3, seed=0)
    assert len(set(picks.tolist())) == 3
    assert sorted(set(picks // 20)) == [0, 1, 2]


def test_positive_quota_due_when_share_falls_behind():
    assert scoring.positive_quota_due(9, 0, min_positive_share=0.1, positives_available=True)
    assert not scoring.positive_quota_due(9, 1, min_positive_share=0.1, positives_available=True)
    assert not scoring.positive_quota_due(9, 0, min_positive_share=0.1, positives_available=False)


def test_select_with_positive_quota_swaps_in_the_hardest_likely_positives():
    priority = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    mean_score = np.array([0.1, 0.2, 0.1, 0.2, 0.9, 0.1, 0.95])
    picks = scoring.select_with_positive_quota(priority, mean_score, 4, threshold=0.5, min_positive_share=0.5)
    assert sorted(picks.tolist()) == [0, 1, 4, 6]
    plain = scoring.select_with_positive_quota(priority, mean_score, 4, threshold=0.5, min_positive_share=0.0)
    assert plain.tolist() == [0, 1, 2, 3]
    none_left = scoring.select_with_positive_quota(
        priority, np.zeros(7), 4, threshold=0.5, min_positive_share=0.5
    )
    assert none_left.tolist() == [0, 1, 2, 3]
