"""The record browser: a clinician finds a resident and reads her records across institutions
only under her consent or by break-glass, every access in the audit trail and in her access
history, through the same decision as the FHIR API."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hie.app import create_app
from hie.audit import flush_reads
from hie.config import Settings
from hie.consent.service import access_history
from hie.storage import Database, open_database
from tests.conftest import CdaFixtures
from tests.dashboard.residents_region import (
    CHEN_CARD,
    CHEN_ID,
    DISCHARGE,
    Region,
    build_region,
    csrf_of,
    set_consent,
    sign_in,
)


@pytest.fixture
def database(settings: Settings) -> Iterator[Database]:
    database = open_database(settings)
    yield database
    database.close()


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def region(client: TestClient, database: Database, cda: CdaFixtures) -> Region:
    return build_region(client, database, cda)


def find(client: TestClient, **fields: str) -> Any:
    form = client.get("/dashboard/residents")
    assert form.status_code == 200, form.text
    return client.post("/dashboard/residents", data={"csrf": csrf_of(form.text), **fields})


def timeline(client: TestClient, region: Region, reason: str | None = None) -> Any:
    url = f"/dashboard/residents/{region.person}"
    if reason is None:
        return client.get(url)
    page = client.get(url)
    return client.post(url, data={"csrf": csrf_of(page.text), "reason": reason})


def document_url(region: Region) -> str:
    return f"/dashboard/residents/{region.person}/records/H1/{DISCHARGE.replace('^', '%5E')}"


def main(html: str) -> str:
    return html[html.index("<main") : html.index("</main>")]


def entries(database: Database, action: str) -> list[dict[str, Any]]:
    flush_reads()
    with database.connection() as conn:
        rows = conn.execute(
            "select * from audit_event where action = %s order by id", (action,)
        ).fetchall()
    return [dict(r) for r in rows]


def test_a_clinician_reads_another_hospitals_document_only_while_consent_is_granted(
    client: TestClient, database: Database, region: Region
) -> None:
    sign_in(client, region.tokens["clinician_h2"])
    found = find(client, system="resident-id", value=CHEN_ID)
    assert found.status_code == 200
    assert f'data-person="{region.person}"' in found.text
    assert 'data-institution="H2" data-access="own"' in found.text
    assert 'data-institution="H1"' not in found.text  # H1 holds her records: not said

    page = timeline(client, region)
    assert page.status_code == 200
    assert 'data-record="Encounter/visit-1"' in page.text
    assert 'data-record="Bundle/doc1" data-access="own"' in page.text  # a FHIR document
    assert DISCHARGE not in page.text and "鼓楼医院" not in page.text
    refused = client.get(document_url(region))
    missing = client.get(document_url(region).replace("0002", "0009"))
    assert refused.status_code == missing.status_code == 403
    assert main(refused.text) == main(missing.text)  # a refusal tells nothing

    set_consent(client, region, "active")
    page = timeline(client, region)
    assert f'data-institution="H1" data-record="{DISCHARGE}" data-access="consent"' in page.text
    # Newest first: H2's visit of August before H1's discharge summary of July.
    assert page.text.index("Encounter/visit-1") < page.text.index(DISCHARGE)
    row = page.text[page.text.index(f'data-record="{DISCHARGE}"') :]
    assert "出院小结" in row and "2019-07-20" in row, main(page.text)
    opened = client.get(document_url(region))
    assert opened.status_code == 200
    assert "<h1>出院小结</h1>" in opened.text and "陈静" in opened.text

    set_consent(client, region, "inactive")
    assert DISCHARGE not in timeline(client, region).text
    assert client.get(document_url(region)).status_code == 403

    history = [e["action"] for e in _history(database, region)]
    assert history.count("dashboard.resident.document") == 4  # refused, opened, refused again
    opened_entry = [
        e for e in entries(database, "dashboard.resident.document") if e["detail"].get("consents")
    ]
    assert opened_entry[0]["detail"]["consents"] == ["H1/Consent/chen-share"]
    assert opened_entry[0]["detail"]["resources"] == [f"H1:{DISCHARGE}"]


def test_a_fhir_document_opens_in_the_browser_through_the_same_access_decision(
    client: TestClient, database: Database, region: Region
) -> None:
    url = f"/dashboard/residents/{region.person}/records/H2/Bundle%2Fdoc1"  # as linked
    sign_in(client, region.tokens["clinician_h2"])
    page = timeline(client, region)
    row = page.text[page.text.index('data-record="Bundle/doc1"') :]
    assert f'href="{url}"' in row[: row.index("</tr>")]  # it can be opened
    opened = client.get(url)
    assert opened.status_code == 200, opened.text
    assert "<h1>门（急）诊病历</h1>" in opened.text
    assert "<h2>主诉</h2><div>头痛三天</div>" in opened.text
    assert "女 female" in opened.text and "省人民医院" in opened.text and "李医生" in opened.text
    policy = opened.headers["content-security-policy"]
    assert "script-src" not in policy and "'unsafe-inline'" not in policy
    # Its one inline style block, and only that, is allowed (by its hash).
    style = opened.text.split("<style>", 1)[1].split("</style>", 1)[0]
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in policy
    [entry] = entries(database, "dashboard.resident.document")
    assert entry["detail"]["status"] == 200 and entry["detail"]["resources"] == ["H2:Bundle/doc1"]

    # At H1, without her consent for H1: refused as a missing document is; by break-glass: shown.
    sign_in(client, region.tokens["clinician_h1"])
    refused = client.get(url)
    assert refused.status_code == 403 and "头痛三天" not in refused.text
    form = timeline(client, region)
    glass = client.post(url, data={"csrf": csrf_of(form.text), "reason": "急诊 emergency"})
    assert glass.status_code == 200 and "头痛三天" in glass.text
    with database.connection() as conn:
        flagged = conn.execute("select target from break_glass order by id").fetchall()
    assert flagged[-1]["target"] == "H2:Bundle/doc1"
    opened_entries = entries(database, "dashboard.resident.document")
    assert [e["detail"]["status"] for e in opened_entries] == [200, 403, 200]
    assert opened_entries[-1]["detail"]["break_glass"] == "急诊 emergency"


def test_a_consent_granting_some_classes_shows_those_only(
    client: TestClient, region: Region
) -> None:
    sign_in(client, region.tokens["clinician_h2"])
    set_consent(client, region, "active", ("Condition",))
    assert DISCHARGE not in timeline(client, region).text
    assert client.get(document_url(region)).status_code == 403
    set_consent(client, region, "active", ("C0053",))  # the discharge summary's table
    assert f'data-record="{DISCHARGE}" data-access="consent"' in timeline(client, region).text
    assert client.get(document_url(region)).status_code == 200
    set_consent(client, region, "active", ("DocumentReference",))  # documents of any table
    assert client.get(document_url(region)).status_code == 200
    set_consent(client, region, "active", ("discharge",))  # its class in the MHD registry
    assert client.get(document_url(region)).status_code == 200


def _history(database: Database, region: Region) -> list[dict[str, Any]]:
    flush_reads()
    with database.connection() as conn:
        return access_history(conn, region.person)


def test_break_glass_needs_a_reason_shows_everything_and_is_flagged(
    client: TestClient, database: Database, region: Region
) -> None:
    sign_in(client, region.tokens["clinician_h2"])
    page = client.get(f"/dashboard/residents/{region.person}")
    blank = client.post(
        f"/dashboard/residents/{region.person}", data={"csrf": csrf_of(page.text), "reason": " "}
    )
    assert blank.status_code == 400 and DISCHARGE not in blank.text

    glass = timeline(client, region, reason="unconscious in the emergency room")
    assert glass.status_code == 200
    assert 'id="break-glass-notice"' in glass.text
    assert f'data-record="{DISCHARGE}" data-access="break-glass"' in glass.text
    opened = client.post(
        document_url(region),
        data={"csrf": csrf_of(glass.text), "reason": "unconscious in the emergency room"},
    )
    assert opened.status_code == 200 and "出院小结" in opened.text
    with database.connection() as conn:
        flagged = conn.execute(
            "select * from break_glass where reviewed_at is null order by id"
        ).fetchall()
    assert [(r["source_institution"], r["person_id"]) for r in flagged] == [
        ("H1", region.person),
        ("H1", region.person),
    ]
    assert flagged[1]["target"] == f"H1:{DISCHARGE}"
    views = [e for e in _history(database, region) if e["action"] == "dashboard.resident.timeline"]
    [entry] = [e for e in views if "break_glass" in e["detail"]]
    assert entry["detail"]["break_glass"] == "unconscious in the emergency room"
    assert f"H1:{DISCHARGE}" in entry["detail"]["resources"]
    # Without the reason again, the glass is whole: H1's document is hidden.
    assert DISCHARGE not in timeline(client, region).text
    # An administrator sees who read her records, the emergency flagged with its reason.
    sign_in(client, region.tokens["admin"])
    page = timeline(client, region)
    history = page.text[page.text.index('id="access-history"') :]
    assert 'data-action="dashboard.resident.document" class="break-glass"' in history
    assert "unconscious in the emergency room" in history
    assert entries(database, "person.access-history")[-1]["target"] == f"person/{region.person}"


def test_a_resident_found_by_demographics_or_a_card_and_only_by_those_who_may(
    client: TestClient, database: Database, region: Region
) -> None:
    sign_in(client, region.tokens["clinician_h2"])
    by_demographics = find(client, name="陈", birth="1989-06-30", gender="2")
    assert f'data-person="{region.person}"' in by_demographics.text
    assert find(client, name="陈", birth="1989-06-30", gender="1").text.count("data-person") == 0
    by_card = find(client, system="health-card", value=CHEN_CARD.lower())
    assert f'data-person="{region.person}"' in by_card.text
    bad = find(client, name="陈")
    assert bad.status_code == 400 and "data-person" not in bad.text
    # The look-up's audit entry names the person, never her ID number.
    flush_reads()
    with database.connection() as conn:
        logged = conn.execute("select detail::text as d from audit_event").fetchall()
    assert all(CHEN_ID not in r["d"] for r in logged)

    # H1's clinician knows her; D1 holds nothing of hers and is shown nothing of her.
    sign_in(client, region.tokens["clinician_h1"])
    by_id = find(client, system="resident-id", value=CHEN_ID)
    assert f'data-person="{region.person}"' in by_id.text
    assert client.get(f"/dashboard/residents/{region.person}").status_code == 200
    # An inpatient number means something at its own hospital only.
    by_number = find(client, system="inpatient", value="ZY201907100088")
    assert f'data-person="{region.person}"' in by_number.text
    sign_in(client, region.tokens["clinician_h2"])
    assert "data-person" not in find(client, system="inpatient", value="ZY201907100088").text
    sign_in(client, region.tokens["clinician_d1"])
    assert "data-person" not in find(client, system="resident-id", value=CHEN_ID).text
    nobody = client.get(f"/dashboard/residents/{region.person}")
    unknown = client.get(f"/dashboard/residents/{region.person + 100}")
    assert nobody.status_code == unknown.status_code == 403
    here, there = f"residents/{region.person}", f"residents/{region.person + 100}"
    assert main(nobody.text).replace(here, "") == main(unknown.text).replace(there, "")
    sign_in(client, region.tokens["admin"])
    admin = timeline(client, region)
    assert DISCHARGE in admin.text and "Encounter/visit-1" in admin.text


@pytest.mark.parametrize("role", ["regulator", "h1"])
def test_submitters_and_regulators_have_no_record_browser(
    client: TestClient, database: Database, region: Region, role: str
) -> None:
    sign_in(client, region.tokens[role])
    assert client.get("/dashboard/residents").status_code == 403
    assert client.get(f"/dashboard/residents/{region.person}").status_code == 403
    assert client.get(document_url(region)).status_code == 403
    assert DISCHARGE not in client.get(f"/dashboard/residents/{region.person}").text
    refused = entries(database, "dashboard.resident.timeline")
    assert refused and all(e["outcome"] == 4 and "persons" not in e["detail"] for e in refused)


def test_pages_in_english_too(client: TestClient, region: Region) -> None:
    sign_in(client, region.tokens["clinician_h2"])
    page = client.get(f"/dashboard/residents/{region.person}?lang=en")
    assert "Timeline of records" in page.text and "your institution" in page.text
    assert "Emergency access (break-glass)" in page.text
    zh = client.get(f"/dashboard/residents/{region.person}?lang=zh")
    assert "诊疗记录时间线" in zh.text and "紧急访问" in zh.text
