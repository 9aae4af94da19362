"""The dashboard in a real browser: Playwright driving Debian's Chromium against uvicorn (the
``browser`` and ``page`` fixtures are in conftest.py)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import httpx


def api(server: str, token: str, **params: str) -> httpx.Response:
    answer = httpx.get(
        f"{server}/api/reports/completeness",
        params=params,
        headers={"Authorization": f"Bearer {token}"},
    )
    answer.raise_for_status()
    return answer


def sign_in(page: Any, server: str, token: str) -> None:
    page.goto(f"{server}/dashboard")
    assert "/dashboard/login" in page.url
    page.fill("#token", token)
    page.click("#signin")
    page.wait_for_load_state()


def value(cell: Any) -> int:
    return int(cell.get_attribute("data-value"))


def check_overview_against_api(page: Any, report: dict[str, Any]) -> None:
    assert page.locator("tr[data-institution]").count() == len(report["rows"])
    for row in report["rows"]:
        tr = page.locator(f'tr[data-institution="{row["institution"]}"]')
        assert tr.locator("th a").inner_text() == row["name"]
        declared = "未反馈" if row["declared"] is None else str(row["declared"])
        cell = tr.locator('[data-key="declared_required"]').inner_text()
        assert cell == f"{declared}/{row['required']}"
        for key in (
            "uploaded_tables",
            "records",
            "upload_days",
            "outpatient_visits",
            "discharges",
            "rejected",
        ):
            assert value(tr.locator(f'[data-key="{key}"]')) == row[key], (row["institution"], key)
        if row["kind"] == "district":
            for key, expected in row["health_records"].items():
                assert value(tr.locator(f'[data-key="{key}"]')) == expected
        flags = tr.locator('[data-key="flags"]').inner_text()
        for flag in row["flags"]:
            assert flag["rule"] in tr.locator('[data-key="flags"]').inner_html(), flags
    for kind in ("district", "hospital"):
        rows = [r for r in report["rows"] if r["kind"] == kind]
        totals = page.locator(f"#table-{kind} tfoot tr")
        assert totals.locator("th").inner_text() == "合计"
        for key in ("records", "outpatient_visits", "discharges", "rejected"):
            assert value(totals.locator(f'[data-key="{key}"]')) == sum(r[key] for r in rows)
    assert value(page.locator("#cumulative")) == report["cumulative_records"]


def hospital_order(page: Any) -> list[str]:
    rows = page.locator("#table-hospital tbody tr")
    return [rows.nth(i).get_attribute("data-institution") for i in range(rows.count())]


def test_a_regulator_reads_sorts_drills_exports_and_signs_out(
    page: Any, server: str, site: Any, artifacts: Path
) -> None:
    token = site.tokens["regulator"]
    page.goto(f"{server}/dashboard")
    page.screenshot(path=artifacts / "signin.png")
    sign_in(page, server, token)
    assert page.url.endswith("/dashboard")
    assert page.locator("h1").inner_text() == "2019年7月卫生信息平台数据采集情况"
    page.screenshot(path=artifacts / "overview.png", full_page=True)

    report = api(server, token, month="2019-07").json()
    check_overview_against_api(page, report)

    # Sort by records with the keyboard: the header link is focusable and Enter follows it.
    records = {r["institution"]: r["records"] for r in report["rows"]}
    page.focus('#table-hospital thead a[data-sort="records"]')
    page.keyboard.press("Enter")
    page.wait_for_url("**sort=records**")
    assert hospital_order(page) == sorted(
        [c for c, r in records.items() if c.startswith("H")], key=lambda c: -records[c]
    )
    assert (
        page.locator('#table-hospital th[aria-sort="descending"] a').get_attribute("data-sort")
        == "records"
    )
    page.click('#table-hospital thead a[data-sort="records"]')
    assert hospital_order(page) == ["H2", "H1", "H3"]
    page.screenshot(path=artifacts / "overview-sorted.png", full_page=True)

    # Export the hospital table: the same bytes as the report API's CSV.
    with page.expect_download() as download:
        page.click('#hospital .exports a:has-text("CSV")')
    mine = Path(download.value.path()).read_bytes()
    theirs = api(server, token, month="2019-07", kind="hospital", format="csv").content
    assert mine == theirs
    assert next(csv.reader(io.StringIO(mine.decode("utf-8-sig"))))[0] == "接入单位"

    # The printed overview is a bulletin page: no navigation, no controls.
    page.emulate_media(media="print")
    assert not page.locator("header.top").is_visible()
    assert not page.locator(".month-picker").is_visible()
    page.screenshot(path=artifacts / "overview-print.png", full_page=True)
    page.emulate_media(media="screen")

    # Drill into an institution.
    page.click('#table-hospital tr[data-institution="H1"] th a')
    page.wait_for_url("**/dashboard/institutions/H1**")
    assert "南京鼓楼医院" in page.locator("h1").inner_text()
    assert page.locator('[data-table="C0001"]').get_attribute("data-status") == "missing"
    assert page.locator('[data-table="FHIR.Patient"]').get_attribute("data-status") == "undeclared"
    assert page.locator("#calendar td[data-records]").count() == 31
    assert page.locator("#trends svg").count() == 9
    assert "cda.header.realm" in page.locator("#rejection-table").inner_text()
    page.screenshot(path=artifacts / "institution.png", full_page=True)

    # ... and from its grid into a table.
    page.click('[data-table="C0002"] a')
    page.wait_for_url("**/dashboard/tables/C0002**")
    uploaders = page.locator("#uploaders-table tbody tr")
    assert [uploaders.nth(i).get_attribute("data-institution") for i in range(2)] == ["H3", "H1"]
    page.screenshot(path=artifacts / "table.png", full_page=True)
    page.goto(f"{server}/dashboard/tables/C0053?month=2019-07")
    assert page.locator("#silent-table tbody tr").get_attribute("data-institution") == "H3"

    # Switch to English; the choice sticks for the next page.
    page.goto(f"{server}/dashboard?month=2019-07")
    page.click("#language")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("h1").inner_text() == "Data collection, July 2019"
    page.goto(f"{server}/dashboard/institutions/D1?month=2019-07")
    assert page.locator("html").get_attribute("lang") == "en"
    assert "12-month trends" in page.content()
    page.screenshot(path=artifacts / "institution-en.png", full_page=True)
    page.goto(f"{server}/dashboard?month=2019-07")
    with page.expect_download() as download:
        page.click('.meta .exports a:has-text("CSV")')
    mine = Path(download.value.path()).read_bytes()
    assert mine == api(server, token, month="2019-07", format="csv", lang="en").content
    page.screenshot(path=artifacts / "overview-en.png", full_page=True)

    page.click("#signout")
    page.wait_for_url("**/dashboard/login")
    page.goto(f"{server}/dashboard")
    assert "/dashboard/login" in page.url


def test_a_submitter_cannot_open_another_institution(
    page: Any, server: str, site: Any, artifacts: Path
) -> None:
    sign_in(page, server, site.tokens["submitter"])
    assert "/dashboard/institutions/H1" in page.url
    page.screenshot(path=artifacts / "submitter-own.png", full_page=True)
    answer = page.goto(f"{server}/dashboard/institutions/H3?month=2019-07")
    assert answer.status == 403
    assert "无权查看此页面" in page.locator("main").inner_text()
    page.screenshot(path=artifacts / "submitter-forbidden.png")
