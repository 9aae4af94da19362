"""POST /fhir/$import without a broker: 202 at once, the job worked by the server's thread,
every line stored through the synchronous write path."""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient

from hie.jobs.runner import runner_of
from tests.hospitals import Tokens, auth
from tests.jobs.data import ndjson, resources

NDJSON = "application/fhir+ndjson"


def wait_done(client: TestClient, url: str, token: str) -> dict[str, Any]:
    runner = runner_of(client.app.state.database)  # type: ignore[attr-defined]
    assert runner is not None and runner.wait(120)
    answer = client.get(url, headers=auth(token))
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_import_answers_202_then_a_summary_with_every_line_stored(
    client: TestClient, tokens: Tokens
) -> None:
    lines = resources(20)
    answer = client.post(
        "/fhir/$import", content=ndjson(lines), headers=auth(tokens.h1, **{"Content-Type": NDJSON})
    )
    assert answer.status_code == 202, answer.text
    url = answer.headers["Content-Location"]
    assert "/api/jobs/" in url
    summary = wait_done(client, url, tokens.h1)
    assert summary["state"] == "done"
    assert summary["items"] == 20 and summary["accepted"] == 20 and summary["rejected"] == 0
    # Stored as the synchronous API would: readable through /fhir.
    found = client.get("/fhir/Patient/p3", headers=auth(tokens.h1))
    assert found.status_code == 200
    encounters = client.get(
        "/fhir/Encounter", params={"_total": "accurate"}, headers=auth(tokens.h1)
    )
    assert encounters.json()["total"] == 10


def test_bad_lines_are_rejected_with_their_line_and_the_rest_stored(
    client: TestClient, tokens: Tokens
) -> None:
    good = resources(4)
    lines: list[Any] = [good[0], "{not json", good[1], {"resourceType": "Patient", "gender": "x"}]
    lines += ["", good[2], {"resourceType": "Basic"}, good[3]]
    answer = client.post(
        "/fhir/$import", content=ndjson(lines), headers=auth(tokens.h1, **{"Content-Type": NDJSON})
    )
    assert answer.status_code == 202
    url = answer.headers["Content-Location"]
    summary = wait_done(client, url, tokens.h1)
    assert (summary["accepted"], summary["rejected"]) == (4, 3)
    errors = client.get(summary["error"], headers=auth(tokens.h1)).json()["items"]
    assert [e["line"] for e in errors] == [2, 4, 7]
    assert all(e["outcome"]["resourceType"] == "OperationOutcome" for e in errors)
    assert errors[0]["status"] == 400 and errors[1]["status"] == 422


def test_a_second_run_of_the_same_items_stores_nothing_twice(
    client: TestClient, tokens: Tokens
) -> None:
    from uuid import UUID

    answer = client.post(
        "/fhir/$import",
        content=ndjson(resources(6)),
        headers=auth(tokens.h1, **{"Content-Type": NDJSON}),
    )
    url = answer.headers["Content-Location"]
    wait_done(client, url, tokens.h1)
    job = UUID(url.rsplit("/", 1)[1])
    runner = runner_of(client.app.state.database)  # type: ignore[attr-defined]
    assert runner is not None
    # The same message again (a redelivery): every item is already claimed.
    again = runner.processor.process(job, 1, 6)
    assert (again.done, again.skipped) == (0, 0)
    with client.app.state.database.connection() as conn:  # type: ignore[attr-defined]
        row = conn.execute(
            "select count(*) as n from record_head where institution_code = 'H1'"
        ).fetchone()
    assert row["n"] == 6


def test_import_scope_and_media_type(client: TestClient, tokens: Tokens) -> None:
    body = ndjson(resources(2))
    wrong = client.post("/fhir/$import", content=body, headers=auth(tokens.h1))
    assert wrong.status_code == 415
    other = client.post(
        "/fhir/$import",
        content=body,
        headers=auth(tokens.h1, **{"Content-Type": NDJSON, "X-HIE-Institution": "H2"}),
    )
    assert other.status_code == 403
    reader = client.post(
        "/fhir/$import",
        content=body,
        headers=auth(tokens.regulator, **{"Content-Type": NDJSON, "X-HIE-Institution": "H1"}),
    )
    assert reader.status_code == 403
    empty = client.post(
        "/fhir/$import", content=b"", headers=auth(tokens.h1, **{"Content-Type": NDJSON})
    )
    assert empty.status_code == 400
    answer = client.post(
        "/fhir/$import", content=body, headers=auth(tokens.h1, **{"Content-Type": NDJSON})
    )
    url = answer.headers["Content-Location"]
    # Another institution's submitter does not see the job.
    assert client.get(url, headers=auth(tokens.h2)).status_code == 404
    time.sleep(0)  # the job runs on; its own test waits for it
