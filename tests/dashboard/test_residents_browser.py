"""The record browser in Chromium: a clinician at H2 finds a resident, sees only her own
hospital's entries, breaks the glass with a reason, opens H1's discharge summary, and opens her
FHIR outpatient record."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hie.app import create_app
from hie.config import Settings
from hie.server import BackgroundServer
from hie.storage import Database, open_database
from tests.conftest import CdaFixtures
from tests.dashboard.residents_region import CHEN_ID, DISCHARGE, Region, build_region

REASON = "昏迷送急诊 unconscious in the emergency room"


@pytest.fixture
def live(settings: Settings, cda: CdaFixtures) -> Iterator[tuple[str, Region, Database]]:
    database = open_database(settings)
    try:
        with BackgroundServer(create_app(settings)) as running:
            with httpx.Client(base_url=running.url) as http:
                region = build_region(http, database, cda)
            yield running.url, region, database
    finally:
        database.close()


def test_a_clinician_finds_a_resident_breaks_the_glass_and_opens_a_document(
    page: Any, live: tuple[str, Region, Database], artifacts: Path
) -> None:
    server, region, database = live
    page.goto(f"{server}/dashboard/residents")
    assert "/dashboard/login" in page.url
    page.fill("#token", region.tokens["clinician_h2"])
    page.click("#signin")
    page.wait_for_url("**/dashboard/residents")

    page.select_option("#system", "resident-id")
    page.fill("#value", CHEN_ID)
    page.click("#find")
    row = page.locator(f'#residents tr[data-person="{region.person}"]')
    assert row.locator("th a").inner_text() == "陈静"
    assert CHEN_ID not in page.url
    page.screenshot(path=artifacts / "residents-found.png", full_page=True)

    row.locator("th a").click()
    page.wait_for_url(f"**/dashboard/residents/{region.person}")
    entries = page.locator("#timeline tbody tr")
    assert entries.count() == 2  # her visit and her outpatient record, both at H2
    assert {entries.nth(i).get_attribute("data-access") for i in range(2)} == {"own"}
    assert "鼓楼医院" not in page.locator("main").inner_text()

    # Break the glass: a reason is required, then H1's discharge summary shows, flagged.
    page.click("#break-glass summary")
    page.click("#break-glass-submit")
    assert page.url.endswith(f"/dashboard/residents/{region.person}")
    assert page.locator("#break-glass-notice").count() == 0  # the browser asked for a reason
    page.fill("#reason", REASON)
    page.click("#break-glass-submit")
    page.wait_for_load_state()
    assert REASON in page.locator("#break-glass-notice").inner_text()
    flagged = page.locator(f'#timeline tr[data-record="{DISCHARGE}"]')
    assert flagged.get_attribute("data-access") == "break-glass"
    assert "紧急访问" in flagged.inner_text() and "出院小结" in flagged.inner_text()
    page.screenshot(path=artifacts / "resident-break-glass.png", full_page=True)

    flagged.locator("button.open").click()
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "出院小结"
    assert "陈静" in page.locator("dl").inner_text()
    page.screenshot(path=artifacts / "resident-document.png", full_page=True)

    # In English too.
    page.goto(f"{server}/dashboard/residents/{region.person}?lang=en")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("#timeline-title").inner_text().startswith("Timeline of records")
    assert page.locator("#timeline tbody tr").count() == 2  # no glass broken this time

    # Her outpatient record at H2 is a FHIR document: it opens as a page too.
    page.locator('#timeline tr[data-record="Bundle/doc1"] a.open').click()
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "门（急）诊病历"
    assert page.locator("section h2").inner_text() == "主诉"
    assert "头痛三天" in page.locator("section").inner_text()
    assert "省人民医院" in page.locator("dl").inner_text()
    page.screenshot(path=artifacts / "resident-fhir-document.png", full_page=True)

    with database.connection() as conn:
        flags = conn.execute("select target from break_glass order by id").fetchall()
    assert [f["target"] for f in flags] == [
        f"person/{region.person}/timeline",
        f"H1:{DISCHARGE}",
    ]
