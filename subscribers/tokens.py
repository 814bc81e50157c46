"""Signed links for unsubscribe, confirm and manage.

A token is an itsdangerous URL-safe timed signature over `[subscriber_id, list_id,
email_tag]` (a confirm token adds the membership's sign-up number, `[..., signup]`), with
one salt per purpose, so a confirm token cannot unsubscribe and an
unsubscribe token cannot open the manage page. The payload is signed, not encrypted:
anyone holding the link can decode the two ids, but cannot change them without breaking
the signature, so a token for one subscriber or list never acts on another.

`email_tag` is the first 8 hex digits of the address's sha256 (`Subscriber.email_hash`).
It makes a token stop working once its subscriber changes address or is forgotten and
the id is reused; `members.verify_owner` checks it against the database.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from digest.errors import ConfigError, InvalidInput, LinkExpired
from subscribers.addresses import email_hash

Purpose = Literal["unsubscribe", "confirm", "manage"]
PURPOSES: tuple[str, ...] = get_args(Purpose)
TAG_LENGTH = 8

# Suggested `max_age` per purpose, in seconds. Unsubscribe links live in mail that is
# read years later, and the law wants them to keep working: they never expire.
MAX_AGE: dict[str, float | None] = {
    "unsubscribe": None,
    "confirm": 7 * 24 * 3600,
    "manage": 30 * 24 * 3600,
}


@dataclass(frozen=True)
class TokenData:
    """What a valid token says: who, which list (None: all lists), and the address tag;
    for a confirm token, which sign-up it was mailed for (None in links made before
    there were sign-up numbers); and when it was signed (a confirm link is good only
    for the sign-up it was sent for: see `members.check_confirmable`)."""

    subscriber_id: int
    list_id: int | None
    email_hash8: str
    signup: int | None = None
    signed_at: dt.datetime | None = field(default=None, compare=False)


class ClockSigner(TimestampSigner):
    """A timestamp signer that asks an injected clock, so tests need not sleep."""

    def __init__(self, *args: Any, clock: Callable[[], float] = time.time, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._clock = clock

    def get_timestamp(self) -> int:
        return int(self._clock())


class Tokens:
    """Makes and reads the signed tokens in links.

    `old_keys` are earlier signing keys still accepted when reading, so the key can be
    rotated without breaking links in mail already sent.
    """

    def __init__(
        self,
        secret_key: str,
        *,
        old_keys: Sequence[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret_key:
            raise ConfigError("no signing key: set DIGEST_SECRET_KEY in the environment")
        # itsdangerous signs with the last key and accepts any of them.
        keys = [*old_keys, secret_key]
        self._serializers = {
            purpose: URLSafeTimedSerializer(
                keys,
                salt=f"digest.{purpose}",
                signer=ClockSigner,
                signer_kwargs={"clock": clock},
            )
            for purpose in PURPOSES
        }

    def make(
        self, purpose: Purpose, subscriber_id: int, list_id: int | None, email: str,
        *, signup: int | None = None,
    ) -> str:
        """A token for `purpose`. `email` is the subscriber's stored (normalized) address:
        it is hashed as given, because the sender makes one token per message and
        validating again would cost more than the rest of the message. `signup` (confirm
        tokens) is the membership's `signup`: the link confirms that sign-up only."""
        tag = email_hash(email)[:TAG_LENGTH]
        payload: list[Any] = [subscriber_id, list_id, tag]
        if signup is not None:
            payload.append(signup)
        return str(self._serializer(purpose).dumps(payload))

    def read(self, token: str, purpose: str, max_age: float | None = None) -> TokenData:
        """What `token` says, if it was made here for `purpose` at most `max_age` s ago.

        Raises InvalidInput for a damaged, foreign or wrong-purpose token, and its
        LinkExpired for one that is ours but older than `max_age`.
        """
        serializer = self._serializer(purpose)
        try:
            payload, signed_at = serializer.loads(
                token, max_age=max_age, return_timestamp=True)  # type: ignore[arg-type]
        except SignatureExpired:
            raise LinkExpired("this link has expired; ask for a new one") from None
        except BadSignature:
            raise InvalidInput(
                f"this {purpose} link is not valid; copy the whole link from the email, "
                "or ask for a new one"
            ) from None
        return dataclasses.replace(_token_data(payload), signed_at=signed_at)

    def _serializer(self, purpose: str) -> URLSafeTimedSerializer:
        try:
            return self._serializers[purpose]
        except KeyError:
            # A programming error, not a user's: purposes are fixed in code.
            raise ValueError(f"unknown token purpose {purpose!r}; one of {PURPOSES}") from None


def _token_data(payload: Any) -> TokenData:
    # Signed by us, so well formed unless the format changed; check anyway.
    match payload:
        case [int() as sid, (int() | None) as lid, str() as tag] if len(tag) == TAG_LENGTH:
            return TokenData(sid, lid, tag)
        case [int() as sid, (int() | None) as lid, str() as tag, int() as signup] \
                if len(tag) == TAG_LENGTH:
            return TokenData(sid, lid, tag, signup)
    raise InvalidInput("this link is from an older version; ask for a new one")
