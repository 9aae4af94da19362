"""What the access decision costs a read: a clinician's read of another institution's record
under the resident's consent, against the same clinician role reading its own institution's
record (no decision), alternating rounds in one run on the same data.

Each of ``--patients`` residents has a Patient and a Condition at H1 and an active Consent
granting H2 (stored through the FHIR API in transaction Bundles). A clinician at H1 reads
``Condition/c<n>`` (baseline); a clinician at H2 reads the same with ``X-HIE-Institution: H1``:
the resource's person, the resident's consents and the decision on top. In-process (no network).
Run:

    .venv/bin/python -m benchmarks.consent_reads [--patients 1000] [--rounds 6] [--requests 300]

It makes a scratch database on HIE_TEST_POSTGRES_URL (default: the local server) and drops it.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from benchmarks.scratch import enrol, scratch_database, settings_for
from hie.app import create_app
from hie.registry import Institution


def _resources(n: int) -> list[dict[str, Any]]:
    patient = {
        "resourceType": "Patient",
        "id": f"p{n}",
        "identifier": [{"system": "urn:oid:2.16.156.10011.1.19", "value": f"HC{n:07d}"}],
        "name": [{"text": f"某{n}"}],
        "gender": "male",
        "birthDate": "1960-01-01",
    }
    condition = {
        "resourceType": "Condition",
        "id": f"c{n}",
        "code": {"text": "高血压"},
        "subject": {"reference": f"Patient/p{n}"},
    }
    consent = {
        "resourceType": "Consent",
        "id": f"k{n}",
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/p{n}"},
        "policyRule": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}
            ]
        },
        "provision": {
            "actor": [
                {
                    "role": {"text": "recipient"},
                    "reference": {
                        "identifier": {"system": "urn:oid:2.16.156.10011.1.5", "value": "H2"}
                    },
                }
            ]
        },
    }
    return [patient, condition, consent]


def _load(client: TestClient, headers: dict[str, str], patients: int) -> None:
    for start in range(0, patients, 100):
        entries = [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
            for n in range(start, min(start + 100, patients))
            for r in _resources(n)
        ]
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        answer = client.post("/fhir", json=bundle, headers=headers)
        if answer.status_code != 200:
            raise SystemExit(f"loading failed: {answer.status_code} {answer.text[:500]}")


def _round(
    client: TestClient, headers: dict[str, str], patients: int, count: int, seed: int
) -> list[float]:
    rng = random.Random(seed)  # noqa: S311 (test data, not secrets)
    times = []
    for _ in range(count):
        url = f"/fhir/Condition/c{rng.randrange(patients)}"
        began = time.perf_counter()
        answer = client.get(url, headers=headers)
        times.append(time.perf_counter() - began)
        if answer.status_code != 200:
            raise SystemExit(f"{url}: {answer.status_code} {answer.text[:500]}")
    return times


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=6, help="rounds of each kind, alternated")
    parser.add_argument("--requests", type=int, default=300, help="requests per round")
    args = parser.parse_args()

    with scratch_database("hie_bench_consent") as url, tempfile.TemporaryDirectory() as data:
        settings = settings_for(url, Path(data))
        tokens = enrol(
            settings,
            [Institution(code, "医院", "hospital") for code in ("H1", "H2")],
            {
                "submitter": ("submitter", "H1"),
                "own": ("clinician", "H1"),
                "other": ("clinician", "H2"),
            },
        )
        own = {"Authorization": f"Bearer {tokens['own']}"}
        other = {"Authorization": f"Bearer {tokens['other']}", "X-HIE-Institution": "H1"}
        with TestClient(create_app(settings)) as client:
            began = time.perf_counter()
            _load(client, {"Authorization": f"Bearer {tokens['submitter']}"}, args.patients)
            print(f"{args.patients} residents stored in {time.perf_counter() - began:.1f} s")
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("analyze")
            _round(client, own, args.patients, 50, 0)  # warm-up
            _round(client, other, args.patients, 50, 0)
            timings: dict[str, list[float]] = {"own": [], "consented": []}
            for r in range(args.rounds * 2):
                key = "own" if r % 2 == 0 else "consented"
                headers = own if key == "own" else other
                timings[key] += _round(client, headers, args.patients, args.requests, r // 2 + 1)

    base = statistics.median(timings["own"]) * 1000
    decided = statistics.median(timings["consented"]) * 1000
    print(f"{len(timings['own'])} reads of each kind")
    print(f"own institution (no decision): median {base:.2f} ms  (baseline)")
    print(f"another institution, consented: median {decided:.2f} ms")
    print(f"ratio: x{decided / base:.3f} ({(decided / base - 1) * 100:+.1f} %)")


if __name__ == "__main__":
    main()
