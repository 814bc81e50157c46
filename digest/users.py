"""People who run the site: users with a role, their passwords, API tokens, throttling.

Passwords are hashed with argon2id (argon2-cffi's defaults, which follow RFC 9106's
recommendation) and rehashed on login when those parameters change. API tokens are 32
random bytes shown once; only their sha256 is stored, which is enough for a secret
nobody chose.

Failed logins are rows in `login_failures`, one per failure under two keys, the account
and the client address, so every web worker sees the same counts. Within
`FAILURE_WINDOW`, `ACCOUNT_LIMIT` failures lock the account and `ADDRESS_LIMIT` lock the
address, until the oldest failure leaves the window. A locked login is refused before
the password is looked at, so guessing on during the lock learns nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from digest.errors import InvalidInput, NotFound
from digest.models import ADMIN, ROLES, ApiToken, LoginFailure, User
from subscribers.addresses import normalize

PASSWORD_MIN = 10
PASSWORD_MAX = 1000  # argon2 takes any length; a megabyte "password" is an attack
FAILURE_WINDOW = dt.timedelta(minutes=15)
ACCOUNT_LIMIT = 5
ADDRESS_LIMIT = 20
TOKEN_PREFIX = "dg_"
#: last_used_at is written at most this often per token, not on every API call.
TOKEN_TOUCH = dt.timedelta(minutes=1)

_hasher = PasswordHasher()
# Verified against when the address is unknown, so that a wrong address costs the
# same time as a wrong password and the answer time does not tell which it was.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


class Throttled(Exception):
    """Too many failed logins: try again in `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed logins; try again in {retry_after} seconds")
        self.retry_after = retry_after


@dataclass(frozen=True)
class UserView:
    """A user as the web layer sees them: plain values, safe to keep after the session."""

    id: int
    email: str
    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN

    @classmethod
    def of(cls, user: User) -> UserView:
        return cls(user.id, user.email, user.name, user.role)


# -- users ---------------------------------------------------------------------------


def create_user(s: Session, email: str, *, role: str, password: str, name: str = "",
                now: dt.datetime) -> User:
    """A new user; the address must be free."""
    address = normalize(email)
    if s.scalar(select(User.id).where(User.email == address)) is not None:
        raise InvalidInput(f"user {address} already exists; "
                           "`digest users set` changes their role or name")
    user = User(email=address, name=name.strip(), role=check_role(role),
                password_hash=hash_password(password), created_at=now)
    s.add(user)
    s.flush()
    return user


def get_user(s: Session, email: str) -> User:
    user = s.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise NotFound(f"no user {email.strip()}; `digest users ls` lists them")
    return user


def all_users(s: Session) -> list[User]:
    return list(s.scalars(select(User).order_by(User.email)))


def set_password(user: User, password: str) -> None:
    """A new password; every session of the user ends."""
    user.password_hash = hash_password(password)
    user.session_epoch += 1


def set_role(user: User, role: str) -> None:
    """A new role; every session ends, so no page keeps the old rights."""
    if user.role != check_role(role):
        user.role = role
        user.session_epoch += 1


def set_disabled(user: User, disabled: bool) -> None:
    """A disabled user cannot log in, and their sessions and tokens stop working."""
    if user.disabled != disabled:
        user.disabled = disabled
        user.session_epoch += 1


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput(f"role {role!r} does not exist; use one of: {', '.join(ROLES)}")
    return role


def hash_password(password: str) -> str:
    if len(password) < PASSWORD_MIN:
        raise InvalidInput(f"the password is too short; use at least {PASSWORD_MIN} "
                           "characters (a few words make a good one)")
    if len(password) > PASSWORD_MAX:
        raise InvalidInput(f"the password is too long; use at most {PASSWORD_MAX} characters")
    return _hasher.hash(password)


# -- logging in ----------------------------------------------------------------------


def authenticate(s: Session, email: str, password: str, *, ip: str,
                 now: dt.datetime) -> User | None:
    """The user whose address and password these are, or None (and the failure is
    counted). Raises Throttled, without checking the password, while the account or
    the address is locked. Commits."""
    address = email.strip().lower()[:320]
    keys = [f"user:{address}", f"ip:{ip}"]
    _check_throttle(s, keys, now, limit_offset=0)
    # The attempt counts as a failure before the password is looked at, so that a burst
    # of guesses sent in parallel cannot all pass the check above: only the first
    # `limit` of them get past the recheck. A success takes its rows back.
    attempt = [LoginFailure(key=key, at=now) for key in keys]
    s.add_all(attempt)
    s.execute(delete(LoginFailure).where(LoginFailure.at < now - FAILURE_WINDOW))
    s.commit()
    _check_throttle(s, keys, now, limit_offset=1)
    user = s.scalar(select(User).where(User.email == address))
    # One argon2 verification whatever the account, so the answer takes as long for an
    # unknown or disabled address as for a wrong password, and its time tells nothing.
    matches = _verify(user.password_hash if user is not None else _DUMMY_HASH,
                      password[:PASSWORD_MAX])
    if user is None or user.disabled or not matches:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.last_login_at = now
    s.execute(delete(LoginFailure).where(
        (LoginFailure.key == keys[0]) | (LoginFailure.id == attempt[1].id)))
    s.commit()
    return user


def _verify(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def _check_throttle(s: Session, keys: list[str], now: dt.datetime, *,
                    limit_offset: int) -> None:
    """Throttled if a key has `limit + limit_offset` failures in the window (the offset
    is 1 once this attempt's own rows are in)."""
    since = now - FAILURE_WINDOW
    rows = s.execute(
        select(LoginFailure.key, func.count(), func.min(LoginFailure.at))
        .where(LoginFailure.key.in_(keys), LoginFailure.at >= since)
        .group_by(LoginFailure.key)
    ).all()
    for key, count, oldest in rows:
        limit = ACCOUNT_LIMIT if key.startswith("user:") else ADDRESS_LIMIT
        if count >= limit + limit_offset:
            wait = (oldest + FAILURE_WINDOW - now).total_seconds()
            raise Throttled(max(1, int(wait) + 1))


# -- API tokens ----------------------------------------------------------------------


def make_token(s: Session, user: User, *, name: str, now: dt.datetime) -> tuple[ApiToken, str]:
    """A new token for `user`: the row and the token itself, which is never stored."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user=user, name=name.strip()[:200], prefix=raw[:8],
                     token_hash=_token_hash(raw), created_at=now)
    s.add(token)
    s.flush()
    return token, raw


def token_user(s: Session, raw: str, *, now: dt.datetime) -> User | None:
    """The user a bearer token acts for, or None if it is unknown, revoked or theirs
    is disabled."""
    if not raw.startswith(TOKEN_PREFIX) or len(raw) > 100:
        return None
    token = s.scalar(select(ApiToken).where(ApiToken.token_hash == _token_hash(raw)))
    if token is None or token.revoked_at is not None or token.user.disabled:
        return None
    if token.last_used_at is None or now - token.last_used_at >= TOKEN_TOUCH:
        token.last_used_at = now
        s.commit()
    return token.user


def revoke_token(s: Session, token_id: int, *, now: dt.datetime) -> ApiToken:
    token = s.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"no API token {token_id}; `digest users token ls` lists them")
    if token.revoked_at is None:
        token.revoked_at = now
    return token


def _token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()
