"""One access rule for every route: each declares one, and an authorization matrix over every route holds."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import event, select

from app.auth.models import SCOPES
from app.auth.permissions import PUBLIC_FRAMEWORK_PATHS, AccessRule, access_rules_of
from app.deps import INT4_MAX, ROLE_RANK
from app.labels.models import Annotation
from app.registry.models import ModelVersion
from tests.utils.accounts import PASSWORD, item_ids, logged_in, make_user
from tests.utils.dashboard_data import seed_training
from tests.utils.factories import b64, item, make_key, make_project, png_bytes
from tests.utils.loop import seed_loop_run
from tests.utils.remote_sources import http_image_server

SLASHED_ID = "cam7/2026-11-25T08:14:03Z"


def declared_routes(app) -> list[tuple[str, str, AccessRule]]:
    """(method, path, rule) for every route the app serves; fails on a route that declares no single rule."""
    routes = []
    for route in iter_route_contexts(app.routes):
        dependant = getattr(route, "dependant", None)
        if dependant is None:
            assert route.path in PUBLIC_FRAMEWORK_PATHS, f"{route.path} declares no access rule"
            continue
        rules = access_rules_of(dependant)
        assert len(rules) == 1, f"{sorted(route.methods)} {route.path} declares {[r.name for r in rules]}"
        routes += [(method, route.path, rules[0]) for method in sorted(route.methods - {"HEAD"})]
    return routes


def test_every_route_declares_exactly_one_access_rule(app):
    routes = declared_routes(app)
    assert len(routes) > 60
    paths = {path for _, path, _ in routes}
    assert {"/healthz", "/login", "/api/v1/auth/login"} <= paths  # public routes declare `public` too


# --- the world: objects in two projects, and who asks ------------------------------------------------------


@dataclass(frozen=True)
class Persona:
    name: str
    user: str | None = None
    role: str | None = None
    member: bool = False  # of 'beta', the project that owns every object the matrix asks for
    key_project: str | None = None  # for keys: the project it is scoped to (None: unscoped)
    is_key: bool = False
    lacks_the_scope: bool = False  # a key of 'beta' holding every scope but the route's


PERSONAS = [
    Persona("anonymous"),
    Persona("non-member annotator", user="outsider", role="annotator"),
    Persona("member annotator", user="annotator", role="annotator", member=True),
    Persona("reviewer", user="reviewer", role="reviewer", member=True),
    Persona("admin", user="admin", role="admin"),
    Persona("key of the other project", is_key=True, key_project="alpha"),
    Persona("key of the project", is_key=True, key_project="beta"),
    Persona("unscoped key", is_key=True),
    Persona("key lacking the scope", is_key=True, key_project="beta", lacks_the_scope=True),
]


def refusal(rule: AccessRule, persona: Persona, scopes: set[str]) -> int | None:
    """What the rule must answer `persona` (None: let through). The spec, written from the issue."""
    if rule.role is None:
        return None
    if persona.is_key and rule.scope is not None:
        if rule.resource == "all_projects" and persona.key_project is not None:
            return 403
        if rule.resource not in ("global", "all_projects") and persona.key_project not in (None, "beta"):
            return 404
        return None if rule.scope in scopes else 403
    if persona.user is None:
        return 303 if rule.page else 401
    if persona.role != "admin" and rule.resource not in ("global", "all_projects") and not persona.member:
        return 404
    return None if ROLE_RANK[persona.role] >= ROLE_RANK[rule.role] else 403


@dataclass
class World:
    app: object
    ids: dict = field(default_factory=dict)
    keys: dict = field(default_factory=dict)
    clients: dict = field(default_factory=dict)

    def client(self, persona: Persona, scopes: set[str], fresh: bool = False) -> TestClient:
        if persona.is_key:
            client = TestClient(self.app)
            client.headers["X-API-Key"] = self.keys[(persona.key_project, frozenset(scopes))]
            return client
        if persona.user is None:
            return TestClient(self.app)
        if fresh:
            return logged_in(self.app, persona.user)
        if persona.user not in self.clients:
            self.clients[persona.user] = logged_in(self.app, persona.user)
        return self.clients[persona.user]


def artifact_zip(folder: Path, name: str) -> str:
    path = folder / f"{name}.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model.txt", name)
    return str(path)


@pytest.fixture
def world(app, db, tmp_path) -> World:
    world = World(app)
    alpha, beta = make_project(db, "alpha"), make_project(db, "beta")
    for project in (alpha, beta):
        world.ids[project.name] = seed_training(db, project)[1].id  # a running job of each project
    make_user(db, "outsider", project=alpha)
    users = {
        "annotator": make_user(db, "annotator", project=beta),
        "reviewer": make_user(db, "reviewer", "reviewer", project=beta),
        "admin": make_user(db, "admin", "admin"),
    }
    world.ids["user_id"] = make_user(db, "spare").id
    all_scopes = set(SCOPES)
    for project in (alpha, beta, None):
        owner = None if project is None else project.name
        scope_sets = [all_scopes] + ([all_scopes - {s} for s in SCOPES] if project is beta else [])
        for scopes in scope_sets:
            world.keys[(owner, frozenset(scopes))] = make_key(
                db, scopes=sorted(scopes), project_id=None if project is None else project.id
            )
    batch = [item("stored", image={"base64": b64(png_bytes())}), item(SLASHED_ID)]
    batch += [item(f"labeled-by-{name}") for name in users]
    ingest = TestClient(app).post(
        "/api/v1/projects/beta/predictions",
        json={"items": batch},
        headers={"X-API-Key": world.keys[(None, frozenset(all_scopes))]},
    )
    assert ingest.status_code == 201, ingest.text
    items = item_ids(db, beta)
    world.ids["item_id"] = items["stored"]
    for name, user in users.items():
        annotation = Annotation(
            item_id=items[f"labeled-by-{name}"], project_id=beta.id, annotator_id=user.id, label=1
        )
        db.add(annotation)
        db.flush()
        world.ids[("annotation_id", name)] = annotation.id
    for model in db.scalars(select(ModelVersion).where(ModelVersion.project_id == beta.id)):
        model.artifact_archive = artifact_zip(tmp_path, f"v{model.version}")
    db.commit()
    admin = world.client(PERSONAS[4], set())
    hook = admin.post("/api/v1/projects/beta/webhooks", json={"url": "https://hooks.example/beta"})
    assert hook.status_code == 201, hook.text
    world.ids["webhook_id"] = hook.json()["id"]
    world.ids["run_id"] = seed_loop_run(db, beta)
    return world


# Path parameter values: every object belongs to 'beta'.
def path_of(template: str, world: World, persona: Persona) -> str:
    values = {
        "{project}": "beta",
        "{item_id}": world.ids["item_id"],
        "{external_id:path}": SLASHED_ID,
        "{version}": 1,
        "{job_id}": world.ids["beta"],
        "{user_id}": world.ids["user_id"],
        "{annotation_id}": world.ids.get(
            ("annotation_id", persona.user), world.ids[("annotation_id", "annotator")]
        ),
        "{webhook_id}": world.ids["webhook_id"],
        "{run_id}": world.ids["run_id"],
    }
    path = template
    for name, value in values.items():
        path = path.replace(name, str(value))
    assert "{" not in path, f"the matrix needs a value for a parameter of {template}"
    return path


QUERIES = {"/api/v1/jobs/{job_id}/events": {"max_s": 0.1, "interval_s": 0.1}}
BODIES = {
    ("POST", "/api/v1/auth/login"): {"username": "outsider", "password": PASSWORD},
    ("POST", "/api/v1/projects/{project}/queue/renew"): {"item_ids": [1]},
    ("PATCH", "/api/v1/users/{user_id}"): {"role": "annotator"},
}
# Logging in or out changes the client's session: those routes get a client of their own.
SESSION_CHANGING = {"/login", "/logout", "/api/v1/auth/login", "/api/v1/auth/logout"}


def call(world: World, persona: Persona, method: str, template: str, scopes: set[str]):
    client = world.client(persona, scopes, fresh=template in SESSION_CHANGING)
    kwargs = {"params": QUERIES.get(template, {}), "follow_redirects": False}
    if method in ("POST", "PUT", "PATCH"):
        kwargs["json"] = BODIES.get((method, template), {})
    return client.request(method, path_of(template, world, persona), **kwargs)


def to_login(response) -> bool:
    return response.status_code == 303 and response.headers["location"].startswith("/login")


def test_the_authorization_matrix_holds_for_every_route(app, world):
    """Forbidden combinations never succeed and get the documented refusal; allowed ones are never refused."""
    problems = []
    deletes_last = sorted(declared_routes(app), key=lambda route: route[0] == "DELETE")
    for method, template, rule in deletes_last:
        for persona in PERSONAS:
            scopes = set(SCOPES)
            if persona.lacks_the_scope:
                scopes -= {rule.scope or "read"}
            response = call(world, persona, method, template, scopes)
            status, expected = response.status_code, refusal(rule, persona, scopes)
            seen = f"{method} {template} as {persona.name}: {status} {response.text[:200]}"
            if status >= 500:
                problems.append(seen)
            elif expected is None and (
                status in (401, 403, 404) or (to_login(response) and template not in SESSION_CHANGING)
            ):
                problems.append(f"refused, should pass ({rule.name}): {seen}")
            elif expected is not None and status != expected:
                problems.append(f"expected {expected} ({rule.name}): {seen}")
    assert not problems, "\n".join(problems)


def test_a_stranger_cannot_tell_another_projects_objects_from_missing_ones(app, world):
    """A non-member gets the same answer for beta's objects as for objects that do not exist."""
    outsider = next(p for p in PERSONAS if p.user == "outsider")
    client = world.client(outsider, set())
    for method, template, rule in declared_routes(app):
        if rule.resource in ("global", "all_projects") or rule.page or rule.role is None:
            continue
        existing = client.request(method, path_of(template, world, outsider), json={})
        missing_path = path_of(template, world, outsider).replace("/beta", "/nope")
        if template.startswith("/api/v1/jobs/"):
            missing_path = missing_path.replace(f"/jobs/{world.ids['beta']}", f"/jobs/{INT4_MAX}")
        missing = client.request(method, missing_path, json={})
        assert existing.status_code == missing.status_code == 404, (method, template)
        assert existing.json()["errors"][0]["field"] == missing.json()["errors"][0]["field"], template


def test_lists_show_only_what_the_caller_may_open(app, world):
    every = set(SCOPES)
    by = {p.name: world.client(p, every) for p in PERSONAS}

    def names(persona: str) -> list[str]:
        return [p["name"] for p in by[persona].get("/api/v1/projects").json()]

    assert names("non-member annotator") == ["alpha"]
    assert names("member annotator") == ["beta"]
    assert names("admin") == ["alpha", "beta"] == names("unscoped key")
    assert names("key of the other project") == ["alpha"]
    assert by["anonymous"].get("/api/v1/projects").status_code == 401


# --- bounded integers and external ids ----------------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_out_of_range_ids_are_a_422_naming_the_parameter(app, world):
    admin = world.client(PERSONAS[4], set())
    for method, template, _ in declared_routes(app):
        for name in ("item_id", "version", "job_id", "user_id", "annotation_id", "webhook_id", "run_id"):
            if "{" + name + "}" not in template:
                continue
            for huge in (INT4_MAX + 1, 2**63, 0):
                path = path_of(template.replace("{" + name + "}", str(huge)), world, PERSONAS[4])
                response = admin.request(method, path, json={}, follow_redirects=False)
                assert response.status_code == 422, (method, template, response.text)
                assert name in {e["field"] for e in response.json()["errors"]}, (template, response.json())


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_out_of_range_offsets_and_versions_in_queries_are_a_422(app, world):
    admin = world.client(PERSONAS[4], set())
    for path, name in (
        ("/api/v1/projects/beta/items", "offset"),
        ("/api/v1/projects/beta/items", "limit"),
        ("/api/v1/projects/beta/datasets/1", "offset"),
        ("/api/v1/projects/beta/jobs", "limit"),
        ("/projects/beta/models", "version"),
        ("/projects/beta/jobs", "dataset_version"),
    ):
        response = admin.get(path, params={name: 2**63})
        assert response.status_code == 422 and response.json()["errors"][0]["field"] == name, path


def test_an_item_is_addressable_whatever_characters_its_external_id_holds(app, db):
    make_project(db, "beta")
    client = TestClient(app, headers={"X-API-Key": make_key(db)})
    odd_ids = [SLASHED_ID, "a b", "100%/x", "ü/ä", "a?b#c", "trailing/", "7/image/x"]
    batch = [item(external_id) for external_id in odd_ids] + [
        item("photo", image={"base64": b64(png_bytes())})
    ]
    assert client.post("/api/v1/projects/beta/predictions", json={"items": batch}).status_code == 201
    for external_id in odd_ids:
        found = client.get(f"/api/v1/projects/beta/items/{quote(external_id, safe='/')}")
        assert found.status_code == 200, (external_id, found.text)
        assert found.json()["external_id"] == external_id
    photo = client.get("/api/v1/projects/beta/items/photo").json()["id"]
    image = client.get(f"/api/v1/projects/beta/items/{photo}/image")  # not shadowed by the any-tail route
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"


def test_the_image_proxy_for_a_referenced_item_follows_its_rule_for_every_persona(app, world):
    """The label page's proxy (view_item_image) fetches a referenced image only for those the rule lets
    through; everyone else gets the matrix's refusal before anything is fetched."""
    with http_image_server() as web:
        web.files["/cam.png"] = png_bytes()
        app.state.settings = app.state.settings.model_copy(
            update={
                "remote_image_allowlist": web.base,
                "remote_allow_private": True,
                "remote_prefetch": False,
            }
        )
        unscoped = world.keys[(None, frozenset(SCOPES))]
        batch = [item("referenced", image={"url": web.url("cam.png")})]
        ingest = TestClient(app).post(
            "/api/v1/projects/beta/predictions", json={"items": batch}, headers={"X-API-Key": unscoped}
        )
        assert ingest.status_code == 201, ingest.text
        item_id = ingest_item_id(world, unscoped)
        template = "/api/v1/projects/{project}/items/{item_id}/image"
        rule = next(r for m, t, r in declared_routes(app) if t == template and m == "GET")
        assert rule.name == "view_item_image"
        for persona in PERSONAS:
            scopes = set(SCOPES) - ({rule.scope} if persona.lacks_the_scope else set())
            response = world.client(persona, scopes).get(f"/api/v1/projects/beta/items/{item_id}/image")
            expected = refusal(rule, persona, scopes)
            assert response.status_code == (expected or 200), (persona.name, response.text[:200])
            if expected is None:
                assert response.content == web.files["/cam.png"]
        assert web.requests == ["/cam.png"]  # fetched once, for the first allowed caller; then the cache


def ingest_item_id(world: World, key: str) -> int:
    client = TestClient(world.app, headers={"X-API-Key": key})
    return client.get("/api/v1/projects/beta/items/referenced").json()["id"]


def test_the_access_check_reads_the_callers_membership_in_the_resources_own_query(app, db):
    """The project and whether the caller belongs to it come back in one statement (the lease path's access
    check costs no query of its own), and the answer still depends on the membership: a member gets the
    project, a non-member the same 404 as for a missing one."""
    project = make_project(db, name="own-query")
    make_user(db, "member-of-it", project=project)
    make_user(db, "not-a-member")
    member_client, stranger_client = logged_in(app, "member-of-it"), logged_in(app, "not-a-member")
    statements: list[str] = []

    def record(conn, cursor, statement, *args) -> None:
        statements.append(statement)

    event.listen(app.state.engine, "before_cursor_execute", record)
    try:
        member = member_client.get("/api/v1/projects/own-query/progress")
        asked = [s for s in statements if "project_members" in s]
        stranger = stranger_client.get("/api/v1/projects/own-query/progress")
    finally:
        event.remove(app.state.engine, "before_cursor_execute", record)
    assert member.status_code == 200, member.text
    assert len(asked) == 1 and "FROM projects" in asked[0], asked
    assert stranger.status_code == 404 and stranger.json()["errors"][0]["field"] == "project"
