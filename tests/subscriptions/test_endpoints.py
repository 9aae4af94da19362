"""Where a Subscription may deliver (HIE_SUBSCRIPTION_ENDPOINTS): refused on write with the place
in the OperationOutcome, and refused at delivery when the name resolves somewhere not allowed;
what is allowed is sent to the checked address, never resolved a second time."""

from __future__ import annotations

import re
import socket
import ssl
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from hie.app import create_app
from hie.config import Settings
from hie.errors import ConfigError
from hie.storage.subscriptions import NewSubscription, insert_subscription
from hie.subscriptions.deliverer import Deliverer
from hie.subscriptions.endpoints import EndpointPolicy
from tests.hospitals import Tokens, auth
from tests.subscriptions.conftest import Subscriber, subscription
from tests.subscriptions.test_matching import events, post, send_all

ANY_PUBLIC = EndpointPolicy()

NOT_PUBLIC = [
    "https://127.0.0.1/hook",
    "https://127.1/hook",  # 127.0.0.1, as the C library reads it
    "https://2130706433/hook",  # 127.0.0.1 as one number
    "https://localhost:8443/hook",
    "https://169.254.169.254/latest/meta-data/",  # cloud metadata
    "https://10.1.2.3/hook",
    "https://172.16.0.9/hook",
    "https://192.168.1.1/hook",
    "https://100.64.0.1/hook",  # carrier-grade NAT
    "https://0.0.0.0/hook",
    "https://[::1]/hook",
    "https://[fd00::1]/hook",  # fc00::/7
    "https://[fe80::1]/hook",
    "https://[::ffff:127.0.0.1]/hook",
    "https://[64:ff9b::a00:1]/hook",  # NAT64 of 10.0.0.1
]


def test_by_default_any_public_https_endpoint_and_nothing_else() -> None:
    assert ANY_PUBLIC.problem("https://hooks.example.org/fhir?key=x") is None
    assert ANY_PUBLIC.problem("https://93.184.216.34:8443/") is None
    assert ANY_PUBLIC.problem("https://[::1/hook") is not None  # no URL at all
    http = ANY_PUBLIC.problem("http://hooks.example.org/fhir")
    assert http is not None and "https" in http
    for endpoint in NOT_PUBLIC:
        assert ANY_PUBLIC.problem(endpoint) is not None, endpoint


def test_the_allow_list_takes_prefixes_hosts_and_networks() -> None:
    policy = EndpointPolicy.of(
        [
            "https://hooks.example.org/fhir",
            "http://192.0.2.10:8080/in/",
            "*.city.example",
            "exact.example.net",
            "10.20.0.0/16",
        ]
    )
    allowed = [
        "https://hooks.example.org/fhir",
        "https://hooks.example.org:9443/fhir/Observation/1",  # no port in the entry: any
        "http://192.0.2.10:8080/in/x",  # http only where a prefix says so
        "https://a.b.city.example/h",
        "https://exact.example.net/h",
        "https://10.20.3.4/h",  # a listed network, written as an address
    ]
    refused = [
        "http://hooks.example.org/fhir",  # the entry says https
        "https://hooks.example.org/fhirevil",  # not at a segment boundary
        "https://hooks.example.org/other",
        "https://hooks.example.org.attacker.example/fhir",
        "https://hooks.example.org@attacker.example/fhir",
        "http://192.0.2.10:8081/in/x",  # another port than the entry's
        "https://city.example/h",  # *. is below the domain
        "http://a.city.example/h",
        "https://sub.exact.example.net/h",
        "https://10.21.0.1/h",
        "https://public.example.com/h",  # a list: only what it names
    ]
    for endpoint in allowed:
        assert policy.problem(endpoint) is None, endpoint
    for endpoint in refused:
        assert policy.problem(endpoint) is not None, endpoint
    for bad in ("ftp://x.example/", "https://a.example/?q=1", "*.*.example", "a/b", "https://"):
        with pytest.raises(ValueError, match=re.escape(repr(bad))):
            EndpointPolicy.of([bad])


def resolving(table: dict[str, list[str]]) -> Any:
    """A resolver answering from ``table`` (as DNS would, one address per entry)."""

    def resolve(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in table[host]
        ]

    return resolve


def test_every_address_a_name_resolves_to_must_be_allowed() -> None:
    names = {
        "hooks.example.org": ["93.184.216.34"],
        "metadata.example.org": ["169.254.169.254"],
        "mixed.example.org": ["93.184.216.34", "10.0.0.7"],
        "inside.city.example": ["10.20.1.5"],
    }
    resolver = resolving(names)
    addresses, why = ANY_PUBLIC.resolve("https://hooks.example.org/h", resolver)
    assert [str(a) for a in addresses] == ["93.184.216.34"] and why is None
    for host, address in (("metadata", "169.254.169.254"), ("mixed", "10.0.0.7")):
        addresses, why = ANY_PUBLIC.resolve(f"https://{host}.example.org/h", resolver)
        assert addresses == [] and why is not None and address in why
    inside = EndpointPolicy.of(["inside.city.example", "10.20.0.0/16"])
    addresses, why = inside.resolve("https://inside.city.example/h", resolver)
    assert [str(a) for a in addresses] == ["10.20.1.5"] and why is None
    with pytest.raises(socket.gaierror, match="not known"):
        ANY_PUBLIC.resolve("https://unknown.example.org/h", resolver)


def test_a_bad_entry_in_the_setting_fails_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    from hie.config import load_settings

    monkeypatch.setenv("HIE_SUBSCRIPTION_ENDPOINTS", "https://ok.example/, ftp://bad.example/")
    with pytest.raises(ConfigError, match=re.escape("ftp://bad.example/")):
        load_settings()
    monkeypatch.setenv("HIE_SUBSCRIPTION_ENDPOINTS", '["https://ok.example/", "10.0.0.0/8"]')
    assert load_settings().subscription_endpoints == ("https://ok.example/", "10.0.0.0/8")


def test_an_endpoint_the_policy_refuses_is_a_400_at_the_endpoint(
    sub_settings: Settings, tokens: Tokens
) -> None:
    default = sub_settings.model_copy(update={"subscription_endpoints": ()})
    with TestClient(create_app(default)) as client:
        h1 = auth(tokens.h1)
        for endpoint in ("http://hooks.example.org/h", "https://169.254.169.254/latest"):
            answer = client.post("/fhir/Subscription", json=subscription(endpoint), headers=h1)
            assert answer.status_code == 400, endpoint
            assert answer.json()["resourceType"] == "OperationOutcome"
            issue = answer.json()["issue"][0]
            assert issue["expression"] == ["Subscription.channel.endpoint"], endpoint
        fine = subscription("https://hooks.example.org/h")
        assert client.post("/fhir/Subscription", json=fine, headers=h1).status_code == 201
        sid = client.post("/fhir/Subscription", json=fine, headers=h1).json()["id"]
        moved = {**subscription("https://10.0.0.1/h"), "id": sid}
        answer = client.put(f"/fhir/Subscription/{sid}", json=moved, headers=h1)
        assert answer.status_code == 400
        assert answer.json()["issue"][0]["expression"] == ["Subscription.channel.endpoint"]


def test_the_name_is_resolved_once_and_checked_before_anything_is_sent(
    client: TestClient,
    tokens: Tokens,
    sub_settings: Settings,
    deliverer: Deliverer,
    subscriber: Subscriber,
) -> None:
    port = subscriber.url.rsplit(":", 1)[1]
    # hook.test resolves to the subscriber on 127.0.0.1, which only the network entry allows.
    allowed = EndpointPolicy.of([f"http://hook.test:{port}/", "127.0.0.1"])
    deliverer.endpoints = allowed
    deliverer.resolver = resolving({"hook.test": ["127.0.0.1"]})
    settings = sub_settings.model_copy(
        update={"subscription_endpoints": (f"http://hook.test:{port}/",)}
    )
    with TestClient(create_app(settings)) as named:
        body = subscription(f"http://hook.test:{port}/in", "Observation?code=http://loinc.org|1-8")
        answer = named.post("/fhir/Subscription", json=body, headers=auth(tokens.h1))
        assert answer.status_code == 201, answer.text
        sid = answer.json()["id"]
    deliverer.activate()
    post(client, tokens.h1, "1-8", "n1")
    for event in events(deliverer.database):
        deliverer.handle(event)
    send_all(deliverer)
    # Sent to the checked address; the name only in the Host header (no DNS knows hook.test).
    [got] = subscriber.received
    assert got.method == "PUT" and got.path.startswith("/in/Observation/")
    assert got.headers["Host"] == f"hook.test:{port}"

    # The same name now resolves to the loopback address, which the policy does not allow: not
    # sent, and the subscription is in error with the reason.
    deliverer.endpoints = EndpointPolicy.of([f"http://hook.test:{port}/"])
    post(client, tokens.h1, "1-8", "n2")
    for event in events(deliverer.database):
        deliverer.handle(event)
    send_all(deliverer)
    assert len(subscriber.received) == 1
    erred = client.get(f"/fhir/Subscription/{sid}", headers=auth(tokens.h1)).json()
    assert erred["status"] == "error"
    assert "resolves to 127.0.0.1, which is not a public address" in erred["error"]


def test_a_redirect_is_not_followed(
    client: TestClient, tokens: Tokens, deliverer: Deliverer, subscriber: Subscriber
) -> None:
    body = subscription(f"{subscriber.url}/r", "Observation?code=http://loinc.org|1-8")
    sid = client.post("/fhir/Subscription", json=body, headers=auth(tokens.h1)).json()["id"]
    deliverer.activate()
    post(client, tokens.h1, "1-8", "r1")
    for event in events(deliverer.database):
        deliverer.handle(event)
    subscriber.fail, subscriber.failure = 1, 307
    send_all(deliverer)
    assert subscriber.received == []  # nothing arrived at /elsewhere
    erred = client.get(f"/fhir/Subscription/{sid}", headers=auth(tokens.h1)).json()
    assert erred["status"] == "error" and "HTTP 307" in erred["error"]


def certificate(name: str) -> tuple[bytes, bytes, bytes]:
    """A CA's certificate, and a key and certificate it signed for ``name`` (PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)

    def build(subject: str, key: Any, issuer: str, signer: Any, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = build("test CA", ca_key, "test CA", ca_key, True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = build(name, key, "test CA", ca_key, False)
    pem = serialization.Encoding.PEM
    return (
        ca.public_bytes(pem),
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        leaf.public_bytes(pem),
    )


@pytest.mark.parametrize("certified", ["hook.test", "other.test"])
def test_over_https_the_certificate_is_checked_against_the_name_not_the_address(
    certified: str,
    client: TestClient,
    tokens: Tokens,
    deliverer: Deliverer,
    tmp_path: Any,
) -> None:
    ca, key, leaf = certificate(certified)
    (tmp_path / "key.pem").write_bytes(key)
    (tmp_path / "cert.pem").write_bytes(leaf)
    hosts: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            hosts.append(str(self.headers.get("Host")))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    serving.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server.socket = serving.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        # hook.test is allowed by name; it resolves to 127.0.0.1, which a network entry allows.
        deliverer.endpoints = EndpointPolicy.of(["hook.test", "127.0.0.1"])
        deliverer.resolver = resolving({"hook.test": ["127.0.0.1"]})
        endpoint = f"https://hook.test:{port}/in"
        body = subscription(endpoint, "Observation?code=http://loinc.org|1-8")
        with deliverer.database.transaction() as tx:  # the API's allow-list is another one
            owner = tx.conn.execute("select id from access_token where role = 'admin'").fetchone()
            assert owner is not None
            insert_subscription(
                tx.conn,
                NewSubscription(
                    "tls",
                    owner["id"],
                    body,
                    "requested",
                    "Observation",
                    body["criteria"],
                    endpoint,
                    "application/fhir+json",
                    [],
                ),
            )
        deliverer.activate()
        post(client, tokens.h1, "1-8", "t1")
        for event in events(deliverer.database):
            deliverer.handle(event)
        trusting = ssl.create_default_context(cadata=ca.decode())
        with httpx.Client(timeout=5, verify=trusting) as http:
            assert deliverer.send_due(http) == 1
        with deliverer.database.connection() as conn:
            row = conn.execute("select state, last_error from subscription_delivery").fetchone()
    finally:
        server.shutdown()
        server.server_close()
    if certified == "hook.test":
        assert hosts == [f"hook.test:{port}"] and row == {"state": "sent", "last_error": None}
    else:  # a certificate for another name: refused, as it would be without the pinning
        assert hosts == [] and row == {"state": "pending", "last_error": "ConnectError"}
