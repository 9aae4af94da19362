"""Settings: the environment, safe defaults, and secrets that have none outside development."""

from __future__ import annotations

from pathlib import Path

import pytest

from hie.config import Settings, load_settings
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
    configured = Settings(database_url="postgresql://db/hie", secret_key="k" * 40)
    assert configured.session_secret() == "k" * 40
