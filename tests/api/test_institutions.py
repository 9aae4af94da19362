"""The registry over HTTP: tokens required, submitters confined to their own institution."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from hie.app import create_app
from hie.config import Settings
from hie.registry import Institution
from hie.storage import open_database
from hie.storage.institutions import add_institution
from hie.storage.tokens import create_token, revoke_token


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def tokens(settings: Settings) -> dict[str, str]:
    """Tokens of each role, and two hospitals H1 and H2 in district D1."""
    database = open_database(settings)
    try:
        with database.transaction() as tx:
            add_institution(tx.conn, Institution("D1", "江宁区", "district"), actor="test")
            for code in ("H1", "H2"):
                add_institution(
                    tx.conn, Institution(code, f"医院{code}", "hospital", "D1"), actor="test"
                )
            made = {
                "admin": create_token(
                    tx.conn, role="admin", institution_code=None, label="", actor="t"
                ),
                "regulator": create_token(
                    tx.conn, role="regulator", institution_code=None, label="", actor="t"
                ),
                "h1": create_token(
                    tx.conn, role="submitter", institution_code="H1", label="", actor="t"
                ),
                "revoked": create_token(
                    tx.conn, role="admin", institution_code=None, label="", actor="t"
                ),
            }
            revoke_token(tx.conn, made["revoked"][0], actor="t")
    finally:
        database.close()
    return {role: token for role, (_, token) in made.items()}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_requests_without_a_valid_token_get_401(client: TestClient, tokens: dict[str, str]) -> None:
    for headers in (
        {},
        auth("hie_not-a-token"),
        auth(tokens["revoked"]),
        {"Authorization": "Basic eDp5"},
    ):
        response = client.get("/api/institutions", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["resourceType"] == "OperationOutcome"
    assert client.get("/healthz").status_code == 200


def test_admin_registers_and_everyone_reads(client: TestClient, tokens: dict[str, str]) -> None:
    created = client.post(
        "/api/institutions",
        json={"code": "H3", "name": "南京市儿童医院", "kind": "hospital", "district": "D1"},
        headers=auth(tokens["admin"]),
    )
    assert created.status_code == 201
    assert created.headers["location"] == "/api/institutions/H3"
    assert created.json()["district"] == "D1"

    listed = client.get("/api/institutions", headers=auth(tokens["regulator"])).json()
    assert [i["code"] for i in listed] == ["H1", "H2", "H3", "D1"]
    hospitals = client.get(
        "/api/institutions",
        params={"kind": "hospital", "district": "D1"},
        headers=auth(tokens["regulator"]),
    ).json()
    assert [i["code"] for i in hospitals] == ["H1", "H2", "H3"]

    duplicate = client.post(
        "/api/institutions",
        json={"code": "H3", "name": "x", "kind": "hospital"},
        headers=auth(tokens["admin"]),
    )
    assert duplicate.status_code == 409

    renamed = client.patch(
        "/api/institutions/H3", json={"name": "儿童医院"}, headers=auth(tokens["admin"])
    )
    assert renamed.json()["name"] == "儿童医院" and renamed.json()["district"] == "D1"
    moved = client.patch(
        "/api/institutions/H3", json={"district": None}, headers=auth(tokens["admin"])
    )
    assert moved.json()["district"] is None


def test_only_admins_register(client: TestClient, tokens: dict[str, str]) -> None:
    body = {"code": "H9", "name": "x", "kind": "hospital"}
    for role in ("regulator", "h1"):
        response = client.post("/api/institutions", json=body, headers=auth(tokens[role]))
        assert response.status_code == 403
        assert response.json()["issue"][0]["code"] == "forbidden"


def test_a_submitter_acts_only_for_its_own_institution(
    client: TestClient, tokens: dict[str, str]
) -> None:
    h1 = auth(tokens["h1"])
    assert [i["code"] for i in client.get("/api/institutions", headers=h1).json()] == ["H1"]
    assert client.get("/api/institutions/H1", headers=h1).status_code == 200
    assert client.get("/api/institutions/H2", headers=h1).status_code == 403
    assert client.get("/api/institutions/H2/declaration", headers=h1).status_code == 403
    put_other = client.put(
        "/api/institutions/H2/declaration", json={"tables": ["C0001"]}, headers=h1
    )
    assert put_other.status_code == 403
    assert "cannot act for H2" in put_other.json()["issue"][0]["diagnostics"]

    own = client.put(
        "/api/institutions/H1/declaration", json={"tables": ["C0002", "C0001"]}, headers=h1
    )
    assert own.status_code == 200
    assert own.json()["declared"] == ["C0001", "C0002"]
    assert len(own.json()["required"]) == 53


def test_declarations_over_http(client: TestClient, tokens: dict[str, str]) -> None:
    admin, regulator = auth(tokens["admin"]), auth(tokens["regulator"])
    assert (
        client.get("/api/institutions/D1/declaration", headers=regulator).json()["declared"] is None
    )
    empty = client.put("/api/institutions/D1/declaration", json={"tables": []}, headers=admin)
    assert empty.json()["declared"] == []
    unknown = client.put(
        "/api/institutions/D1/declaration", json={"tables": ["HSDA00.01", "NOPE"]}, headers=admin
    )
    assert unknown.status_code == 422
    assert (
        unknown.json()["issue"][0]["diagnostics"] == "'NOPE' is not a table of the loaded catalog"
    )
    assert (
        client.put(
            "/api/institutions/D1/declaration", json={"tables": ["C0001"]}, headers=regulator
        ).status_code
        == 403
    )
    assert client.delete("/api/institutions/D1/declaration", headers=admin).status_code == 204
    assert (
        client.get("/api/institutions/D1/declaration", headers=regulator).json()["declared"] is None
    )
    assert client.get("/api/institutions/NOPE/declaration", headers=admin).status_code == 404


def test_csv_imports_over_http(client: TestClient, tokens: dict[str, str]) -> None:
    admin = {**auth(tokens["admin"]), "Content-Type": "text/csv"}
    bad = client.post(
        "/api/institutions/import", content=b"code,name,kind\nH4,x,clinic\n", headers=admin
    )
    assert bad.status_code == 422
    assert bad.json()["issue"][0]["location"] == ["request body, line 2"]
    assert bad.json()["issue"][0]["expression"] == ["kind"]
    ok = client.post(
        "/api/institutions/import",
        content="code,name,kind\nH4,新医院,hospital\n".encode(),
        headers=admin,
    )
    assert ok.json() == {"added": 1, "updated": 0, "declarations": 0}
    declared = client.post(
        "/api/institutions/declarations/import",
        content=b"institution,tables\nH4,C0001 C0053\n",
        headers=admin,
    )
    assert declared.json()["declarations"] == 1
    read = client.get("/api/institutions/H4/declaration", headers=admin).json()
    assert read["declared"] == ["C0001", "C0053"]


def test_invalid_bodies_get_located_operation_outcomes(
    client: TestClient, tokens: dict[str, str]
) -> None:
    response = client.post(
        "/api/institutions",
        json={"code": "H 5", "name": "x", "kind": "clinic"},
        headers=auth(tokens["admin"]),
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/fhir+json"
    expressions = {e for issue in response.json()["issue"] for e in issue["expression"]}
    assert expressions == {"body.code", "body.kind"}


def test_bodies_over_the_size_limit_get_413(
    database_url: str, tmp_path, tokens: dict[str, str]
) -> None:
    small = Settings(
        database_url=database_url,
        data_dir=tmp_path,
        secret_key=secrets.token_urlsafe(48),
        max_request_bytes=1000,
    )
    with TestClient(create_app(small)) as client:
        response = client.post(
            "/api/institutions/import",
            content=b"code,name,kind\n" + b"H1,x,hospital\n" * 200,
            headers={**auth(tokens["admin"]), "Content-Type": "text/csv"},
        )
    assert response.status_code == 413
    assert response.json()["issue"][0]["code"] == "too-long"


def test_openapi_documents_the_registry(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/api/institutions", "/api/institutions/{code}/declaration", "/api/catalog"} <= set(
        spec["paths"]
    )
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


def test_catalog_is_served(client: TestClient, tokens: dict[str, str]) -> None:
    tables = client.get("/api/catalog", headers=auth(tokens["h1"])).json()
    assert len(tables) == 109
    assert tables[0]["code"] == "C0001" and tables[0]["required_for"] == ["hospital"]
