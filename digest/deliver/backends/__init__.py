"""Delivery backends: each is an object with send(batch) -> results and close()."""

from __future__ import annotations

from typing import TYPE_CHECKING

from digest.deliver.backends.base import Backend, NoEvents, RateLimiter, SendEvents, SendResult
from digest.deliver.backends.mailgun import MailgunBackend
from digest.deliver.backends.outbox import OutboxBackend
from digest.deliver.backends.postmark import PostmarkBackend
from digest.deliver.backends.sendgrid import SendGridBackend
from digest.deliver.backends.smtp import SmtpBackend
from digest.deliver.verp import ReturnPath
from digest.errors import ConfigError

if TYPE_CHECKING:
    from digest.config import Settings

__all__ = [
    "BACKENDS",
    "Backend",
    "MailgunBackend",
    "NoEvents",
    "OutboxBackend",
    "PostmarkBackend",
    "RateLimiter",
    "SendEvents",
    "SendGridBackend",
    "SendResult",
    "SmtpBackend",
    "make_backend",
    "require_chosen",
]

BACKENDS = ("outbox", "smtp", "ses", "postmark", "sendgrid", "mailgun")


def make_backend(settings: Settings) -> Backend:
    """The backend chosen by `[delivery] backend`."""
    choice = settings["delivery.backend"]
    if choice == "outbox":
        return OutboxBackend(settings.path("delivery.outbox_dir"),
                             ReturnPath.from_settings(settings))
    if choice == "smtp":
        return SmtpBackend.from_settings(settings)
    if choice == "ses":
        # Imported here: boto3 takes a third of a second to import, which every other
        # command would pay.
        from digest.deliver.backends.ses import SesBackend

        return SesBackend.from_settings(settings)
    if choice == "postmark":
        return PostmarkBackend.from_settings(settings)
    if choice == "sendgrid":
        return SendGridBackend.from_settings(settings)
    if choice == "mailgun":
        return MailgunBackend.from_settings(settings)
    raise ConfigError(
        f"[delivery] backend = {choice!r} is not known; choose one of {', '.join(BACKENDS)}"
    )


def require_chosen(settings: Settings, dialect: str) -> None:
    """Refuse to queue or send mail when `[delivery] backend` or `public_url` is only its
    built-in default (nothing in the settings file or the environment) and the database
    is not SQLite.

    The defaults suit a first try and the demo, on SQLite. A PostgreSQL deployment whose
    sender found no config file (a unit file without the right working directory, a
    missing DIGEST_CONFIG) would otherwise "send" every edition into files nobody reads,
    or mail links to http://localhost:8000 that no reader can open. A value chosen on
    purpose, in the file or the environment, is fine, the outbox included."""
    if dialect == "sqlite":
        return
    where = (f"{settings.source} does not set it" if settings.source is not None
             else "no settings file was found: config/digest.toml in the working directory, "
                  "--config or DIGEST_CONFIG")
    if settings.origin("delivery.backend") is None:
        raise ConfigError(
            f"[delivery] backend is not set ({where}; nor is DIGEST_DELIVERY_BACKEND), so "
            f"this sender would fall back to the outbox, which only writes files under "
            f"{settings['delivery.outbox_dir']}, on a {dialect} database. Set backend = "
            "\"smtp\" under [delivery] in the settings file, or DIGEST_DELIVERY_BACKEND=smtp "
            "(or \"outbox\" to keep the outbox on purpose)"
        )
    if settings.origin("public_url") is None:
        raise ConfigError(
            f"public_url is not set ({where}; nor is DIGEST_PUBLIC_URL), so every link in "
            f"mail (confirm, unsubscribe, archive) would lead to the built-in "
            f"{settings['public_url']}, on a {dialect} database. Set public_url = "
            "\"https://news.example.org\" (your site's address) at the top of the settings "
            "file, or DIGEST_PUBLIC_URL"
        )
