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
