"""Concurrent annotators never get the same item: threads leasing against SQLite and PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select

from app.auth.models import User
from app.projects.models import Project
from app.queue.models import Hardness
from app.queue.service import lease_next_item
from tests.utils.accounts import (
    make_user,
    seed_project,
    spread_scores,
)

THREADS = 8
ITEMS = 48


def lease_until_empty(sessions, project_id: int, user_id: int) -> list[int]:
    served = []
    with sessions() as session:
        project, user = session.get(Project, project_id), session.get(User, user_id)
        session.commit()
        while (
            lease := lease_next_item(db_session=session, project=project, user=user, lease_minutes=5)
        ) is not None:
            served.append(lease.item_id)
    return served


def test_eight_threads_never_lease_the_same_item_twice(client, db, sessions):
    project, _ = seed_project(db, client, spread_scores(ITEMS))
    users = [make_user(db, f"user{i}", project=project).id for i in range(THREADS)]
    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(lambda uid: lease_until_empty(sessions, project.id, uid), users))
    served = [item_id for per_user in results for item_id in per_user]
    assert len(served) == len(set(served)) == ITEMS
    assert sum(1 for per_user in results if per_user) > 1


def test_postgresql_serves_leases_from_a_cached_plan_not_a_fresh_one_each_time(
    client, db, sessions, database_url
):
    """After a few leases on a connection, PostgreSQL runs the prepared lease statement's generic plan: the
    statement is not planned again per lease (planning was a third of a lease's time at 200k items, where a
    LIMIT parameter made the generic plan a sort; `bench.queue` shows that scale, this guards the mechanism)."""
    if not database_url.startswith("postgresql"):
        return  # SQLite has no prepared plans to reuse (its lease takes the stepwise path)
    from sqlalchemy import text

    project, _ = seed_project(db, client, spread_scores(ITEMS))
    user_id = make_user(db, "planner", project=project).id
    with sessions() as session:
        project, user = session.get(Project, project.id), session.get(User, user_id)
        for _ in range(20):  # psycopg prepares on the 6th; PostgreSQL tries 5 custom plans first
            assert lease_next_item(db_session=session, project=project, user=user, lease_minutes=5)
        plans = session.execute(
            text(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
                "WHERE statement LIKE '%WITH cur AS%'"
            )
        ).one()
    assert plans.generic_plans >= 5, plans


def _plan_nodes(node: dict) -> list[dict]:
    return [node, *(n for child in node.get("Plans", []) for n in _plan_nodes(child))]


def test_postgresql_checks_the_users_labels_by_index_even_from_statistics_of_an_empty_table(
    client, db, sessions, database_url
):
    """The lease's "not labeled by this user" is one index probe per candidate, also when the annotations
    table (now 4,800 rows) was last analysed empty (autovacuum off): planned as an anti-join from such
    statistics it compared every candidate with every label the user had made."""
    if not database_url.startswith("postgresql"):
        return  # SQLite has its own stepwise lease
    from sqlalchemy import text

    from app.labels.models import Annotation
    from app.queue.service import QUEUE_CONFIG, lease_params, lease_sql

    project, _ = seed_project(db, client, spread_scores(ITEMS))
    user = make_user(db, "prolific", project=project)
    db.execute(text("ANALYZE annotations"))
    item_ids = [row.item_id for row in db.execute(select(Hardness.item_id).limit(ITEMS // 2))]
    db.add_all(Annotation(item_id=i, project_id=project.id, annotator_id=user.id, label=1) for i in item_ids)
    db.execute(  # the user's earlier answers, replaced since: a table of a few thousand rows
        text(
            "INSERT INTO annotations (item_id, project_id, annotator_id, label, boxes, state, created_at) "
            "SELECT i, :project, :user, 0, '[]', 'superseded', now() FROM unnest(CAST(:items AS int[])) AS i, "
            "generate_series(1, 200)"
        ),
        {"project": project.id, "user": user.id, "items": item_ids},
    )
    db.commit()
    params = lease_params(project, user, 5, None, QUEUE_CONFIG)
    raw = db.connection().connection.driver_connection
    with raw.cursor() as cursor:
        plan = cursor.execute(
            "EXPLAIN (FORMAT JSON) " + lease_sql(QUEUE_CONFIG.candidates), params
        ).fetchone()
    db.rollback()
    scans = [n for n in _plan_nodes(plan[0][0]["Plan"]) if n.get("Relation Name") == "annotations"]
    # A subplan probed per candidate, not a join: with 1M items in the queue PostgreSQL planned the join
    # against a materialised list of the user's labels (bench.queue); this table is too small to show that.
    shapes = [(n["Node Type"], n["Parent Relationship"]) for n in scans]
    assert shapes and all(shape == ("Index Scan", "SubPlan") for shape in shapes), shapes
