"""Security headers: answers that may hold clinical or personal data are never cached nor
content-sniffed, errors included; dashboard pages allow no script at all."""

from __future__ import annotations

import re

from fastapi import Request
from fastapi.testclient import TestClient

from hie.app import create_app
from hie.config import Settings
from hie.dashboard import STATIC
from hie.storage import open_database
from hie.storage.tokens import create_token


def _private(response, what: str) -> None:
    assert response.headers.get("cache-control") == "no-store", what
    assert response.headers.get("x-content-type-options") == "nosniff", what


def test_every_api_fhir_cda_and_dashboard_answer_is_no_store_and_nosniff(
    settings: Settings,
) -> None:
    database = open_database(settings)
    try:
        with database.transaction() as tx:
            _, token = create_token(
                tx.conn, role="admin", institution_code=None, label="", actor="t"
            )
    finally:
        database.close()
    bearer = {"Authorization": f"Bearer {token}"}
    small = settings.model_copy(update={"max_request_bytes": 1000})
    app = create_app(small)

    async def boom(request: Request) -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/api/boom", boom)
    with TestClient(app, follow_redirects=False, raise_server_exceptions=False) as client:
        answers = {
            "api 200": client.get("/api/institutions", headers=bearer),
            "api 401": client.get("/api/institutions"),
            "api 500": client.get("/api/boom"),
            "fhir 200": client.get("/fhir/Patient", headers=bearer),
            "fhir 401": client.get("/fhir/Patient/1"),
            "fhir 404": client.get("/fhir/Nothing/1", headers=bearer),
            "fhir metadata": client.get("/fhir/metadata"),
            "cda 401": client.post("/cda", content=b"<x/>"),
            "cda 413": client.post("/cda", content=b"x" * 2000, headers=bearer),
            "dashboard redirect": client.get("/dashboard"),
            "dashboard form": client.get("/dashboard/login"),
            "dashboard 400": client.post("/dashboard/logout", data={}),
            "dashboard static": client.get("/dashboard/static/dashboard.css"),
        }
        for what, response in answers.items():
            _private(response, what)
        assert answers["api 500"].status_code == 500
        assert answers["cda 413"].status_code == 413
        # Documentation and health hold nothing personal: cacheable, but never sniffed; and no
        # dashboard CSP on Swagger UI, which needs its inline script.
        for path in ("/healthz", "/docs"):
            response = client.get(path)
            assert response.headers["x-content-type-options"] == "nosniff"
            assert "content-security-policy" not in response.headers


def test_dashboard_pages_allow_no_script(settings: Settings) -> None:
    with TestClient(create_app(settings), follow_redirects=False) as client:
        for path in ("/dashboard/login", "/dashboard", "/dashboard/static/dashboard.css"):
            policy = client.get(path).headers["content-security-policy"]
            directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
            assert directives["default-src"] == "'none'"
            assert "script-src" not in directives  # falls back to default-src: none
            assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
            assert directives["frame-ancestors"] == "'none'"
    # Nothing in the templates would need script or inline style.
    templates = list((STATIC.parent / "templates").glob("*.html"))
    assert templates
    for template in templates:
        text = template.read_text(encoding="utf-8")
        assert not re.search(r"<script|\son[a-z]+\s*=|\sstyle\s*=|javascript:", text), template
