"""The settings table: every setting's name, default and help, and how they are loaded.

Precedence, lowest first: the defaults below < `config/digest.toml` (or `--config`,
or `DIGEST_CONFIG`) < `DIGEST_SECTION_KEY` environment variables < CLI flags.
Secrets are never read from the file: they come only from the environment
(see `SECRETS`).
"""

from __future__ import annotations

import difflib
import os
import secrets as _secrets
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from digest.errors import ConfigError
from digest.files import group_name, private_folder, user_name


@dataclass(frozen=True)
class Setting:
    """One setting: `section` is "" for top-level ones."""

    section: str
    name: str
    default: Any
    help: str
    #: The smallest and largest value a number may take (None: unbounded).
    low: float | None = None
    high: float | None = None
    #: A number that must be more than 0 (a timeout, an interval).
    positive: bool = False
    #: The only values a text setting may take (compared without case); () for any.
    choices: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.section}.{self.name}" if self.section else self.name

    @property
    def label(self) -> str:
        """The setting as the settings file shows it: "[smtp] tls", "public_url"."""
        return f"[{self.section}] {self.name}" if self.section else self.name

    @property
    def env(self) -> str:
        parts = [self.section, self.name] if self.section else [self.name]
        return "DIGEST_" + "_".join(p.upper() for p in parts)


SETTINGS: tuple[Setting, ...] = (
    Setting("", "public_url", "http://localhost:8000",
            "Base of every link in mail (unsubscribe, archive); https in production."),
    Setting("", "data_dir", "var", "Where secret.key is kept when DIGEST_SECRET_KEY is unset."),
    Setting("", "templates_dir", "",
            "A folder whose templates override the built-in ones (email/digest.html, ...)."),
    Setting("database", "url", "sqlite:///var/digest.db", "Any SQLAlchemy URL."),
    Setting("database", "timeout", 30.0,
            "Seconds to wait for the database: for a free connection and, on SQLite, for "
            "the write lock. Then a web request answers 503 with Retry-After.",
            positive=True),
    Setting("gather", "timeout", 20.0, "Seconds a feed may take to answer and to arrive.",
            positive=True),
    Setting("gather", "max_bytes", 10_000_000, "Largest feed or page accepted, in bytes.",
            low=1),
    Setting("gather", "max_redirects", 5, "Redirects followed before a fetch fails.",
            low=0),
    Setting("gather", "user_agent", "",
            "User-Agent sent with every request; empty: digest/<version> (+<public_url>)."),
    Setting("gather", "max_entries", 200, "Newest entries kept from one feed per fetch.",
            low=1),
    Setting("gather", "fetch_private_addresses", False,
            "Let links in feed items and redirects reach loopback, private and link-local "
            "addresses on any host. Off: only a source's own scheme, host and port may be "
            "on this machine's network (an admin added it)."),
    Setting("edition", "window_hours", 24,
            "A list's first edition takes articles published this many hours back.",
            low=1, high=24 * 366 * 100),
    Setting("edition", "max_items", 20, "Most articles told in full in one edition.",
            low=1, high=1000),
    Setting("edition", "brief_max", 100,
            "Most further new articles listed by headline under \"Also new\" (0: no limit); "
            "any beyond are held over for the next edition.", low=0, high=10_000),
    Setting("edition", "late_hours", 48,
            "An article first seen since the last edition goes in the next one when dated "
            "at most this many hours before the last edition; older ones are a new "
            "source's archive.", low=0, high=24 * 366 * 100),
    Setting("edition", "summary_chars", 320, "Longest blurb taken from an article, in characters.",
            low=0, high=100_000),
    Setting("edition", "html_max_kb", 100,
            "Largest HTML part an edition may have, in KB: Gmail clips mail above 102 KB, "
            "hiding the unsubscribe link. Larger drafts are shortened; none is sent.",
            low=20, high=10_000),
    Setting("delivery", "backend", "outbox",
            "Where mail goes: outbox, smtp, or an email API: ses, postmark, sendgrid, mailgun.",
            choices=("outbox", "smtp", "ses", "postmark", "sendgrid", "mailgun")),
    Setting("delivery", "outbox_dir", "var/outbox", "Maildir the outbox backend writes to."),
    Setting("delivery", "batch_size", 200, "Deliveries a worker claims at once.",
            low=1),
    Setting("delivery", "lease_seconds", 300,
            "A claim not finished in this time returns to the queue (for a dead worker).",
            positive=True),
    Setting("delivery", "max_attempts", 8,
            "Temporary failures (4xx) retried this often before the delivery fails.",
            low=1),
    Setting("delivery", "retry_seconds", 60,
            "First retry delay after a temporary failure; doubles on each attempt.",
            low=0),
    Setting("delivery", "unsubscribe_mailto", "",
            "Address for mailto unsubscribes in List-Unsubscribe; empty: none."),
    Setting("delivery", "heartbeat_seconds", 5.0,
            "Seconds between a sender's heartbeats (its row in the senders table), also "
            "while it has nothing to send.",
            positive=True),
    Setting("delivery", "heartbeat_timeout", 60.0,
            "/healthz fails when no sender has had a heartbeat for this many seconds.",
            positive=True),
    Setting("delivery", "rate_limit", 0.0,
            "Most messages per second, whichever backend sends (not the outbox, which only "
            "writes files); 0: none. A backend's own rate_limit ([smtp], [ses], ...) may "
            "set a lower one.", low=0),
    Setting("delivery", "soft_bounce_limit", 3,
            "Soft bounces in a row (a reader's latest mails all bounced temporarily) after "
            "which the address is suppressed as bounced; 0: never.", low=0, high=100),
    Setting("delivery", "return_path", "",
            "VERP envelope sender for SMTP and the outbox, with {token} naming each delivery, "
            "e.g. bounces+{token}@news.example.org; empty: the list's from address."),
    Setting("delivery", "feedback_id_sender", "",
            "The sender id ending each message's Feedback-ID header "
            "(<edition>:<list>:digest:<sender id>, Gmail's feedback loop); 5-15 letters, "
            "digits, . or -, the same for good; empty: the list's from domain."),
    Setting("smtp", "host", "localhost", "SMTP server (relay or provider)."),
    Setting("smtp", "port", 587, "SMTP port: 587 for starttls, 465 for tls, 25 for none.",
            low=1, high=65535),
    Setting("smtp", "tls", "starttls", "starttls, tls or none.",
            choices=("starttls", "tls", "none")),
    Setting("smtp", "username", "", "SMTP login; the password comes from DIGEST_SMTP_PASSWORD."),
    Setting("smtp", "connections", 4, "Connections used in parallel.",
            low=1),
    Setting("smtp", "rate_limit", 0.0, "Most messages per second over all connections; 0: none.",
            low=0),
    Setting("smtp", "timeout", 30.0, "Seconds to wait for the server before a temporary failure.",
            positive=True),
    Setting("ses", "region", "",
            "AWS region of the SES account and its verified domain, e.g. eu-west-1; empty: "
            "AWS_REGION or the AWS profile's. Credentials come the standard AWS way "
            "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, an instance role)."),
    Setting("ses", "endpoint_url", "", "SES API endpoint; empty: AWS's own for the region."),
    Setting("ses", "configuration_set", "",
            "SES configuration set named on every message (its event destination sends "
            "bounces and complaints to /webhooks/ses); empty: none."),
    Setting("ses", "concurrency", 8, "SendEmail calls in flight at once.", low=1, high=100),
    Setting("ses", "rate_limit", 0.0,
            "Most messages per second; 0: the account's maximum send rate, which is used "
            "anyway when lower.",
            low=0),
    Setting("ses", "timeout", 30.0,
            "Seconds to wait for SES; after the request is out, no answer leaves its "
            "message uncertain.",
            positive=True),
    Setting("ses", "topic_arns", "",
            "SNS topics (ARNs, comma-separated) whose notices /webhooks/ses accepts; "
            "empty: it answers 503."),
    Setting("ses", "notice_max_age_minutes", 60,
            "An SNS notice whose Timestamp is older than this is refused as stale (SNS "
            "retries keep the first Timestamp).", low=1, high=10_080),
    Setting("ses", "sns_cert_hosts", "",
            "For tests and private setups only: further host[:port]s, comma-separated, that "
            "SNS signing certificates may be fetched from (over HTTPS), beside "
            "sns.<region>.amazonaws.com."),
    Setting("postmark", "api_url", "https://api.postmarkapp.com",
            "Postmark's API; the Server token comes from DIGEST_POSTMARK_TOKEN."),
    Setting("postmark", "message_stream", "broadcast",
            "The message stream newsletters go out on (a Broadcast stream's id)."),
    Setting("postmark", "rate_limit", 0.0, "Most messages per second; 0: none.",
            low=0),
    Setting("postmark", "timeout", 60.0,
            "Seconds to wait for an answer; after the request is out, no answer leaves its "
            "messages uncertain.",
            positive=True),
    Setting("mailgun", "api_url", "https://api.mailgun.net",
            "Mailgun's API: https://api.eu.mailgun.net for a domain in the EU region; the key "
            "comes from DIGEST_MAILGUN_API_KEY."),
    Setting("mailgun", "domain", "", "The sending domain in Mailgun, e.g. mg.example.org."),
    Setting("mailgun", "rate_limit", 0.0, "Most messages per second; 0: none.",
            low=0),
    Setting("mailgun", "timeout", 30.0,
            "Seconds to wait for an answer; after the request is out, no answer leaves its "
            "message uncertain.",
            positive=True),
    Setting("dkim", "domain", "",
            "Sign SMTP and outbox mail with DKIM as this domain (d=), normally the from "
            "address's; empty: no signature (a relay or provider may sign instead)."),
    Setting("dkim", "selector", "digest",
            "DKIM selector (s=): the key is published at <selector>._domainkey.<domain>."),
    Setting("dkim", "private_key_file", "",
            "PEM file of the RSA private key (2048 bits: openssl genrsa); `digest check-dns` "
            "prints the DNS record for its public key."),
    Setting("sendgrid", "api_url", "https://api.sendgrid.com",
            "SendGrid's API; the key (Mail Send permission) comes from DIGEST_SENDGRID_API_KEY."),
    Setting("sendgrid", "rate_limit", 0.0, "Most messages per second; 0: none.",
            low=0),
    Setting("sendgrid", "timeout", 60.0,
            "Seconds to wait for an answer; after the request is out, no answer leaves its "
            "messages uncertain.",
            positive=True),
    Setting("sendgrid", "webhook_public_key", "",
            "The public key SendGrid shows when Signed Event Webhook is on (base64, as shown); "
            "/webhooks/sendgrid verifies every request with it; empty: that webhook answers "
            "503."),
    Setting("webhooks", "max_age_seconds", 600,
            "A webhook signed longer ago than this (SendGrid's signature time) is refused as "
            "stale; so is any notice dated this far in the future.", low=30, high=86_400),
    Setting("webhooks", "retried_max_age_hours", 24,
            "Mailgun's signature time and Postmark's bounce time, which the providers' "
            "retries keep (Mailgun retries for 8 hours, Postmark for about 10): a notice "
            "older than this is refused as stale.", low=1, high=144),
    Setting("schedule", "fetch_minutes", 15.0,
            "Minutes between fetches of every source, jittered; failing sources wait longer.",
            positive=True),
    Setting("schedule", "grace_hours", 6,
            "An edition missed while digest was down goes out this late at most; else skipped.",
            low=0),
    Setting("schedule", "review_lead_minutes", 120,
            "Review-mode lists: the draft is built this long before the scheduled time.",
            low=0),
    Setting("web", "host", "127.0.0.1", "Address `digest serve` listens on."),
    Setting("web", "port", 8000, "Port `digest serve` listens on.",
            low=0, high=65535),
    Setting("web", "threads", 40,
            "Threads that run web requests' database work; the database pool keeps as many "
            "connections, and 10 more for digest serve's sender, scheduler and imports.",
            low=1),
    Setting("web", "forwarded_allow_ips", "127.0.0.1,::1",
            "Proxies trusted for X-Forwarded-For/-Proto (comma-separated IPs, or *)."),
    Setting("web", "test_sends_per_hour", 10,
            "Test mails one user may send in any hour, from the desk and the API together "
            "(only to users' addresses); counted per process.",
            low=0),
    Setting("web", "fetch_private_addresses", False,
            "Let the desk's and the API's add-by-URL fetch loopback, private and link-local "
            "addresses (127.0.0.1, 10.x, 169.254.169.254). Off: an editor cannot make the "
            "server read its own network."),
    Setting("web", "header_timeout", 10.0,
            "Seconds a client has to send a request's line and headers, from connecting or "
            "from the previous response; then it gets 408 and is closed (slow clients).",
            positive=True),
    Setting("web", "body_timeout", 30.0,
            "Seconds a client has to send a request's body, plus one for every 500 bytes "
            "received (a large upload at any usable speed passes); then it gets 408 and is "
            "closed (slow clients).",
            positive=True),
    Setting("web", "max_connections", 1000,
            "Most connections open at once; beyond it the one waiting longest for its request "
            "is closed, or the new one gets 503. Lowered at start to fit ulimit -n.",
            low=1),
    Setting("imports", "keep_rejects_days", 30,
            "Days a console import's rejects file is kept after the job ends (its upload is "
            "deleted then); `digest serve` purges older ones hourly. 0: at the next purge.",
            low=0),
    Setting("metrics", "allow", "127.0.0.1,::1",
            "Client addresses or networks (comma-separated) that may read /metrics without "
            "the DIGEST_METRICS_TOKEN bearer token; empty: none."),
    Setting("logging", "format", "text",
            "text (time LEVEL logger: message) or json (one object a line), for digest "
            "serve, digest worker and every command.",
            choices=("text", "json")),
    Setting("logging", "level", "INFO",
            "Lowest level logged by digest serve and digest worker: DEBUG, INFO, WARNING or "
            "ERROR; other commands log WARNING and above at least.",
            choices=("DEBUG", "INFO", "WARNING", "ERROR")),
)

#: Environment-only settings: name -> help. Never read from or written to the file.
SECRETS: dict[str, str] = {
    "DIGEST_SECRET_KEY": "Signs unsubscribe and confirm tokens; at least 32 bytes. Without "
                         "it, a key is made once and kept in <data_dir>/secret.key.",
    "DIGEST_SMTP_PASSWORD": "Password for [smtp] username.",
    "DIGEST_METRICS_TOKEN": "Bearer token that lets a scraper read /metrics from any "
                            "address; unset: only [metrics] allow.",
    "DIGEST_POSTMARK_TOKEN": "Postmark Server token, for [delivery] backend = \"postmark\".",
    "DIGEST_SENDGRID_API_KEY": "SendGrid API key with Mail Send permission, for [delivery] "
                               "backend = \"sendgrid\".",
    "DIGEST_MAILGUN_API_KEY": "Mailgun API key (a domain sending key will do), for "
                              "[delivery] backend = \"mailgun\".",
    "DIGEST_POSTMARK_WEBHOOK_PASSWORD": "The basic-auth password in the URL of Postmark's "
                                        "webhook (/webhooks/postmark); unset: it answers 503.",
    "DIGEST_MAILGUN_WEBHOOK_SIGNING_KEY": "Mailgun's HTTP webhook signing key, which "
                                          "/webhooks/mailgun checks every request with; "
                                          "unset: it answers 503.",
}

_BY_KEY = {s.key: s for s in SETTINGS}
DEFAULT_CONFIG_PATH = Path("config/digest.toml")


@dataclass
class Settings:
    """Resolved settings. `get("smtp.port")` or attribute-style `settings["smtp.port"]`."""

    values: dict[str, Any]
    source: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    #: Where each setting given explicitly came from (the file's path, an environment
    #: variable's name, "override"); a key absent here has its built-in default.
    origins: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def unknown_env(self) -> list[tuple[str, str]]:
        """DIGEST_* environment variables that are no setting or secret, each with the
        name it most looks like ("" when none): a typo (DIGEST_DELIVERY_RATE_LIMT) is
        otherwise ignored without a word. DIGEST_TEST_* are the test suite's own."""
        known = {s.env for s in SETTINGS} | set(SECRETS) | {"DIGEST_CONFIG"}
        return [(name, next(iter(difflib.get_close_matches(name, known, 1, 0.8)), ""))
                for name in sorted(self.env) if name.startswith("DIGEST_")
                and name not in known and not name.startswith("DIGEST_TEST_")]

    def origin(self, key: str) -> str | None:
        """Where the setting `key` was set, or None when it is the built-in default."""
        if key not in _BY_KEY:
            raise ConfigError(f"unknown setting {key!r}")
        return self.origins.get(key)

    def secret(self, name: str) -> str:
        """A secret from the environment ("" if unset)."""
        return self.env.get(name, "")

    def path(self, key: str) -> Path:
        """A path setting; relative paths stay relative to the working directory."""
        return Path(self.values[key])

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with some settings replaced; keys use `__` for the dot (smtp__port)."""
        values, origins = dict(self.values), dict(self.origins)
        for k, v in overrides.items():
            key = k.replace("__", ".")
            if key not in _BY_KEY:
                raise ConfigError(f"unknown setting {key!r}")
            values[key] = _coerce(_BY_KEY[key], v, "override")
            origins[key] = "override"
        _check_public_url(values["public_url"], origins.get("public_url", "the default"))
        return Settings(values, self.source, self.env, origins)

    def signing_key(self) -> str:
        """DIGEST_SECRET_KEY, or a key made once and kept in <data_dir>/secret.key; either
        must be at least MIN_KEY_BYTES long (ConfigError saying how to make one)."""
        key = _env_key(self.env)
        if key:
            return key
        path = self.path("data_dir") / "secret.key"
        if path.exists():
            return _strong(path.read_text().strip(), str(path),
                           "put it in that file, or delete the file to have one made "
                           "(links in mail already sent then stop working)")
        private_folder(path.parent)  # data_dir: 0700 when made here
        key = _secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key + "\n")
        return key


#: The shortest signing key accepted: 256 bits, as HMAC-SHA1/SHA256 keys should have.
MIN_KEY_BYTES = 32
MAKE_KEY = "python -c 'import secrets; print(secrets.token_urlsafe(48))'"


def _env_key(env: Mapping[str, str]) -> str:
    """DIGEST_SECRET_KEY ("" when unset), refused if too short."""
    key = env.get("DIGEST_SECRET_KEY", "")
    return _strong(key, "DIGEST_SECRET_KEY", "set it in the environment") if key else ""


def _strong(key: str, where: str, then: str) -> str:
    size = len(key.encode())
    if size < MIN_KEY_BYTES:
        what = "is empty" if size == 0 else f"is {size} bytes long"
        raise ConfigError(
            f"the signing key in {where} {what}; a key needs at least {MIN_KEY_BYTES} "
            f"bytes, so that no one can guess the links it signs: make one with "
            f"`{MAKE_KEY}` and {then}"
        )
    return key


def _coerce(setting: Setting, value: Any, origin: str) -> Any:
    kind = type(setting.default)
    if setting.choices:
        # Returned as the table spells it: "SMTP" is smtp, "debug" is DEBUG.
        for choice in setting.choices:
            if str(value).lower() == choice.lower():
                return choice
        raise ConfigError(
            f"{setting.label} is {value!r}: it must be one of "
            f"{', '.join(setting.choices)}; change it where it is set ({origin}), or "
            f"leave it out for the default, {setting.default!r}")
    try:
        if kind is bool:
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off", ""):
                    return False
                raise ValueError(value)
            return bool(value)
        if kind is int and isinstance(value, float):
            raise ValueError(value)
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{setting.key} = {value!r} (from {origin}) is not a valid {kind.__name__}; "
            f"the default is {setting.default!r}"
        ) from None
    low, high = setting.low, setting.high
    if setting.positive and number <= 0:
        raise ConfigError(
            f"{setting.label} is {number:g}: it must be more than 0; change it where it is "
            f"set ({origin}), or leave it out for the default, {setting.default!r}")
    if (low is not None and number < low) or (high is not None and number > high):
        raise ConfigError(
            f"{setting.key} = {value!r} (from {origin}) is out of range: it must be "
            f"{_bounds(low, high)}; the default is {setting.default!r}")
    return number


def _bounds(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"from {low:g} to {high:g}"
    return f"at least {low:g}" if low is not None else f"at most {high:g}"


def defaults() -> Settings:
    """The built-in defaults alone: no file, no environment (secrets included)."""
    return Settings({s.key: s.default for s in SETTINGS})


def load(path: str | Path | None = None, env: dict[str, str] | None = None) -> Settings:
    """Resolve settings from defaults, the TOML file and the environment."""
    env = dict(os.environ if env is None else env)
    explicit = path is not None or "DIGEST_CONFIG" in env
    cfg_path = Path(path or env.get("DIGEST_CONFIG") or DEFAULT_CONFIG_PATH)
    values = {s.key: s.default for s in SETTINGS}
    origins: dict[str, str] = {}
    source: Path | None = None
    text = _read(cfg_path)
    if text is not None:
        source = cfg_path
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{cfg_path} is not valid TOML: {exc}") from None
        for key, value in _flatten(data):
            if key not in _BY_KEY:
                raise ConfigError(
                    f"{cfg_path}: unknown setting {key!r}; see config/digest.toml for the list"
                )
            values[key] = _coerce(_BY_KEY[key], value, str(cfg_path))
            origins[key] = str(cfg_path)
        if explicit:
            _from_folder(values, origins, cfg_path)
    elif explicit:
        raise ConfigError(f"config file {cfg_path} not found; pass --config with an existing file")
    for setting in SETTINGS:
        if setting.env in env:
            values[setting.key] = _coerce(setting, env[setting.env], setting.env)
            origins[setting.key] = setting.env
    _env_key(env)  # a weak key is refused at start, before anything is changed
    _check_public_url(values["public_url"], origins.get("public_url", "the default"))
    return Settings(values, source, env, origins)


#: Settings that name a file or folder; `database.url` too, when it is SQLite's.
PATH_SETTINGS = ("data_dir", "templates_dir", "delivery.outbox_dir", "dkim.private_key_file")


def _from_folder(values: dict[str, Any], origins: dict[str, str], cfg_path: Path) -> None:
    """Relative paths in a settings file named by --config or DIGEST_CONFIG are taken
    from that file's folder, so that `digest --config /srv/news/digest.toml status` run
    from anywhere finds the same database, not a new one in the working directory. (The
    default file, config/digest.toml, is found from the working directory, the project's
    folder, and its paths are taken from there, as the file shows them.)"""
    folder = cfg_path.parent.absolute()
    mine = {key for key, origin in origins.items() if origin == str(cfg_path)}
    for key in PATH_SETTINGS:
        if key in mine and values[key] and not Path(values[key]).is_absolute():
            values[key] = str(folder / values[key])
    if "database.url" in mine:
        values["database.url"] = _sqlite_from(values["database.url"], folder)


def _sqlite_from(url: str, folder: Path) -> str:
    """A SQLite URL with a relative file path made absolute from `folder`; others as is."""
    scheme, sep, rest = url.partition(":///")
    if not sep or scheme.split("+")[0] != "sqlite" or rest.startswith("/"):
        return url
    path, query, params = rest.partition("?")
    if not path or path == ":memory:" or path.startswith("file:"):
        return url
    return f"{scheme}:///{folder / path}{query}{params}"


def _check_public_url(value: str, origin: str) -> None:
    """ConfigError unless `value` is an absolute http(s) URL with a host: every link in
    mail is public_url + a path, so "" or "news.example.org" would mail links such as
    /confirm/… or news.example.org/unsubscribe/… that no mail program opens. Checked on
    every database, wherever settings load, before anything is stored or sent."""
    try:
        parts = urlsplit(value)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        _ = parts.port  # a port that is no number is a ValueError
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(
            f"public_url = {value!r} (from {origin}) is not an absolute http or https URL "
            "with a host; every link in mail starts with it. Set it to your site's "
            "address, e.g. public_url = \"https://news.example.org\" at the top of the "
            "settings file, or DIGEST_PUBLIC_URL=https://news.example.org")


def _read(path: Path) -> str | None:
    """The settings file's text; None when there is none. One this user may not read
    (/etc/digest/digest.toml is root's, 0640, group digest) is a ConfigError saying who
    may, rather than a traceback."""
    try:
        return path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a folder, not a settings file; name the file "
                          "(--config or DIGEST_CONFIG)") from None
    except OSError as exc:
        me, group = user_name(os.geteuid()), group_name(os.getegid())
        try:
            st = path.stat()
            facts = (f"owner {user_name(st.st_uid)}, group {group_name(st.st_gid)}, "
                     f"mode {stat.S_IMODE(st.st_mode):04o}")
        except OSError:  # its folder is closed to this user too
            facts = f"its folder {path.absolute().parent} is closed to this user"
        raise ConfigError(
            f"cannot read {path} ({exc.strerror}; {facts}, and digest runs as "
            f"{me}); let {me} read it and enter its folder, e.g. `chgrp "
            f"{group} {path} && chmod 0640 {path}`, or run digest as a user who can"
        ) from None


def _flatten(data: dict[str, Any]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in data.items():
        if isinstance(v, dict):
            out.extend((f"{k}.{k2}", v2) for k2, v2 in v.items())
        else:
            out.append((k, v))
    return out


def render_toml() -> str:
    """The text of config/digest.toml: every setting with its default and help."""
    lines = [
        "# digest settings. Every setting is shown with its default.",
        "# Any of them can be overridden by DIGEST_<SECTION>_<NAME> in the environment",
        "# (DIGEST_SMTP_HOST, DIGEST_DATABASE_URL; top-level ones: DIGEST_PUBLIC_URL).",
        "# Relative paths are taken from the working directory for this file, and from",
        "# the file's own folder for one named by --config or DIGEST_CONFIG.",
        "# Secrets are never read from this file; set them in the environment:",
    ]
    lines += [f"#   {name}: {text}" for name, text in SECRETS.items()]
    section = None
    for s in SETTINGS:
        if s.section != section:
            section = s.section
            if section:
                lines += ["", f"[{section}]"]
            else:
                lines.append("")
        lines.append(f"# {s.help}")
        lines.append(f"{s.name} = {_toml_value(s.default)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, int):
        return f"{value:_}" if abs(value) >= 10_000 else str(value)
    return repr(value)
