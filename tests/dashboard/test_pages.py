"""The dashboard without a browser: sign-in, CSRF, sessions, permissions, pages and exports."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from hie.app import create_app
from hie.storage import open_database
from hie.storage.tokens import create_token, revoke_token

API = "/api/reports/completeness"
REALM_RULE = "cda.header.realm"  # the rule of the rejected uploads in conftest.build_region


@pytest.fixture
def client(site: Any) -> Iterator[TestClient]:
    with TestClient(create_app(site.settings), follow_redirects=False) as test_client:
        yield test_client


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field in the page"
    return found.group(1)


def sign_in(client: TestClient, token: str, next_page: str = "/dashboard") -> None:
    form = client.get("/dashboard/login")
    answer = client.post(
        "/dashboard/login",
        data={"csrf": csrf_of(form.text), "token": token, "next": next_page},
    )
    assert answer.status_code == 303, answer.text


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_pages_need_a_session(client: TestClient) -> None:
    for path in ("/dashboard", "/dashboard/institutions/H1", "/dashboard/tables/C0002"):
        answer = client.get(path, params={"month": "2019-07"})
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/dashboard/login?next=")
    assert client.get("/dashboard", params={"export": "csv", "table": "all"}).status_code == 303


def test_sign_in_checks_csrf_origin_and_token(client: TestClient, site: Any) -> None:
    form = client.get("/dashboard/login")
    assert form.status_code == 200 and form.headers["content-security-policy"]
    csrf = csrf_of(form.text)
    token = site.tokens["regulator"]
    no_csrf = client.post("/dashboard/login", data={"token": token})
    assert no_csrf.status_code == 400 and "hie_session" not in no_csrf.headers.get("location", "")
    wrong = client.post("/dashboard/login", data={"token": token, "csrf": csrf + "x"})
    assert wrong.status_code == 400
    foreign = client.post(
        "/dashboard/login",
        data={"token": token, "csrf": csrf},
        headers={"Origin": "https://elsewhere.example"},
    )
    assert foreign.status_code == 400
    # The failed attempts issued a fresh session: take the CSRF token of the latest form.
    csrf = csrf_of(client.get("/dashboard/login").text)
    bad = client.post("/dashboard/login", data={"token": "hie_nope", "csrf": csrf})
    assert bad.status_code == 401 and "令牌无效" in bad.text
    good = client.post(
        "/dashboard/login", data={"token": token, "csrf": csrf, "next": "//elsewhere.example/x"}
    )
    assert good.status_code == 303 and good.headers["location"] == "/dashboard"
    cookie = good.headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
    assert token not in cookie
    assert client.get("/dashboard").status_code == 200


def test_sign_out_needs_csrf_and_ends_the_session(client: TestClient, site: Any) -> None:
    sign_in(client, site.tokens["admin"])
    page = client.get("/dashboard")
    assert client.post("/dashboard/logout", data={}).status_code == 400
    assert client.get("/dashboard").status_code == 200
    out = client.post("/dashboard/logout", data={"csrf": csrf_of(page.text)})
    assert out.status_code == 303
    assert client.get("/dashboard").status_code == 303


def test_a_forged_or_revoked_session_is_refused(client: TestClient, site: Any) -> None:
    database = open_database(site.settings)
    try:
        with database.transaction() as tx:
            token_id, token = create_token(
                tx.conn, role="regulator", institution_code=None, label="", actor="t"
            )
        sign_in(client, token)
        assert client.get("/dashboard").status_code == 200
        cookie = client.cookies.get("hie_session", path="/dashboard")
        assert cookie
        client.cookies.set("hie_session", cookie[:-3] + "AAA", path="/dashboard")
        assert client.get("/dashboard").status_code == 303
        client.cookies.set("hie_session", cookie, path="/dashboard")
        assert client.get("/dashboard").status_code == 200
        with database.transaction() as tx:
            revoke_token(tx.conn, token_id, actor="t")
        assert client.get("/dashboard").status_code == 303
    finally:
        database.close()


def test_a_submitter_sees_only_its_own_institution(client: TestClient, site: Any) -> None:
    sign_in(client, site.tokens["submitter"])
    home = client.get("/dashboard")
    assert home.status_code == 303 and home.headers["location"].endswith("/institutions/H1")
    own = client.get("/dashboard/institutions/H1", params={"month": "2019-07"})
    assert own.status_code == 200 and "南京鼓楼医院" in own.text
    assert "/dashboard/tables/" not in own.text  # table pages list other institutions
    for path in ("/dashboard/institutions/H3", "/dashboard/tables/C0002"):
        denied = client.get(path, params={"month": "2019-07"})
        assert denied.status_code == 403 and "无权" in denied.text
    export = client.get(
        "/dashboard/institutions/H3",
        params={"month": "2019-07", "export": "csv", "table": "tables"},
    )
    assert export.status_code == 403


def test_overview_exports_equal_the_report_api(client: TestClient, site: Any) -> None:
    sign_in(client, site.tokens["regulator"])
    for table, kind in (("all", None), ("district", "district"), ("hospital", "hospital")):
        for fmt in ("csv", "xlsx"):
            for lang in ("zh", "en"):
                mine = client.get(
                    "/dashboard",
                    params={"month": "2019-07", "export": fmt, "table": table, "lang": lang},
                )
                params = {"month": "2019-07", "format": fmt, "lang": lang}
                if kind:
                    params["kind"] = kind
                api = client.get(API, params=params, headers=bearer(site.tokens["regulator"]))
                assert mine.status_code == api.status_code == 200
                assert mine.headers["content-type"] == api.headers["content-type"]
                if fmt == "csv":
                    assert mine.content == api.content
                else:
                    assert _cells(mine.content) == _cells(api.content)


def _cells(xlsx: bytes) -> list[list[list[object]]]:
    book = load_workbook(io.BytesIO(xlsx))
    return [[list(row) for row in sheet.iter_rows(values_only=True)] for sheet in book.worksheets]


def test_overview_marks_flags_no_reply_and_sorts(client: TestClient, site: Any) -> None:
    sign_in(client, site.tokens["regulator"])
    page = client.get("/dashboard", params={"month": "2019-07"}).text
    assert "2019年7月卫生信息平台数据采集情况（区）" in page
    assert '<th scope="col"' in page and '<th scope="row"' in page
    assert "未反馈" in page  # H2 and D2 never declared
    assert 'class="flagged"' in page and "flag.undeclared-tables" in page
    assert "合计" in page and 'id="cumulative"' in page
    ordered = client.get("/dashboard", params={"month": "2019-07", "sort": "records", "dir": "asc"})
    hospitals = ordered.text.split('id="table-hospital"')[1]
    codes = re.findall(r'<tr data-institution="([^"]+)"', hospitals)
    assert codes == ["H2", "H1", "H3"]
    assert 'aria-sort="ascending"' in ordered.text
    # The completeness bars' colours are explained beside the table.
    legend = page.split('class="legend bar-legend"')[1].split("</ul>")[0]
    assert "已上传的声明表占比" in legend
    assert all(f"swatch bar-{level}" in legend for level in ("good", "fair", "poor"))


def test_institution_page_and_its_exports(client: TestClient, site: Any) -> None:
    sign_in(client, site.tokens["regulator"])
    page = client.get("/dashboard/institutions/H1", params={"month": "2019-07", "lang": "en"})
    assert page.status_code == 200 and page.headers["set-cookie"].startswith("hie_lang=en")
    html = page.text
    assert 'data-table="C0001" data-status="missing"' in html
    assert 'data-table="FHIR.Patient" data-status="undeclared"' in html
    assert 'data-table="C0002" data-status="ok"' in html
    assert REALM_RULE in html and "realmCode is US" in html
    assert html.count('class="chart-card"') == 9  # the person figures are districts' only
    # The district is linked by its name (the code beside it), not by its code alone.
    assert re.search(
        r'href="/dashboard/institutions/D1\?month=2019-07" class="district-link">玄武区</a>', html
    )
    assert 'data-day="29" data-records="1"' in html
    for grid in ("tables", "calendar", "trends", "rejections", "timeliness"):
        csv = client.get(
            "/dashboard/institutions/H1",
            params={"month": "2019-07", "export": "csv", "table": grid},
        )
        assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
        xlsx = client.get(
            "/dashboard/institutions/H1",
            params={"month": "2019-07", "export": "xlsx", "table": grid},
        )
        assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"
    rejections = client.get(
        "/dashboard/institutions/H1",
        params={"month": "2019-07", "export": "csv", "table": "rejections"},
    )
    assert rejections.content.decode("utf-8-sig").splitlines()[1:] == [
        f"{REALM_RULE},1,realmCode is US"
    ]
    assert client.get("/dashboard/institutions/NOPE").status_code == 404


def test_table_page_lists_uploaders_and_silent_declarers(client: TestClient, site: Any) -> None:
    sign_in(client, site.tokens["regulator"])
    c0002 = client.get("/dashboard/tables/C0002", params={"month": "2019-07"}).text
    uploaders = c0002.split('id="uploaders-table"')[1].split("</table>")[0]
    assert re.findall(r'data-institution="([^"]+)"', uploaders) == ["H3", "H1"]
    c0053 = client.get("/dashboard/tables/C0053", params={"month": "2019-07"}).text
    silent = c0053.split('id="silent-table"')[1].split("</table>")[0]
    assert re.findall(r'data-institution="([^"]+)"', silent) == ["H3"]
    csv = client.get(
        "/dashboard/tables/C0053",
        params={"month": "2019-07", "export": "csv", "table": "silent"},
    )
    assert csv.content.decode("utf-8-sig").splitlines()[1] == "H3,南京市儿童医院,医院,D2"
    assert client.get("/dashboard/tables/NOPE").status_code == 404


def test_an_empty_platform_says_no_report_has_been_computed(settings: Any) -> None:
    database = open_database(settings)
    try:
        with database.transaction() as tx:
            _, token = create_token(
                tx.conn, role="admin", institution_code=None, label="", actor="t"
            )
    finally:
        database.close()
    with TestClient(create_app(settings), follow_redirects=False) as client:
        sign_in(client, token)
        page = client.get("/dashboard")
        assert page.status_code == 200 and "尚未计算任何月度报告" in page.text
        assert client.get("/dashboard", params={"month": "2019-13"}).status_code == 400


def test_chinese_pages_offer_a_readable_way_out_without_a_chinese_font(
    client: TestClient, site: Any
) -> None:
    # Without a CJK font every Chinese label is boxes: the way to English must be in Latin script.
    sign_in(client, site.tokens["regulator"])
    page = client.get("/dashboard", params={"month": "2019-07", "lang": "zh"}).text
    note = re.search(r'<footer class="font-note" lang="en">(.*?)</footer>', page, re.S)
    assert note, "no font note on a Chinese page"
    assert not re.search(r"[\u3400-\u9fff]", note.group(1))
    assert "lang=en" in note.group(1)
    english = client.get("/dashboard", params={"month": "2019-07", "lang": "en"}).text
    assert "font-note" not in english


@pytest.mark.parametrize(
    "url",
    [
        "/dashboard?month=0001-01",
        "/dashboard?month=9999-12",
        "/dashboard/institutions/H1?month=0001-01",
        "/dashboard/institutions/H1?month=9999-12",
        "/dashboard/tables/C0001?month=1899-12",
        "/dashboard/tables/C0001?month=9999-12",
    ],
)
def test_months_out_of_range_are_refused(client: TestClient, site: Any, url: str) -> None:
    sign_in(client, site.tokens["regulator"])
    answer = client.get(url)
    assert answer.status_code == 400, answer.text[:300]
    assert url.rsplit("=", 1)[1] in answer.text  # the page names the month it could not show


def test_unstorable_characters_in_dashboard_urls_are_refused(client: TestClient, site: Any) -> None:
    sign_in(client, site.tokens["regulator"])
    for url in ("/dashboard/institutions/H%001", "/dashboard?month=2019-0%007&sort=a"):
        answer = client.get(url)
        assert answer.status_code == 400, (url, answer.text[:300])
