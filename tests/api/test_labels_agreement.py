"""Agreement metrics against hand-computed examples, and the per-project report."""

from __future__ import annotations

import numpy as np
import pytest

from app.labels.agreement import cohen_kappa, fleiss_kappa
from tests.utils.accounts import (
    logged_in,
    make_user,
    seed_project,
    spread_scores,
)

BASE = "/api/v1/projects/roadwork"


def test_cohen_kappa_matches_the_hand_computation():
    # 10 items: agree on 7 (4 yes, 3 no); p_o = 0.7; a says yes 6x, b says yes 5x
    # p_e = 0.6*0.5 + 0.4*0.5 = 0.5; kappa = (0.7 - 0.5) / 0.5 = 0.4
    a = [1, 1, 1, 1, 1, 1, 0, 0, 0, 0]
    b = [1, 1, 1, 1, 0, 0, 1, 0, 0, 0]
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa([1, 0], [1, 0]) == pytest.approx(1.0)
    assert cohen_kappa([1, 1], [1, 1]) is None


def test_fleiss_kappa_matches_the_wikipedia_example():
    counts = np.array(
        [
            [0, 0, 0, 0, 14],
            [0, 2, 6, 4, 2],
            [0, 0, 3, 5, 6],
            [0, 3, 9, 2, 0],
            [2, 2, 8, 1, 1],
            [7, 7, 0, 0, 0],
            [3, 2, 6, 3, 0],
            [2, 5, 3, 2, 2],
            [6, 5, 2, 1, 0],
            [0, 2, 2, 3, 7],
        ]
    )
    assert fleiss_kappa(counts) == pytest.approx(0.210, abs=1e-3)
    with pytest.raises(ValueError, match="counts"):
        fleiss_kappa(np.array([[1, 1], [2, 1]]))


def test_the_agreement_report_on_a_labeled_project(app, client, db):
    project, _ = seed_project(db, client, spread_scores(4), overlap=2)
    make_user(db, "ann", project=project)
    make_user(db, "bob", project=project)
    make_user(db, "rev", role="reviewer", project=project)
    ann, bob = logged_in(app, "ann"), logged_in(app, "bob")
    # ann: 1 1 0 0, bob: 1 0 0 0 on the same items -> agree 3/4; p_e = 0.5*0.25 + 0.5*0.75 = 0.5; kappa 0.5
    for label_a, label_b in [(1, 1), (1, 0), (0, 0), (0, 0)]:
        item_id = ann.post(f"{BASE}/queue/next").json()["item"]["id"]
        ann.post(f"{BASE}/items/{item_id}/annotations", json={"label": label_a, "duration_ms": 4000})
        assert bob.post(f"{BASE}/queue/next").json()["item"]["id"] == item_id
        bob.post(f"{BASE}/items/{item_id}/annotations", json={"label": label_b, "duration_ms": 2000})
    report = logged_in(app, "rev").get(f"{BASE}/agreement").json()
    assert report["pairs"] == [
        {"annotator_a": "ann", "annotator_b": "bob", "items": 4, "kappa": pytest.approx(0.5)}
    ]
    # Fleiss pools the marginals: p_e = (5/8)² + (3/8)² = 34/64
    assert report["fleiss_kappa"] == pytest.approx((0.75 - 34 / 64) / (1 - 34 / 64))
    assert (report["items_labeled"], report["items_decided"]) == (4, 3)  # the 1-vs-0 item is a tie
    assert report["agreement_with_consensus"] == 1.0
    ann_row = next(r for r in report["annotators"] if r["annotator"] == "ann")
    assert ann_row == {
        "annotator": "ann",
        "labels": 4,
        "labels_per_hour": pytest.approx(900.0),
        "median_seconds_per_item": 4.0,
        "agreement_with_consensus": 1.0,
    }
