"""schemathesis over the whole OpenAPI document, on PostgreSQL: no input gets a 5xx, and every answer has a
documented status and body. Run alone with `pytest -m fuzz`.

Three callers walk every operation: anonymous, an admin's browser session, and an API key with every scope.
Path parameters are drawn partly from the seeded objects, so ids hit real projects, items, versions and jobs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from http.cookies import SimpleCookie

import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance
from sqlalchemy import select, update
from starlette.responses import Response

from app.auth.models import SCOPES, ApiKey, User
from app.auth.sessions import SESSION_COOKIE, start_session
from app.core.config import Settings
from app.ingest.models import Item
from app.jobs.models import Job
from app.labels.models import Annotation
from app.main import create_app
from app.users.models import ProjectMember
from tests.conftest import _empty_all_tables
from tests.utils.dashboard_data import seed_training
from tests.utils.factories import make_key, make_project
from tests.utils.labeled_data import seed_labeled_items
from workers.celery_app import CPU_QUEUE, GPU_QUEUE

pytestmark = [pytest.mark.fuzz, pytest.mark.xdist_group("schema_fuzz")]

MAX_EXAMPLES = int(os.environ.get("HARDCASE_FUZZ_EXAMPLES", "12"))
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
# Streams a live job's events for up to `max_s` (an hour by default): a fuzzer would wait on it, not test it.
SKIPPED_PATHS = ["/api/v1/jobs/{job_id}/events"]


@pytest.fixture(scope="module")
def fuzz_world(migrated_urls, tmp_path_factory, redis_url):
    """A seeded PostgreSQL app: a project with items, labels, a dataset version, jobs and model versions.

    The tasks fuzzed requests send are removed afterwards, so no later test's worker picks them up."""
    url = migrated_urls["get"]("postgresql")
    _empty_all_tables(url)
    app = create_app(
        Settings(
            data_dir=tmp_path_factory.mktemp("fuzz"),
            database_url=url,
            broker_url=redis_url,
            secret_key="fuzz-secret",
            max_batch_items=50,
            max_image_bytes=2_000_000,
        )
    )
    with app.state.sessionmaker() as db:
        project = make_project(db)
        admin = User(username="fuzz-admin", password_hash="!no-password-login", role="admin")
        db.add(admin)
        db.flush()
        db.add(ProjectMember(project_id=project.id, user_id=admin.id))
        db.commit()
        seed_labeled_items(db, app.state.blobs, project, admin, 4)
        seed_training(db, project)
        db.commit()
        key = make_key(db, scopes=list(SCOPES))
        known = {
            "project": ["roadwork"],
            "item_id": list(db.scalars(select(Item.id).limit(5))),
            "external_id": list(db.scalars(select(Item.external_id).limit(5))),
            "annotation_id": list(db.scalars(select(Annotation.id).limit(5))),
            "job_id": list(db.scalars(select(Job.id))),
            "version": [1, 2],
            "user_id": [admin.id],
        }
        world = {"app": app, "admin_id": admin.id, "key": key, "known": known}
    yield world
    app.state.engine.dispose()
    redis.Redis.from_url(redis_url).delete(CPU_QUEUE, GPU_QUEUE)


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_world):
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_world["app"])


def _admin_session(world) -> tuple[dict[str, str], dict[str, str]]:
    """A fresh session for the seeded admin, restored first: a fuzzed request may have logged it out,
    deactivated it or demoted it."""
    app = world["app"]
    with app.state.sessionmaker() as db:
        db.execute(update(User).where(User.id == world["admin_id"]).values(is_active=True, role="admin"))
        db.execute(update(ApiKey).values(revoked_at=None))
        response = Response()
        session = start_session(
            response,
            db_session=db,
            secret_key=app.state.settings.secret_key,
            user_id=world["admin_id"],
            secure=False,
        )
        db.commit()
    cookie = SimpleCookie(response.headers["set-cookie"])[SESSION_COOKIE].value
    return {"X-CSRF-Token": session.csrf}, {SESSION_COOKIE: cookie}


FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


def _strategy(operation, known: dict[str, list]):
    """Valid and invalid requests; half with path parameters naming seeded objects, to get past the 404s."""
    names = [p.name for p in operation.path_parameters]
    fixed = [None]
    if names and all(known.get(name) for name in names):
        fixed.append({name: known[name][0] for name in names})
        fixed.append({name: known[name][-1] for name in names})
    return st.one_of(
        *[
            operation.as_strategy(mode, path_parameters=parameters)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
            for parameters in fixed
        ]
    )


def fuzz_every_operation(schema, known: dict[str, list], call: Callable[[Case], None]) -> list[str]:
    """Runs `call` on generated cases of every operation; returns one report per failing operation."""
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in SKIPPED_PATHS:
            continue

        @FUZZ_SETTINGS
        @given(case=_strategy(operation, known))
        def run(case: Case) -> None:
            call(case)

        try:
            run()
        except Exception as exc:  # noqa: BLE001 - schemathesis raises a group of check failures
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    return failures


def test_anonymous_requests_never_get_a_5xx_and_every_answer_is_documented(fuzz_schema, fuzz_world):
    failures = fuzz_every_operation(
        fuzz_schema, fuzz_world["known"], lambda case: case.call_and_validate(checks=CHECKS)
    )
    assert not failures, "\n\n".join(failures)


def test_an_admin_session_never_gets_a_5xx_and_every_answer_is_documented(fuzz_schema, fuzz_world):
    def call(case: Case) -> None:
        headers, cookies = _admin_session(fuzz_world)
        case.call_and_validate(headers=headers, cookies=cookies, checks=CHECKS)

    failures = fuzz_every_operation(fuzz_schema, fuzz_world["known"], call)
    assert not failures, "\n\n".join(failures)


def test_an_all_scopes_key_never_gets_a_5xx_and_every_answer_is_documented(fuzz_schema, fuzz_world):
    headers = {"X-API-Key": fuzz_world["key"]}
    failures = fuzz_every_operation(
        fuzz_schema, fuzz_world["known"], lambda case: case.call_and_validate(headers=headers, checks=CHECKS)
    )
    assert not failures, "\n\n".join(failures)
