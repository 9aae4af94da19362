"""Settings, read once from the environment (``HIE_*``).

Nothing else in hie reads ``os.environ``.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from collections import Counter
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import platformdirs
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from hie.errors import ConfigError

if TYPE_CHECKING:
    from hie.subscriptions.endpoints import EndpointPolicy

MiB = 1024 * 1024

# Every HIE_SECRET_KEY value shown as an example in deploy/, docs/ or the README: a key copied
# from there is public. A test scans those files so that this list keeps up with them.
EXAMPLE_SECRET_KEYS = frozenset({"change-me-to-a-long-random-value"})
MIN_SECRET_BYTES = 32
# A rough floor on the key's entropy: its length times the Shannon entropy of its characters.
# secrets.token_urlsafe(32) scores about 220 bits, token_hex(32) about 250.
MIN_SECRET_BITS = 128


def secret_key_problem(key: str) -> str | None:
    """Why ``key`` is too weak to sign sessions, or None. Rough by design: it catches placeholders,
    short keys and keys of a few repeated characters, not every guessable phrase."""
    if key in EXAMPLE_SECRET_KEYS or "change-me" in key.lower() or "changeme" in key.lower():
        return "is an example value from the documentation"
    if len(key.encode()) < MIN_SECRET_BYTES:
        return f"is shorter than {MIN_SECRET_BYTES} bytes"
    counts = Counter(key)
    per_char = -sum(n / len(key) * math.log2(n / len(key)) for n in counts.values())
    bits = max(0.0, per_char * len(key))
    if len(counts) < 8 or bits < MIN_SECRET_BITS:
        return f"has too little entropy (about {bits:.0f} bits, at least {MIN_SECRET_BITS} needed)"
    return None


def _default_data_dir() -> Path:
    return platformdirs.user_data_path("hie", appauthor=False)


class Settings(BaseSettings):
    """Everything an operator can set. With no database URL hie runs on an embedded PostgreSQL."""

    model_config = SettingsConfigDict(env_prefix="HIE_", frozen=True, extra="ignore")

    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Folder for the embedded PostgreSQL and local state.",
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="postgresql:// URL of the database; unset runs an embedded PostgreSQL.",
    )
    broker_url: SecretStr | None = Field(
        default=None,
        description="amqp:// URL of RabbitMQ; unset runs tasks in-process.",
    )
    task_queue: str = Field(default="hie", description="Name of the Celery queue.")
    events_exchange: str = Field(
        default="hie.events",
        description="RabbitMQ topic exchange the relay publishes record events to.",
    )
    timezone: str = Field(default="Asia/Shanghai", description="Time zone of months and days.")
    secret_key: SecretStr | None = Field(
        default=None,
        description="Key that signs session cookies; generated and kept in the data folder "
        "only in the embedded development mode.",
    )
    max_request_bytes: int = Field(default=20 * MiB, gt=0, description="Largest accepted body.")
    max_import_bytes: int = Field(
        default=1024 * MiB,
        gt=0,
        description="Largest body of a bulk upload (POST /fhir/$import, POST /cda/batch); each "
        "item in it is still held to HIE_MAX_REQUEST_BYTES.",
    )
    max_import_items: int = Field(
        default=1_000_000, gt=0, description="Most items (lines, zip entries) in one bulk upload."
    )
    max_bundle_entries: int = Field(
        default=10_000, gt=0, description="Most entries in one transaction or batch Bundle."
    )
    # HAPI FHIR JPA's defaults: a write whose literal reference names a missing resource is
    # refused (400), and so is the delete of a resource others still reference (409).
    enforce_referential_integrity_on_write: bool = Field(
        default=True,
        description="Refuse a FHIR create, update or patch whose relative reference points to a "
        "resource this institution does not have (HAPI's default).",
    )
    enforce_referential_integrity_on_delete: bool = Field(
        default=True,
        description="Refuse (409) deleting a FHIR resource that other resources still reference.",
    )
    allow_multiple_delete: bool = Field(
        default=False,
        description="Let a conditional delete (DELETE /fhir/<Type>?criteria) remove more than one "
        "resource; without it, several matches are 412 (HAPI's default).",
    )
    max_multiple_delete: int = Field(
        default=100,
        gt=0,
        description="Most resources one conditional delete may remove when multiple deletes are "
        "allowed; more matches are 412.",
    )
    cda_schema: Path | None = Field(
        default=None,
        description="An XML Schema for CDA R2 (e.g. HL7's normative CDA.xsd or CDA_SDTC.xsd) to "
        "use instead of the built-in one.",
    )
    web_workers: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Worker processes of hie serve; unset: one per core the process may use, at "
        "most 8 (validation is CPU work: one process uses one core).",
    )
    db_pool_min: int = Field(default=1, ge=0)
    db_pool_max: int = Field(default=10, gt=0)

    # When a dependency is down, a request is answered 503 with Retry-After within these bounds
    # instead of hanging; both also bound what /healthz waits for.
    db_timeout: float = Field(
        default=3.0,
        gt=0,
        le=60,
        description="Seconds a request waits for a database connection (from the pool, or a new "
        "one) before it is answered 503 Service Unavailable.",
    )
    broker_timeout: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="Seconds to connect to the broker when queueing a task before the request is "
        "answered 503 Service Unavailable.",
    )

    # Any token holder names a Subscription's endpoint, and the deliverer sends from inside the
    # platform's network: without a limit a token could reach loopback, the cloud metadata
    # service or a private network (hie/subscriptions/endpoints.py).
    subscription_endpoints: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Where FHIR Subscriptions may deliver, comma-separated (or a JSON list): URL "
        "prefixes (https://hooks.example.org/fhir/; the only way to allow http), hosts "
        "(hooks.example.org, *.example.org) and networks whose addresses may be delivered to "
        "(10.20.0.0/16). Empty: any https endpoint whose addresses are all public.",
    )

    @field_validator("subscription_endpoints", mode="before")
    @classmethod
    def _endpoint_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("subscription_endpoints")
    @classmethod
    def _endpoint_entries(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from hie.subscriptions.endpoints import EndpointPolicy  # stdlib only: no cycle

        EndpointPolicy.of(value)  # a bad entry fails at start, naming it
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @property
    def embedded(self) -> bool:
        """True when hie runs its own PostgreSQL in the data folder."""
        return self.database_url is None

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def endpoint_policy(self) -> EndpointPolicy:
        """``subscription_endpoints`` read into the policy both the API and the deliverer
        apply."""
        from hie.subscriptions.endpoints import policy_of

        return policy_of(tuple(self.subscription_endpoints))

    @property
    def embedded_pgdata(self) -> Path:
        return self.data_dir / "postgres"

    def session_secret(self) -> str:
        """The cookie-signing key. Outside embedded mode it must be configured explicitly, and a
        configured key must be strong (not an example, not short, not a few repeated characters)."""
        if self.secret_key is not None:
            key = self.secret_key.get_secret_value()
            problem = secret_key_problem(key)
            if problem is not None:
                raise ConfigError(
                    f"HIE_SECRET_KEY {problem}. Set a random key, for example the output of "
                    "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'."
                )
            return key
        if not self.embedded:
            raise ConfigError(
                "HIE_SECRET_KEY is not set. It is generated automatically only for the embedded "
                "development database; with HIE_DATABASE_URL set, configure a random key of at "
                f"least {MIN_SECRET_BYTES} bytes, for example the output of "
                "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'."
            )
        path = self.data_dir / "secret_key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()


def default_web_workers() -> int:
    """One web process per core this process may run on, at most 8."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(8, cores or 1))


def load_settings() -> Settings:
    """Read the settings, turning a bad environment into one readable error."""
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"HIE_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from None
