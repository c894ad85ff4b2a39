"""Security headers on every kind of response, and templates that need no inline script to work."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.core.security_headers import PAGE_CSP
from app.main import create_app
from app.web.templating import FRONTEND_DIR

EXPECTED = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
}


def assert_secured(response) -> None:
    for name, value in EXPECTED.items():
        assert response.headers.get(name) == value, (response.request.url, name)
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_pages_json_errors_static_files_and_crashes_all_carry_the_headers(app) -> None:
    @app.get("/crash-for-test")
    def crash() -> None:
        raise RuntimeError("boom")

    client = TestClient(app, raise_server_exceptions=False)
    responses = [
        client.get("/login"),
        client.get("/healthz"),
        client.get("/api/v1/auth/me"),
        client.post("/api/v1/auth/login", json={}),
        client.get("/api/v1/no-such-route"),
        client.get("/static/app.css"),
        client.get("/", follow_redirects=False),
        client.get("/crash-for-test"),
    ]
    assert [r.status_code for r in responses] == [200, 200, 401, 422, 404, 200, 303, 500]
    for response in responses:
        assert_secured(response)
    assert responses[0].headers["content-security-policy"] == PAGE_CSP
    assert "script-src 'self';" in PAGE_CSP and "unsafe-inline" not in PAGE_CSP.split("style-src-attr")[0]
    assert "strict-transport-security" not in responses[0].headers


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_https_deployments_also_get_hsts(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"secure_cookies": True}))
    try:
        response = TestClient(app).get("/healthz")
        assert response.headers["strict-transport-security"].startswith("max-age=")
        assert_secured(response)
    finally:
        app.state.engine.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_api_docs_page_gets_its_own_policy_and_still_forbids_framing(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert "cdn.jsdelivr.net" in response.headers["content-security-policy"]
    assert_secured(response)


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.I)
EVENT_HANDLER = re.compile(r"<[^>]*\son[a-z]+\s*=", re.I)
JS_URL = re.compile(r"javascript:", re.I)


def test_no_template_has_inline_script_event_handlers_or_javascript_urls() -> None:
    offenders = []
    for template in sorted((FRONTEND_DIR / "templates").rglob("*.html")):
        text = template.read_text()
        for pattern in (INLINE_SCRIPT, EVENT_HANDLER, JS_URL):
            offenders += [f"{template.name}: {m.group(0)[:60]}" for m in pattern.finditer(text)]
    assert offenders == []
