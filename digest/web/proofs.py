"""Test sends (proofs) from the desk and the JSON API: to whom, and how often.

A test copy goes only to a user of this site (the `users` table, not disabled): the
sender's own address, or a colleague's. Anyone else is refused (`NotAUser`), so an
editor's login or API token cannot be made to mail strangers. And each user may send
`[web] test_sends_per_hour` of them in any hour, from the desk and the API together
(`TooManyProofs`, with the seconds to wait).

The count is kept in memory, per process, as the subscribe form's is (`web.throttle`):
there is no table for it, and `digest serve` is one process, so it holds there; several
web processes would each allow the limit, and a restart forgets. The desk (the web app)
and the API (an app of its own) share it through the `App` they both serve.

`digest edition test --to ADDRESS` calls the same `App.send_test` without these rules:
whoever runs commands on the server can mail anyone anyway.
"""

from __future__ import annotations

import threading
import weakref

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.app import App
from digest.errors import ConfigError
from digest.models import Edition, User
from digest.users import UserView
from digest.web.throttle import Throttle
from subscribers.addresses import normalize
from subscribers.models import MailingList

#: A user's proofs are counted over this many seconds.
WINDOW = 3600.0


class NotAUser(Exception):
    """The address is not one of this site's users: a proof may not go there (403)."""


class TooManyProofs(Exception):
    """The user sent as many proofs as an hour allows; `wait` seconds until the next."""

    def __init__(self, message: str, wait: float) -> None:
        super().__init__(message)
        self.wait = wait


def send_proof(app: App, s: Session, user: UserView, edition: Edition, mlist: MailingList,
               to: str) -> tuple[str, str]:
    """Mail one test copy of `edition` to `to` for `user`: (the address, its Message-ID).

    Checked first that `to` is a user's (NotAUser), then counted against `user`'s
    limit (TooManyProofs); a refused one is not counted. DeliveryError from the mail
    server as `App.send_test` raises it."""
    recipient = proof_recipient(s, to)
    wait = _limit(app).hit(str(user.id))
    if wait:
        per_hour = app.settings["web.test_sends_per_hour"]
        minutes = max(1, round(wait / 60))
        raise TooManyProofs(
            f"you have sent {per_hour} test mails within the last hour, as many as "
            f"[web] test_sends_per_hour allows; try again in {minutes} minute"
            f"{'s' if minutes > 1 else ''}", wait)
    message_id = app.send_test(edition, mlist, recipient.email, recipient.name)
    return recipient.email, message_id


def proof_recipient(s: Session, to: str) -> User:
    """The enabled user whose address `to` is; NotAUser, naming who may get a test,
    for any other address. InvalidInput for something that is no address at all."""
    address = normalize(to)
    user = s.scalar(select(User).where(User.email == address, User.disabled.is_(False)))
    if user is None:
        raise NotAUser(
            f"{address} is not a user of this site; a test mail goes only to your own "
            "address or to another user's (an admin lists them with `digest users ls` "
            "and adds one with `digest users add`)")
    return user


_limits: weakref.WeakKeyDictionary[App, Throttle] = weakref.WeakKeyDictionary()
_limits_lock = threading.Lock()


def _limit(app: App) -> Throttle:
    """`app`'s proof counter, made on first use on its clock (tests move time)."""
    with _limits_lock:
        limit = _limits.get(app)
        if limit is None:
            per_hour = app.settings["web.test_sends_per_hour"]
            if per_hour < 1:
                raise ConfigError(f"[web] test_sends_per_hour is {per_hour}; it must be at "
                                  "least 1 (the default is 10)")
            clock = app.clock  # not `app`: the counter must not keep its key alive
            limit = Throttle(per_hour, WINDOW, clock=lambda: clock().timestamp())
            _limits[app] = limit
        return limit
