"""People who run the site: users with a role, their passwords, API tokens, logging in.

Passwords are hashed with argon2id (argon2-cffi's defaults, which follow RFC 9106's
recommendation) and rehashed on login when those parameters change. API tokens are 32
random bytes shown once; only their sha256 is stored, which is enough for a secret
nobody chose.

Logging in (`authenticate`) is throttled by digest.login_throttle, per account and
client address, in the database; what a login starts is digest.login_sessions'. A new
password, a new role or disabling a user ends every session they have.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest import login_throttle
from digest.errors import InvalidInput, NotFound
from digest.login_sessions import end_all_sessions
from digest.models import ADMIN, ROLES, ApiToken, User
from subscribers.addresses import normalize

PASSWORD_MIN = 10
PASSWORD_MAX = 1000  # argon2 takes any length; a megabyte "password" is an attack
TOKEN_PREFIX = "dg_"
#: last_used_at is written at most this often per token, not on every API call.
TOKEN_TOUCH = dt.timedelta(minutes=1)

_hasher = PasswordHasher()


@functools.cache
def dummy_hash() -> str:
    """Verified against when the address is unknown, so that a wrong address costs the
    same time as a wrong password and the answer time does not tell which it was. Made
    by the web app at start (`digest.web.auth.install`), not at import: every command
    would pay its 0.1 s, and not at the first login, which would take twice as long."""
    return _hasher.hash(secrets.token_hex(16))


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
    end_all_sessions(user)


def set_role(user: User, role: str) -> None:
    """A new role; every session ends, so no page keeps the old rights."""
    if user.role != check_role(role):
        user.role = role
        end_all_sessions(user)


def set_disabled(user: User, disabled: bool) -> None:
    """A disabled user cannot log in, and their sessions and tokens stop working."""
    if user.disabled != disabled:
        user.disabled = disabled
        end_all_sessions(user)


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
    counted against the account from client address `ip`). Raises
    login_throttle.Throttled, without checking the password, while that must wait.
    Commits."""
    account, client = email.strip().lower()[:320], ip[:64]
    login_throttle.begin(s, account, client, now=now)
    user = s.scalar(select(User).where(User.email == account))
    # One argon2 verification whatever the account, so the answer takes as long for an
    # unknown or disabled address as for a wrong password, and its time tells nothing.
    matches = _verify(user.password_hash if user is not None else dummy_hash(),
                      password[:PASSWORD_MAX])
    if user is None or user.disabled or not matches:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.last_login_at = now
    login_throttle.succeeded(s, account, client)
    s.commit()
    return user


def _verify(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


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
