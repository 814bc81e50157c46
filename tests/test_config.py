"""The settings table, config/digest.toml and the environment agree."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from digest.config import SECRETS, SETTINGS, load, render_toml
from digest.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config" / "digest.toml"


def test_config_file_shows_every_setting_with_its_default() -> None:
    data = tomllib.loads(CONFIG.read_text(encoding="utf-8"))
    flat = {f"{k}.{k2}" if isinstance(v, dict) else k: v2 if isinstance(v, dict) else v
            for k, v in data.items() for k2, v2 in (v.items() if isinstance(v, dict)
                                                     else [(k, v)])}
    table = {s.key: s.default for s in SETTINGS}
    assert flat == table, "config/digest.toml and digest/config.py SETTINGS drifted apart"


def test_config_file_is_what_the_table_renders() -> None:
    # Comments included: regenerate with `python -c "from digest.config import
    # render_toml; print(render_toml(), end='')" > config/digest.toml`.
    assert CONFIG.read_text(encoding="utf-8") == render_toml()


def test_every_setting_has_help_and_secrets_are_not_in_the_file() -> None:
    text = CONFIG.read_text(encoding="utf-8")
    for s in SETTINGS:
        assert s.help.strip(), s.key
        assert "password" not in s.name and "secret" not in s.name and "api_key" not in s.name
    for name in SECRETS:
        assert f"{name}:" in text  # documented in the header
        assert f"{name} =" not in text


def test_environment_overrides_file(tmp_path: Path) -> None:
    cfg = tmp_path / "d.toml"
    cfg.write_text('public_url = "https://news.example.org"\n[smtp]\nport = 2525\n')
    settings = load(cfg, env={"DIGEST_SMTP_PORT": "26", "DIGEST_DELIVERY_BACKEND": "smtp",
                              "DIGEST_DATABASE_URL": "sqlite:///x.db"})
    assert settings["public_url"] == "https://news.example.org"
    assert settings["smtp.port"] == 26
    assert settings["delivery.backend"] == "smtp"
    assert settings["database.url"] == "sqlite:///x.db"
    assert settings["smtp.host"] == "localhost"


def test_bad_values_say_which_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"smtp\.port"):
        load(None, env={"DIGEST_SMTP_PORT": "many"})
    cfg = tmp_path / "d.toml"
    cfg.write_text("[smtp]\nhots = 'x'\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'smtp\.hots'"):
        load(cfg, env={})
    cfg.write_text("[smtp\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(cfg, env={})
    with pytest.raises(ConfigError, match="not found"):
        load(tmp_path / "missing.toml", env={})


def test_secret_key_from_environment_or_made_once(tmp_path: Path) -> None:
    s = load(None, env={"DIGEST_DATA_DIR": str(tmp_path)})
    key = s.signing_key()
    assert len(key) >= 32
    assert (tmp_path / "secret.key").stat().st_mode & 0o077 == 0
    assert load(None, env={"DIGEST_DATA_DIR": str(tmp_path)}).signing_key() == key
    assert load(None, env={"DIGEST_SECRET_KEY": "k" * 40}).signing_key() == "k" * 40


@pytest.mark.parametrize("key", ["a", "x" * 31, "키" * 10])  # 30 bytes of Hangul
def test_a_weak_secret_key_is_refused_with_how_to_make_one(key: str) -> None:
    with pytest.raises(ConfigError, match="at least 32 bytes") as info:
        load(None, env={"DIGEST_SECRET_KEY": key})
    assert "DIGEST_SECRET_KEY" in str(info.value)
    assert "secrets.token_urlsafe(48)" in str(info.value)


def test_an_empty_key_file_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "secret.key").write_text("\n")
    with pytest.raises(ConfigError, match=r"secret\.key is empty") as info:
        load(None, env={"DIGEST_DATA_DIR": str(tmp_path)}).signing_key()
    assert "delete the file" in str(info.value)


@pytest.mark.parametrize(("name", "value", "says"), [
    ("MAX_ITEMS", "0", "from 1 to 1000"),
    ("MAX_ITEMS", "-3", "from 1 to 1000"),
    ("BRIEF_MAX", "-1", "from 0 to 10000"),
    ("LATE_HOURS", "-48", "from 0 to"),
    ("WINDOW_HOURS", "99999999", "from 1 to"),  # once an OverflowError at build time
    ("HTML_MAX_KB", "0", "from 20 to"),
])
def test_edition_numbers_out_of_range_are_refused_at_start(name: str, value: str,
                                                           says: str) -> None:
    """A nonsensical number is refused when the settings load, naming the setting, what
    it may be and its default, not when an edition is built at 7 in the morning."""
    with pytest.raises(ConfigError, match=rf"edition\.{name.lower()} = '{value}' \(from "
                       rf"DIGEST_EDITION_{name}\) is out of range: it must be {says}"):
        load(None, env={f"DIGEST_EDITION_{name}": value})
    ok = load(None, env={f"DIGEST_EDITION_{name}": "20"})
    assert ok[f"edition.{name.lower()}"] == 20


def test_the_choices_of_a_setting_are_those_the_code_knows() -> None:
    from digest.deliver.backends import BACKENDS
    from digest.deliver.backends.smtp import TLS_MODES
    from digest.logs import FORMATS, LEVELS

    choices = {s.key: s.choices for s in SETTINGS if s.choices}
    assert choices == {"delivery.backend": BACKENDS, "smtp.tls": TLS_MODES,
                       "logging.format": FORMATS, "logging.level": LEVELS}
    # Spelled as the table does, whatever case was given.
    settings = load(None, env={"DIGEST_DELIVERY_BACKEND": "SMTP", "DIGEST_LOGGING_LEVEL": "debug"})
    assert (settings["delivery.backend"], settings["logging.level"]) == ("smtp", "DEBUG")
