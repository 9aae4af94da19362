"""Settings: the environment, safe defaults, and secrets that have none outside development."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest

from hie.app import create_app
from hie.config import EXAMPLE_SECRET_KEYS, Settings, load_settings
from hie.errors import ConfigError


def test_defaults_run_embedded_in_process_in_shanghai_time() -> None:
    settings = Settings()
    assert settings.embedded and settings.broker_url is None
    assert settings.timezone == "Asia/Shanghai"
    assert settings.max_request_bytes > 0 and settings.max_bundle_entries > 0


def test_environment_sets_everything(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HIE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HIE_DATABASE_URL", "postgresql://hie:pw@db/hie")
    monkeypatch.setenv("HIE_BROKER_URL", "amqp://hie:pw@mq//")
    monkeypatch.setenv("HIE_TIMEZONE", "UTC")
    monkeypatch.setenv("HIE_MAX_REQUEST_BYTES", "1000")
    settings = load_settings()
    assert settings.data_dir == tmp_path
    assert not settings.embedded and settings.broker_url is not None
    assert settings.max_request_bytes == 1000
    # Secrets are masked wherever settings are printed or logged.
    assert "pw" not in repr(settings) and "pw" not in str(settings.model_dump())


def test_bad_environment_is_one_readable_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIE_TIMEZONE", "Mars/Olympus")
    monkeypatch.setenv("HIE_MAX_REQUEST_BYTES", "lots")
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert "HIE_TIMEZONE" in str(error.value) and "HIE_MAX_REQUEST_BYTES" in str(error.value)


def test_session_secret_is_generated_only_in_embedded_mode(tmp_path: Path) -> None:
    embedded = Settings(data_dir=tmp_path)
    secret = embedded.session_secret()
    assert len(secret) >= 32 and embedded.session_secret() == secret
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0

    production = Settings(data_dir=tmp_path / "p", database_url="postgresql://db/hie")
    with pytest.raises(ConfigError, match="HIE_SECRET_KEY"):
        production.session_secret()
    key = secrets.token_urlsafe(48)
    configured = Settings(database_url="postgresql://db/hie", secret_key=key)
    assert configured.session_secret() == key


CHECKOUT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "key",
    [
        "change-me-to-a-long-random-value",  # deploy/hie.env.example's placeholder
        "s" * 40,  # one character repeated
        "abcd" * 10,  # a few characters repeated
        secrets.token_urlsafe(16),  # random but short
        "prefix-change-me-with-a-random-value-of-length",  # an edited placeholder
    ],
)
def test_a_weak_or_example_secret_key_refuses_to_start(key: str, tmp_path: Path) -> None:
    # A publicly known key lets anyone sign cookies; it is refused in every mode.
    for database_url in ("postgresql://db/hie", None):
        settings = Settings(database_url=database_url, data_dir=tmp_path, secret_key=key)
        with pytest.raises(ConfigError, match="HIE_SECRET_KEY"):
            settings.session_secret()
        with pytest.raises(ConfigError, match="HIE_SECRET_KEY"):
            create_app(settings)  # the web process does not start


def test_random_keys_of_the_documented_recipes_are_accepted() -> None:
    for key in (secrets.token_urlsafe(48), secrets.token_urlsafe(32), secrets.token_hex(32)):
        settings = Settings(database_url="postgresql://db/hie", secret_key=key)
        assert settings.session_secret() == key


def _documented_keys() -> dict[str, str]:
    """Every literal HIE_SECRET_KEY value in the shipped documentation and deployment files."""
    found = {}
    files = [CHECKOUT / "README.md", CHECKOUT / "DEVELOPERS.md"]
    files += [p for folder in ("deploy", "docs") for p in (CHECKOUT / folder).rglob("*")]
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        pattern = r"HIE_SECRET_KEY\s*[=:]\s*[\"']?([^\s\"'`|]+)"
        for value in re.findall(pattern, text):
            if not value.startswith("$"):  # a command substitution makes a fresh key
                found[value] = str(path.relative_to(CHECKOUT))
    return found


def test_every_example_key_in_the_repository_is_refused() -> None:
    documented = _documented_keys()
    assert "change-me-to-a-long-random-value" in documented  # the scan does find them
    assert set(documented) <= EXAMPLE_SECRET_KEYS, documented
    for key in documented:
        with pytest.raises(ConfigError):
            Settings(database_url="postgresql://db/hie", secret_key=key).session_secret()
