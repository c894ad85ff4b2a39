"""Review: ties and flags reach reviewers; a reviewer's decision is final and recorded."""

from __future__ import annotations

from app.labels.service import consensus_for_items
from tests.utils.accounts import (
    item_ids,
    logged_in,
    make_user,
    seed_project,
    spread_scores,
)

BASE = "/api/v1/projects/roadwork"


def test_a_tie_reaches_the_reviewer_whose_decision_is_final(app, client, db):
    project, _ = seed_project(db, client, spread_scores(2), overlap=2)
    make_user(db, "ann", project=project)
    make_user(db, "bob", project=project)
    reviewer = make_user(db, "rev", role="reviewer", project=project)
    ann, bob, rev = logged_in(app, "ann"), logged_in(app, "bob"), logged_in(app, "rev")
    item_id = ann.post(f"{BASE}/queue/next").json()["item"]["id"]
    first = ann.post(f"{BASE}/items/{item_id}/annotations", json={"label": 1}).json()["annotation"]["id"]
    assert bob.post(f"{BASE}/queue/next").json()["item"]["id"] == item_id
    bob.post(f"{BASE}/items/{item_id}/annotations", json={"label": 0})
    task = rev.get(f"{BASE}/review/next")
    assert task.status_code == 200, task.text
    assert task.json()["item"]["id"] == item_id
    assert task.json()["consensus"] == {"label": None, "source": "tie", "votes": {"1": 1, "0": 1}}
    assert len(task.json()["history"]["annotations"]) == 2
    decided = rev.post(
        f"{BASE}/items/{item_id}/review", json={"label": 0, "note": "cones are stored, not work"}
    )
    assert decided.status_code == 201, decided.text
    assert decided.json()["item_status"] == "done"
    assert decided.json()["review"]["reviewer_id"] == reviewer.id and decided.json()["review"]["created_at"]
    # an annotator's later correction does not overturn the reviewer
    fixed = ann.post(f"{BASE}/items/{item_id}/annotations", json={"label": 1, "supersedes": first})
    assert fixed.status_code == 201 and fixed.json()["item_status"] == "done"
    consensus = consensus_for_items(db_session=db, project=project, item_ids=[item_id])[item_id]
    db.commit()
    assert (consensus.label, consensus.source) == (0, "review")
    assert rev.get(f"{BASE}/review/next").status_code == 204


def test_a_flag_sends_the_item_to_review(app, client, db):
    project, _ = seed_project(db, client, spread_scores(2))
    make_user(db, "ann", project=project)
    make_user(db, "rev", role="reviewer", project=project)
    ann, rev = logged_in(app, "ann"), logged_in(app, "rev")
    item_id = ann.post(f"{BASE}/queue/next").json()["item"]["id"]
    flagged = ann.post(f"{BASE}/items/{item_id}/flag", json={"reason": "image is black"})
    assert flagged.status_code == 201
    assert rev.get(f"{BASE}/review/next").json()["item"]["id"] == item_id
    assert ann.post(f"{BASE}/queue/next").json()["item"]["id"] != item_id
    rev.post(f"{BASE}/items/{item_id}/review", json={"label": 0})
    history = rev.get(f"{BASE}/items/{item_id}/history").json()
    assert history["flags"][0]["resolved_by_review_id"] == history["reviews"][0]["id"]


def test_annotators_cannot_review(app, client, db):
    project, _ = seed_project(db, client, spread_scores(1))
    make_user(db, "ann", project=project)
    ann = logged_in(app, "ann")
    item_id = item_ids(db, project)["item-0"]
    assert ann.get(f"{BASE}/review/next").status_code == 403
    assert ann.post(f"{BASE}/items/{item_id}/review", json={"label": 1}).status_code == 403
    assert ann.get(f"{BASE}/agreement").status_code == 403


def test_the_review_list_shows_conflicts_flags_and_skipped_out_items_with_every_answer(app, client, db):
    project, _ = seed_project(
        db, client, spread_scores(4), overlap=2, kind="detection", box_classes=["cone", "barrier"]
    )
    for name in ("ann", "bob", "cat"):
        make_user(db, name, project=project)
    make_user(db, "rev", role="reviewer", project=project)
    ann, bob, cat, rev = (logged_in(app, name) for name in ("ann", "bob", "cat", "rev"))
    tied = ann.post(f"{BASE}/queue/next").json()["item"]["id"]
    box = [0.1, 0.2, 0.3, 0.4, 1]
    assert ann.post(f"{BASE}/items/{tied}/annotations", json={"label": 1, "boxes": [box]}).status_code == 201
    assert bob.post(f"{BASE}/queue/next").json()["item"]["id"] == tied
    bob.post(f"{BASE}/items/{tied}/annotations", json={"label": 0})
    flagged = cat.post(f"{BASE}/queue/next").json()["item"]["id"]
    cat.post(f"{BASE}/items/{flagged}/flag", json={"reason": "lens covered"})
    skipped = ann.post(f"{BASE}/queue/next").json()["item"]["id"]
    for user in (ann, bob, cat):
        if user is not ann:
            assert user.post(f"{BASE}/queue/next").json()["item"]["id"] == skipped
        assert user.post(f"{BASE}/queue/{skipped}/skip").status_code == 200

    listed = rev.get(f"{BASE}/review")
    assert listed.status_code == 200, listed.text
    by_id = {entry["item"]["id"]: entry for entry in listed.json()}
    assert set(by_id) == {tied, flagged, skipped}
    assert by_id[tied]["reasons"] == ["conflict"]
    assert [(a["annotator"], a["label"], a["boxes"]) for a in by_id[tied]["answers"]] == [
        ("ann", 1, [box]),
        ("bob", 0, []),
    ]
    assert by_id[flagged]["reasons"] == ["flagged"]
    assert (
        by_id[flagged]["flags"][0]["user"] == "cat" and by_id[flagged]["flags"][0]["reason"] == "lens covered"
    )
    assert by_id[skipped]["reasons"] == ["skipped out"]
    assert rev.post(f"{BASE}/items/{tied}/review", json={"label": 1, "boxes": [box]}).status_code == 201
    assert tied not in {entry["item"]["id"] for entry in rev.get(f"{BASE}/review").json()}
    assert ann.get(f"{BASE}/review").status_code == 403
    assert rev.get(f"{BASE}/review?limit=0").status_code == 422


def test_the_label_page_and_the_overview_show_the_same_agreement(app, client, db):
    from app.dashboard.overview import project_overview

    project, _ = seed_project(db, client, spread_scores(3), overlap=2)
    ann_user = make_user(db, "ann", project=project)
    make_user(db, "bob", project=project)
    ann, bob = logged_in(app, "ann"), logged_in(app, "bob")
    for ann_label, bob_label in ((1, 1), (1, 0)):
        item_id = ann.post(f"{BASE}/queue/next").json()["item"]["id"]
        ann.post(f"{BASE}/items/{item_id}/annotations", json={"label": ann_label})
        assert bob.post(f"{BASE}/queue/next").json()["item"]["id"] == item_id
        bob.post(f"{BASE}/items/{item_id}/annotations", json={"label": bob_label})
    label_page = ann.get(f"{BASE}/progress").json()["agreement_rate"]
    db.rollback()
    overview = project_overview(db_session=db, project=project)
    db.commit()
    row = next(r for r in overview.annotators if r.user_id == ann_user.id)
    assert label_page == row.agreement == 0.5


def test_review_page_is_for_reviewers_and_settings_pages_for_admins(app, client, db):
    project, _ = seed_project(db, client, spread_scores(1))
    make_user(db, "ann", project=project)
    make_user(db, "rev", role="reviewer", project=project)
    make_user(db, "boss", role="admin")
    ann, rev, boss = logged_in(app, "ann"), logged_in(app, "rev"), logged_in(app, "boss")
    pages = ("/projects/roadwork/review", "/projects/roadwork/settings", "/admin/projects/new")
    assert [ann.get(p).status_code for p in pages] == [403, 403, 403]
    assert [rev.get(p).status_code for p in pages] == [200, 403, 403]
    assert [boss.get(p).status_code for p in pages] == [200, 200, 200]
    assert boss.get("/projects/nope/settings").status_code == 404
    assert 'id="key-scheme"' in boss.get("/projects/roadwork/settings").text
