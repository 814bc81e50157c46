"""Delivery backends: each is an object with send(batch) -> results and close()."""

from __future__ import annotations

from typing import TYPE_CHECKING

from digest.deliver.backends.base import Backend, NoEvents, RateLimiter, SendEvents, SendResult
from digest.deliver.backends.outbox import OutboxBackend
from digest.deliver.backends.smtp import SmtpBackend
from digest.errors import ConfigError

if TYPE_CHECKING:
    from digest.config import Settings

__all__ = [
    "BACKENDS",
    "Backend",
    "NoEvents",
    "OutboxBackend",
    "RateLimiter",
    "SendEvents",
    "SendResult",
    "SmtpBackend",
    "make_backend",
]

BACKENDS = ("outbox", "smtp")


def make_backend(settings: Settings) -> Backend:
    """The backend chosen by `[delivery] backend`."""
    choice = settings["delivery.backend"]
    if choice == "outbox":
        return OutboxBackend(settings.path("delivery.outbox_dir"))
    if choice == "smtp":
        return SmtpBackend.from_settings(settings)
    raise ConfigError(
        f"[delivery] backend = {choice!r} is not known; choose one of {', '.join(BACKENDS)}"
    )
