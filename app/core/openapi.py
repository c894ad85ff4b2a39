"""The OpenAPI document tells the truth about errors: one error body, and the statuses each route can return.

FastAPI documents only 422, with a body shape Hardcase never sends. The statuses added here are derived from
what the route is made of, so a new route is documented without extra work:
- every operation: 422 (bad parameters or body, or text the edge refuses: app.core.limits);
- operations with a body: 400 (unparseable), 413 (over max_body_bytes), 409 (conflicts with stored data);
- a declared access rule (app.auth.permissions): 401 and 403, plus 404 when the rule locates a resource;
- path parameters: 404; the database in the dependency tree: 503 (database unavailable, with Retry-After).
Statuses a route declares itself (`responses=`) are kept, and given the error body when they have none.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel

from app.core.errors import ErrorBody

ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
DESCRIPTIONS = {
    400: "The body could not be parsed",
    401: "No valid session or API key",
    403: "The caller may not do this (role, key scope or CSRF token)",
    404: "No such resource, or it belongs to a project the caller cannot see",
    409: "Conflicts with stored data",
    413: "The request body is larger than the limit",
    422: "A parameter or body field is invalid; `errors` names each field",
    503: "The database is unavailable; retry after the Retry-After header's seconds",
}
BODY_METHODS = {"post", "put", "patch"}


def install_error_documentation(app: FastAPI) -> None:
    generate = app.openapi
    documented: list[dict] = []

    def openapi() -> dict[str, Any]:
        schema = generate()  # FastAPI's cached document, rebuilt when routes change
        if not documented or documented[0] is not schema:
            document_errors(app, schema)
            documented[:] = [schema]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def document_errors(app: FastAPI, schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(_components_of(ErrorBody))
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    for route in _api_routes(app):
        for method in route.methods:
            operation = schema["paths"].get(route.path_format, {}).get(method.lower())
            if operation is not None:
                _document_operation(operation, route, method.lower())


def _api_routes(app: FastAPI) -> list[Any]:
    return [
        context
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute) and context.include_in_schema
    ]


def _document_operation(operation: dict[str, Any], route: Any, method: str) -> None:
    responses = operation.setdefault("responses", {})
    declared = {int(status) for status in responses if status.isdigit() and int(status) >= 400}
    for status in sorted(statuses_of(route, method) | declared):
        entry = responses.setdefault(str(status), {"description": DESCRIPTIONS.get(status, "Error")})
        content = entry.setdefault("content", {}).setdefault("application/json", {})
        schema = content.get("schema")
        if schema is None or schema.get("$ref", "").endswith("/HTTPValidationError"):
            content["schema"] = ERROR_REF
        if status == 503:
            entry["headers"] = {"Retry-After": {"description": "seconds", "schema": {"type": "integer"}}}


def statuses_of(route: Any, method: str) -> set[int]:
    from app.auth.permissions import access_rules_of  # permissions imports the app's models

    statuses = {422}
    if method in BODY_METHODS:
        statuses |= {400, 409, 413}
    if route.dependant.path_params:
        statuses.add(404)
    for rule in access_rules_of(route.dependant):
        if rule.role is not None:
            statuses |= {401, 403}
            if rule.resource != "global":
                statuses.add(404)
    if _uses_database(route.dependant):
        statuses.add(503)
    return statuses


def _uses_database(dependant: Dependant) -> bool:
    from app.deps import get_session

    return dependant.call is get_session or any(_uses_database(sub) for sub in dependant.dependencies)


def _components_of(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    return {model.__name__: schema, **schema.pop("$defs", {})}
