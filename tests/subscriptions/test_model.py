"""A Subscription read into what is delivered (pure), the criteria check shared with the search
API, and how `hie worker` runs the deliverer."""

from __future__ import annotations

from typing import Any

from hie.catalog import default_catalog_path, read_catalog
from hie.cli.worker import ROLES, commands
from hie.fhir.server import supported_types
from hie.storage.subscriptions import SubscriptionRow
from hie.subscriptions.model import backoff, header_pairs, read_spec, split_criteria
from hie.subscriptions.service import criteria_problem, sees

TYPES = supported_types(read_catalog(default_catalog_path()))


def resource(**channel: Any) -> dict[str, Any]:
    return {
        "resourceType": "Subscription",
        "status": "active",
        "reason": "r",
        "criteria": " Observation?code=http://loinc.org|8867-4&date=ge2019-07 ",
        "channel": {"type": "rest-hook", "endpoint": "https://s.example.org/h", **channel},
    }


def test_a_rest_hook_subscription_is_read_into_what_is_delivered() -> None:
    spec, problems = read_spec(resource(header=["Authorization: Bearer x", "X-A:b"]))
    assert problems == [] and spec is not None
    assert spec.status == "requested"  # the deliverer makes it active
    assert spec.resource_type == "Observation"
    assert spec.query == [("code", "http://loinc.org|8867-4"), ("date", "ge2019-07")]
    assert spec.payload is None  # notification only
    assert header_pairs(spec.headers) == {"Authorization": "Bearer x", "X-A": "b"}
    with_payload, _ = read_spec(resource(payload="application/fhir+json; charset=utf-8"))
    assert with_payload is not None and with_payload.payload == "application/fhir+json"


def test_every_problem_is_reported_with_its_place() -> None:
    bad = resource(type="websocket", endpoint="ftp://x", header=["no colon"])
    bad["status"] = "error"
    bad["criteria"] = "observation?code=x"
    spec, problems = read_spec(bad)
    assert spec is None
    assert [p.expression for p in problems] == [
        "Subscription.status",
        "Subscription.channel.type",
        "Subscription.channel.endpoint",
        "Subscription.channel.header[0]",
        "Subscription.criteria",
    ]


def test_criteria_are_checked_by_the_search_parser() -> None:
    assert (
        criteria_problem(*split_criteria("Observation?code=a|b&_lastUpdated=gt2020"), TYPES) is None
    )
    assert criteria_problem(*split_criteria("Observation?subject.name=Li"), TYPES) is None
    unknown = criteria_problem(*split_criteria("Observation?colour=red"), TYPES)
    assert unknown is not None and "Valid search parameters for this search are" in unknown
    bad_date = criteria_problem(*split_criteria("Encounter?date=soon"), TYPES)
    assert bad_date is not None and "not a FHIR date" in bad_date
    unserved = criteria_problem(*split_criteria("Account?status=active"), TYPES)
    assert unserved is not None and "not served here" in unserved


def test_retries_wait_longer_each_time_up_to_a_bound() -> None:
    assert [backoff(n, 2.0, 30.0) for n in range(1, 7)] == [2, 4, 8, 16, 30, 30]


def test_hie_worker_runs_the_deliverer_beside_the_others_and_alone() -> None:
    assert "subscriptions" in ROLES
    deliver = ["-m", "hie", "subscriptions", "deliver"]
    every = commands("p", "/d", only=None, queues=None, concurrency=None)
    assert [line[1:] for line in every if line[2] == "hie"] == [
        ["-m", "hie", "events", "relay"],
        deliver,
        ["-m", "hie", "forward", "run"],
    ]
    alone = commands("p", "/d", only="subscriptions", queues=None, concurrency=None)
    assert [line[1:] for line in alone] == [deliver]


def test_a_subscription_sees_what_its_owner_token_may_read() -> None:
    def owned_by(role: str, institution: str | None) -> SubscriptionRow:
        return SubscriptionRow(
            "s", "Observation", "Observation", "https://x", None, [], role, institution
        )

    assert sees(owned_by("submitter", "H1"), "H1") and not sees(owned_by("submitter", "H1"), "H2")
    assert not sees(owned_by("clinician", "H1"), "H2")  # consented reads are not delivered
    assert sees(owned_by("admin", None), "H2") and sees(owned_by("regulator", None), "H2")
