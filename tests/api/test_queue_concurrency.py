"""Concurrent annotators never get the same item: threads leasing against SQLite and PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from app.auth.models import User
from app.projects.models import Project
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
