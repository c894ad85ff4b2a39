"""The OpenAPI document describes the error body Hardcase really sends and the statuses each route returns."""

from __future__ import annotations

import pytest

from app.core.config import Settings
from app.core.errors import ErrorBody
from app.main import create_app

ERROR_REF = "#/components/schemas/ErrorBody"


@pytest.fixture(scope="module")
def document(tmp_path_factory) -> dict:
    data_dir = tmp_path_factory.mktemp("openapi")
    app = create_app(Settings(data_dir=data_dir, database_url=f"sqlite:///{data_dir / 'unused.db'}"))
    yield app.openapi()
    app.state.engine.dispose()


def operations(document: dict):
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield f"{method.upper()} {path}", operation


def test_every_error_response_has_the_one_error_body(document):
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for name, operation in operations(document):
        for status, response in operation["responses"].items():
            if status.startswith("4") or status == "503":
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": ERROR_REF}, (name, status)


def test_the_documented_422_is_the_shape_of_a_real_one(client):
    response = client.post("/api/v1/auth/login", json={"username": 5})
    assert response.status_code == 422
    ErrorBody.model_validate(response.json(), strict=True)


def test_each_route_documents_the_statuses_its_access_rule_and_parameters_can_return(document):
    paths = document["paths"]
    assert set(paths["/api/v1/projects/{project}"]["patch"]["responses"]) >= {
        "401", "403", "404", "409", "413", "422", "503",
    }  # fmt: skip
    assert set(paths["/api/v1/projects"]["get"]["responses"]) >= {"401", "403", "422", "503"}
    assert "404" not in paths["/api/v1/projects"]["get"]["responses"]
    login = paths["/api/v1/auth/login"]["post"]["responses"]
    assert "403" not in login and {"401", "413", "422", "503"} <= set(login)
    assert "Retry-After" in paths["/api/v1/projects"]["get"]["responses"]["503"]["headers"]


def test_ingest_documents_its_multi_status_body(document):
    response = document["paths"]["/api/v1/projects/{project}/predictions"]["post"]["responses"]["207"]
    assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/IngestSummary"}
