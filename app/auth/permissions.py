"""Who may call which route: one rule per route, decided by the project that owns the resource it names.

Every route declares a rule from this module (`dependencies=[Depends(can.read_job)]`, or a parameter
`Annotated[User, Depends(can.label_item)]` when the handler needs the caller); a test fails on a route
that declares none. A rule names a resource (a project, item, annotation, dataset version, model version,
job, or nothing for global routes), the least user role and, where service keys may call the route, the
key scope. The resource is located from the route's own parameters and its OWNING project decides,
never the shape of the URL (a job is judged by its job row's project).

Access is granted to:
- an admin (role admin sees every project);
- a logged-in member of the owning project whose role reaches the rule's role (annotator < reviewer < admin);
- an active API key carrying the rule's scope whose project is the owning project, or an unscoped key.

Refusals, in this order (authentication first, so a stranger learns nothing about what exists):
- 401 without a valid session or key (pages redirect the browser to /login instead);
- 404 when the resource does not exist OR its project is not visible to the caller, with the same message
  either way, so the existence of another project's objects never leaks;
- 403 when the caller can see the project but its role is too low or its key lacks the scope (and for a
  key scoped to one project on a route over every project, such as /metrics).
Lists are filtered by the same visibility (`visible_projects`): nobody lists a project they could not open.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Path, Request
from sqlalchemy import Select, bindparam, exists, false, select
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException

from app.auth.models import ApiKey, User
from app.core.db import is_postgres
from app.core.errors import ApiError
from app.datasets.models import DatasetVersion
from app.deps import (
    ROLE_RANK,
    BrowserSession,
    IdPath,
    SessionDep,
    authenticated_key,
    carries_api_key,
    remember_located_project,
    user_of_session,
)
from app.ingest.models import Item
from app.jobs.models import Job
from app.labels.models import Annotation
from app.loop.models import LoopRun
from app.projects.models import Project
from app.registry.models import ModelVersion
from app.users import service as user_service
from app.users.models import ProjectMember

Caller = User | ApiKey
ProjectName = Annotated[str, Path(description="project name")]

# Framework routes that cannot declare a dependency; they serve no project data.
PUBLIC_FRAMEWORK_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/static"})


# --- resources: located from the route's parameters, loaded only after authentication ----------------------


@dataclass(frozen=True)
class Owner:
    """The project a resource belongs to, and whether the user asked about is one of its members."""

    project_id: int
    member: bool


# Finds the owner of a route's resource (None: no such resource). Its argument is the user whose membership
# the same query reads (None: an admin or a key, which need none): the access check costs no query of its own.
OwnerLookup = Callable[[Session, int | None], Owner | None]


@dataclass(frozen=True)
class Resource:
    """What a route acts on: `owner` finds its project (None: no such resource); None for global routes."""

    kind: str
    owner: OwnerLookup | None = None
    field: str = ""
    missing: str = ""


def _membership(project_id):
    """A column saying whether the user bound as `user_id` is a member of the project `project_id`."""
    return exists().where(
        ProjectMember.project_id == project_id, ProjectMember.user_id == bindparam("user_id")
    )


@functools.cache
def _owner_query(model, key: str | None, asks_membership: bool) -> Select:
    """Locates the `model` row whose `key` column is bound as `key`, inside the project bound as `project`
    (`model` None: the project itself). Built once per kind of resource: building and keying a statement cost
    more than running it."""
    query = select(Project, _membership(Project.id) if asks_membership else false())
    query = query.where(Project.name == bindparam("project"))
    if model is not None:
        query = query.join(model, model.project_id == Project.id).where(
            getattr(model, key) == bindparam("key")
        )
    return query.limit(1)


def _owner_in(model, project: str, key: str | None = None, value: object = None) -> OwnerLookup:
    """The project of the `model` row whose `key` is `value` inside the named project (`model` None: the project
    itself). The project row comes with it and is remembered for the route's `ProjectDep` (one query less)."""

    def owner(session: Session, user_id: int | None) -> Owner | None:
        query = _owner_query(model, key, user_id is not None)
        found = session.execute(query, {"project": project, "key": value, "user_id": user_id}).first()
        remember_located_project(session, None if found is None else found[0])
        return None if found is None else Owner(found[0].id, found[1])

    return owner


async def global_resource() -> Resource:
    """Routes that touch no project's data (accounts, the job kinds, the project list filtered per caller)."""
    return Resource("global")


async def all_projects_resource() -> Resource:
    """Routes that read across every project (metrics): a key scoped to one project may not call them."""
    return Resource("all_projects")


async def project_resource(project: ProjectName) -> Resource:
    return Resource("project", _owner_in(None, project), "project", f"unknown project {project!r}")


async def item_resource(project: ProjectName, item_id: IdPath) -> Resource:
    missing = f"no item {item_id} in project {project!r}"
    return Resource("item", _owner_in(Item, project, "id", item_id), "item_id", missing)


async def external_item_resource(project: ProjectName, external_id: str) -> Resource:
    missing = f"no item {external_id!r} in project {project!r}"
    owner = _owner_in(Item, project, "external_id", external_id)
    return Resource("item", owner, "external_id", missing)


async def annotation_resource(project: ProjectName, annotation_id: IdPath) -> Resource:
    missing = f"no annotation {annotation_id} in project {project!r}"
    owner = _owner_in(Annotation, project, "id", annotation_id)
    return Resource("annotation", owner, "annotation_id", missing)


async def dataset_version_resource(project: ProjectName, version: IdPath) -> Resource:
    missing = f"project {project!r} has no dataset version {version}"
    owner = _owner_in(DatasetVersion, project, "version", version)
    return Resource("dataset_version", owner, "dataset_version", missing)


async def model_version_resource(project: ProjectName, version: IdPath) -> Resource:
    missing = f"project {project!r} has no model version {version}"
    owner = _owner_in(ModelVersion, project, "version", version)
    return Resource("model_version", owner, "version", missing)


async def loop_run_resource(project: ProjectName, run_id: IdPath) -> Resource:
    missing = f"project {project!r} has no loop run {run_id}"
    return Resource("loop_run", _owner_in(LoopRun, project, "id", run_id), "run_id", missing)


@functools.cache
def _job_owner_query(asks_membership: bool) -> Select:
    membership = _membership(Job.project_id) if asks_membership else false()
    return select(Job.project_id, membership).where(Job.id == bindparam("job"))


async def job_resource(job_id: IdPath) -> Resource:
    def owner(session: Session, user_id: int | None) -> Owner | None:
        query = _job_owner_query(user_id is not None)
        found = session.execute(query, {"job": job_id, "user_id": user_id}).first()
        return None if found is None else Owner(*found)

    return Resource("job", owner, "job", f"no job {job_id}")


# --- the decision ----------------------------------------------------------------------------------------


def visible_projects(*, db_session: Session, caller: Caller) -> list[Project]:
    """The projects the caller may open, by the same rule as every route: what every list is filtered by."""
    if isinstance(caller, User):
        return user_service.visible_projects(db_session=db_session, user=caller)
    query = select(Project).order_by(Project.id)
    if caller.project_id is not None:
        query = query.where(Project.id == caller.project_id)
    return list(db_session.scalars(query))


def login_location(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/login" if target == "/" else f"/login?next={quote(target, safe='')}"


def _authenticate(
    request: Request, browser, session: Session, scope: str | None, page: bool, basic: bool = False
) -> Caller:
    if scope is not None and carries_api_key(request, basic):
        return authenticated_key(request, session, basic)
    try:
        return user_of_session(browser, session)
    except ApiError as exc:
        if page and exc.status_code == 401:
            # A 303 makes the browser follow with GET whatever the method was (a POST from a stale tab too).
            raise HTTPException(303, "log in first", headers={"Location": login_location(request)}) from exc
        if scope is not None and browser is None:
            message = (
                f"log in, or send an API key with the {scope!r} scope (X-API-Key or Authorization: Bearer)"
            )
            raise ApiError(401, "X-API-Key", message) from exc
        raise


def _check_owner(session: Session, caller: Caller, resource: Resource) -> None:
    if resource.kind == "all_projects" and isinstance(caller, ApiKey) and caller.project_id is not None:
        raise ApiError(403, "X-API-Key", "this covers every project: use a key made without a project")
    if resource.owner is None:
        return
    asks_membership = isinstance(caller, User) and caller.role != "admin"
    owner = resource.owner(session, caller.id if asks_membership else None)
    if owner is None or not _may_see(caller, owner):
        raise ApiError(404, resource.field, resource.missing)


def _may_see(caller: Caller, owner: Owner) -> bool:
    """Who may see a project's data: a key made for it or for every project; an admin; a member."""
    if isinstance(caller, ApiKey):
        return caller.project_id is None or caller.project_id == owner.project_id
    return caller.role == "admin" or owner.member


def _check_grant(caller: Caller, role: str, scope: str | None) -> None:
    if isinstance(caller, ApiKey):
        if scope not in caller.scopes:
            raise ApiError(403, "X-API-Key", f"this key lacks the {scope!r} scope")
    elif ROLE_RANK[caller.role] < ROLE_RANK[role]:
        raise ApiError(403, "role", f"this needs the {role} role")


@dataclass(frozen=True)
class AccessRule:
    """A route's declared rule, readable by tests and docs: what it guards and who passes."""

    name: str
    resource: str
    role: str | None  # None: public
    scope: str | None = None  # None: service keys may not call the route
    page: bool = False


def rule(
    name: str,
    locate: Callable[..., Resource],
    *,
    role: str,
    scope: str | None = None,
    page: bool = False,
    basic_auth: bool = False,
) -> Callable[..., Caller]:
    """A dependency enforcing one rule; it returns the caller (a User, or an ApiKey where `scope` is set).
    `basic_auth`: the key may also come as HTTP Basic auth (Label Studio's only way to authenticate)."""

    def check(
        request: Request, browser: BrowserSession, session: SessionDep, resource: Resource = Depends(locate)
    ) -> Caller:
        caller = _authenticate(request, browser, session, scope, page, basic_auth)
        _check_owner(session, caller, resource)
        _check_grant(caller, role, scope)
        if isinstance(caller, User):
            request.state.user = caller
        if not is_postgres(session):
            session.commit()  # ends the read transaction: SQLite must not hold its lock while a body streams in
        return caller

    check.__name__ = name
    check.access_rule = AccessRule(name, locate.__name__.removesuffix("_resource"), role, scope, page)
    return check


def public() -> None:
    """Declares a route open to everyone (login, health, the login page)."""


public.access_rule = AccessRule("public", "global", None)

# --- the rules, by what the route does ----------------------------------------------------------------------

signed_in = rule("signed_in", global_resource, role="annotator")
admin = rule("admin", global_resource, role="admin")
read_catalogue = rule("read_catalogue", global_resource, role="annotator", scope="read")
read_metrics = rule("read_metrics", all_projects_resource, role="admin", scope="metrics")

read_project = rule("read_project", project_resource, role="annotator", scope="read")
label_project = rule("label_project", project_resource, role="annotator")
review_project = rule("review_project", project_resource, role="reviewer")
admin_project = rule("admin_project", project_resource, role="admin")
ingest_into_project = rule("ingest_into_project", project_resource, role="admin", scope="ingest")
pull_production_model = rule("pull_production_model", project_resource, role="annotator", scope="models")
# Hardcase as a Label Studio ML backend: one key (read + ingest) that Label Studio sends as Basic auth.
ls_read_project = rule("ls_read_project", project_resource, role="annotator", scope="read", basic_auth=True)
ls_ingest_into_project = rule(
    "ls_ingest_into_project", project_resource, role="admin", scope="ingest", basic_auth=True
)

read_item = rule("read_item", item_resource, role="annotator", scope="read")
read_item_by_external_id = rule(
    "read_item_by_external_id", external_item_resource, role="annotator", scope="read"
)
# The label page's image (stored, or a reference fetched through the server's proxy): the item's project decides.
view_item_image = rule("view_item_image", item_resource, role="annotator", scope="read")
label_item = rule("label_item", item_resource, role="annotator")
review_item = rule("review_item", item_resource, role="reviewer")
undo_annotation = rule("undo_annotation", annotation_resource, role="annotator")

read_dataset_version = rule("read_dataset_version", dataset_version_resource, role="annotator", scope="read")
read_model_version = rule("read_model_version", model_version_resource, role="annotator", scope="read")
download_artifact = rule("download_artifact", model_version_resource, role="annotator", scope="models")
admin_model_version = rule("admin_model_version", model_version_resource, role="admin")
read_job = rule("read_job", job_resource, role="annotator", scope="read")
read_loop_run = rule("read_loop_run", loop_run_resource, role="annotator", scope="read")
admin_loop_run = rule("admin_loop_run", loop_run_resource, role="admin")
admin_job = rule("admin_job", job_resource, role="admin")

page_signed_in = rule("page_signed_in", global_resource, role="annotator", page=True)
page_reviewer = rule("page_reviewer", global_resource, role="reviewer", page=True)
page_admin = rule("page_admin", global_resource, role="admin", page=True)
page_label_project = rule("page_label_project", project_resource, role="annotator", page=True)
page_review_project = rule("page_review_project", project_resource, role="reviewer", page=True)
page_review_job = rule("page_review_job", job_resource, role="reviewer", page=True)

# The caller, for handlers that need it (routes that do not, declare `dependencies=[Depends(rule)]`).
CatalogueReader = Annotated[Caller, Depends(read_catalogue)]
SignedInUser = Annotated[User, Depends(signed_in)]
Admin = Annotated[User, Depends(admin)]
ProjectLabeler = Annotated[User, Depends(label_project)]
ProjectReviewer = Annotated[User, Depends(review_project)]
ProjectAdmin = Annotated[User, Depends(admin_project)]
ItemLabeler = Annotated[User, Depends(label_item)]
ItemReviewer = Annotated[User, Depends(review_item)]
AnnotationLabeler = Annotated[User, Depends(undo_annotation)]
ModelVersionAdmin = Annotated[User, Depends(admin_model_version)]
LoopRunAdmin = Annotated[User, Depends(admin_loop_run)]
PageUser = Annotated[User, Depends(page_signed_in)]
PageReviewer = Annotated[User, Depends(page_reviewer)]
PageAdmin = Annotated[User, Depends(page_admin)]
LabelPageUser = Annotated[User, Depends(page_label_project)]
DashboardReviewer = Annotated[User, Depends(page_review_project)]
JobPageReviewer = Annotated[User, Depends(page_review_job)]


def access_rules_of(dependant) -> list[AccessRule]:
    """The access rules a route's dependency tree declares (the route test reads it)."""
    found = [dependant.call.access_rule] if hasattr(dependant.call, "access_rule") else []
    for sub in dependant.dependencies:
        found += [r for r in access_rules_of(sub) if r not in found]
    return found
