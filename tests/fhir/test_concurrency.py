"""Concurrent requests on the real server and PostgreSQL: identical conditional creates make one
resource; parallel updates with the same If-Match let exactly one through."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable

import httpx

from tests.hospitals import Tokens, auth

PARALLEL = 12


def fire(request: Callable[[httpx.Client], httpx.Response]) -> list[httpx.Response]:
    """Run ``request`` from PARALLEL threads released at the same moment."""
    barrier = threading.Barrier(PARALLEL)
    responses: list[httpx.Response] = []
    lock = threading.Lock()

    def run() -> None:
        with httpx.Client(timeout=60) as http:
            barrier.wait()
            response = request(http)
        with lock:
            responses.append(response)

    threads = [threading.Thread(target=run) for _ in range(PARALLEL)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return responses


def test_concurrent_conditional_creates_make_one_resource(live_server: str, tokens: Tokens) -> None:
    value = uuid.uuid4().hex
    condition = f"identifier=urn:oid:2.16.156.10011.1.2|{value}"
    patient = {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:2.16.156.10011.1.2", "value": value}],
    }
    headers = auth(tokens.h1, **{"If-None-Exist": condition})
    responses = fire(
        lambda http: http.post(f"{live_server}/Patient", json=patient, headers=headers)
    )
    assert Counter(r.status_code for r in responses) == {201: 1, 200: PARALLEL - 1}
    assert len({r.json()["id"] for r in responses}) == 1
    found = httpx.get(f"{live_server}/Patient?{condition}", headers=auth(tokens.h1)).json()
    assert found["total"] == 1

    # The same in transactions (ifNoneExist).
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:0e9a4e4e-0000-4000-8000-000000000001",
                "resource": {
                    **patient,
                    "identifier": [{**patient["identifier"][0], "value": value + "t"}],
                },
                "request": {"method": "POST", "url": "Patient", "ifNoneExist": condition + "t"},
            }
        ],
    }
    responses = fire(lambda http: http.post(live_server, json=bundle, headers=auth(tokens.h1)))
    statuses = Counter(r.json()["entry"][0]["response"]["status"] for r in responses)
    assert statuses == {"201 Created": 1, "200 OK": PARALLEL - 1}


def test_parallel_updates_with_one_version_let_one_through(
    live_server: str, tokens: Tokens
) -> None:
    pid = f"race-{uuid.uuid4().hex[:8]}"
    url = f"{live_server}/Patient/{pid}"
    assert (
        httpx.put(
            url, json={"resourceType": "Patient", "id": pid}, headers=auth(tokens.h1)
        ).status_code
        == 201
    )
    counter = iter(range(PARALLEL))
    lock = threading.Lock()

    def update(http: httpx.Client) -> httpx.Response:
        with lock:
            n = next(counter)
        body = {"resourceType": "Patient", "id": pid, "birthDate": f"19{n + 10}-01-01"}
        return http.put(url, json=body, headers=auth(tokens.h1, **{"If-Match": 'W/"1"'}))

    responses = fire(update)
    assert Counter(r.status_code for r in responses) == {200: 1, 412: PARALLEL - 1}

    # Without If-Match every change is kept, as consecutive versions.
    def blind(http: httpx.Client) -> httpx.Response:
        with lock:
            n = next(more)
        body = {"resourceType": "Patient", "id": pid, "birthDate": f"20{n + 10}-01-01"}
        return http.put(url, json=body, headers=auth(tokens.h1))

    more = iter(range(PARALLEL))
    responses = fire(blind)
    assert all(r.status_code == 200 for r in responses)
    versions = sorted(int(r.headers["etag"][3:-1]) for r in responses)
    assert versions == list(range(3, 3 + PARALLEL))
