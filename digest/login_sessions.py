"""Logged-in sessions, kept in the database so that every web worker sees a logout.

A session is a row of `login_sessions`: its user, when it began, when it was last seen,
when it expires (`LIFETIME` after it began, however busy). The browser holds a random
id of 32 bytes; the row holds only its sha256, which is enough for a secret nobody
chose (as for API tokens), so a copy of the table opens nothing. Logging out deletes
the row; a new password, a new role or disabling a user deletes all of theirs, and a
user's other sessions (their phone) are untouched by a logout on the laptop.

Expired rows are deleted whenever someone logs in (`start_session`), so the table holds
at most what was started in the last `LIFETIME`. Anonymous visitors have no row: their
CSRF token lives in the signed cookie alone (digest.web.auth).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, joinedload, object_session

from digest.models import LoginSession, User

LIFETIME = dt.timedelta(hours=12)
#: last_seen_at is written at most this often per session, not on every page.
TOUCH = dt.timedelta(minutes=1)
#: Longer than any id we make (43 characters); longer input is not looked up.
_MAX_ID = 100


def start_session(s: Session, user: User, *, now: dt.datetime) -> str:
    """A new session for `user`: the id for the cookie, which is never stored. Deletes
    every expired session on the way. Flushes; the caller commits."""
    s.execute(delete(LoginSession).where(LoginSession.expires_at <= now))
    raw = secrets.token_urlsafe(32)
    s.add(LoginSession(user_id=user.id, token_hash=_hash(raw), created_at=now,
                       last_seen_at=now, expires_at=now + LIFETIME))
    s.flush()
    return raw


def session_user(s: Session, raw: str, *, now: dt.datetime) -> User | None:
    """The user of the session with id `raw`, or None if there is no such session, it
    has expired or its user is disabled. Notes the visit (at most once per `TOUCH`)."""
    if not raw or len(raw) > _MAX_ID:
        return None
    row = s.scalar(select(LoginSession).options(joinedload(LoginSession.user))
                   .where(LoginSession.token_hash == _hash(raw)))
    if row is None or row.expires_at <= now or row.user.disabled:
        return None
    if now - row.last_seen_at >= TOUCH:
        row.last_seen_at = now
        s.commit()
    return row.user


def end_session(s: Session, raw: str) -> None:
    """Log out: the session with id `raw` ends, in every worker. Unknown ids are fine
    (it ended already). The caller commits."""
    if raw and len(raw) <= _MAX_ID:
        s.execute(delete(LoginSession).where(LoginSession.token_hash == _hash(raw)))


def end_all_sessions(user: User) -> None:
    """Every session of `user` ends (a new password, role or a disabled account), with
    the change to the user when it is committed."""
    s = object_session(user)
    if s is not None and user.id is not None:
        s.execute(delete(LoginSession).where(LoginSession.user_id == user.id))
        s.expire(user, ["login_sessions"])


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()
