"""Login throttling: waits that double, counted per account and client address; never a
lock that a stranger can put on the owner.

Every failed login is a row of `login_failures`: the account typed (an address, known
or not) and the client address (digest.web.throttle.client_key: IPv4 as it is, IPv6 by
its /64), so every web worker counts the same. Three counts over the last `WINDOW`
decide whether a login may be tried now:

- the pair, this account from this address: `PAIR_FREE` failures are free, then each
  try waits since the pair's last failure: 1 s, 2 s, 4 s ... at most `MAX_WAIT`. An
  attacker elsewhere has a pair of their own, so cannot hold up the owner.
- the address, over all accounts: past `ADDRESS_FREE` failures the same doubling wait,
  since the address's last failure (one address trying many accounts: credential
  stuffing).
- the account, over all addresses: past `ACCOUNT_CEILING` failures (a spread-out attack,
  each address below its own free tries), an address that has failed on the account
  waits `MAX_WAIT` after each failure there. An address with no failure on it, the
  owner's, is not held up.

No wait is longer than `MAX_WAIT`. A try that must wait is refused before the password
is looked at, so guessing on while waiting learns nothing, and it is not counted. A
successful login deletes its pair's failures (that address starts afresh on that
account); the address's and the account's other failures stay until they are older
than `WINDOW`.

Behind a reverse proxy the client address is the one uvicorn takes from X-Forwarded-For,
and only from the proxies in `[web] forwarded_allow_ips`; if the proxy is not among
them, every visitor has the proxy's address (docs/operations.md).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.orm import Session

from digest.models import LoginFailure

WINDOW = dt.timedelta(hours=1)
PAIR_FREE = 5
ADDRESS_FREE = 30
ACCOUNT_CEILING = 100
FIRST_WAIT = dt.timedelta(seconds=1)
MAX_WAIT = dt.timedelta(minutes=5)


class Throttled(Exception):
    """Too many failed logins: try again in `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed logins; try again in {retry_after} seconds")
        self.retry_after = retry_after


@dataclass(frozen=True)
class _Counts:
    pair: int
    pair_last: dt.datetime | None
    account: int
    address: int
    address_last: dt.datetime | None


def begin(s: Session, account: str, client: str, *, now: dt.datetime) -> None:
    """Raise Throttled if `account` may not be tried from `client` now; else count this
    try as a failure before the password is looked at, and check again. (A burst of
    tries sent at once all pass the first check; on the second each sees the others'
    rows, so no more than the free ones go on.) `succeeded` takes the row back.
    Commits; prunes rows older than `WINDOW` on the way."""
    _raise_if_waiting(s, account, client, now, pending=None)
    attempt = LoginFailure(account=account, client=client, at=now)
    s.add(attempt)
    s.execute(delete(LoginFailure).where(LoginFailure.at < now - WINDOW))
    s.commit()
    _raise_if_waiting(s, account, client, now, pending=attempt.id)


def succeeded(s: Session, account: str, client: str) -> None:
    """The right password: this address starts afresh on this account. The caller
    commits."""
    s.execute(delete(LoginFailure).where(LoginFailure.account == account,
                                         LoginFailure.client == client))


def _wait(counts: _Counts, now: dt.datetime) -> dt.timedelta:
    """How long a try must still wait, given the failures counted (zero: go on)."""
    until: list[dt.datetime] = []
    if counts.pair_last is not None:
        if counts.pair >= PAIR_FREE:
            until.append(counts.pair_last + _backoff(counts.pair - PAIR_FREE + 1))
        if counts.account >= ACCOUNT_CEILING:
            until.append(counts.pair_last + MAX_WAIT)
    if counts.address_last is not None and counts.address >= ADDRESS_FREE:
        until.append(counts.address_last + _backoff(counts.address - ADDRESS_FREE + 1))
    return max([t - now for t in until], default=dt.timedelta(0))


def _backoff(over: int) -> dt.timedelta:
    """The wait after the `over`-th failure past the free ones: 1 s, 2 s, 4 s ..."""
    doubled: dt.timedelta = FIRST_WAIT * 2 ** min(over - 1, 30)
    return min(MAX_WAIT, doubled)


def _raise_if_waiting(s: Session, account: str, client: str, now: dt.datetime, *,
                      pending: int | None) -> None:
    left = _wait(_count(s, account, client, now, pending), now)
    if left > dt.timedelta(0):
        raise Throttled(max(1, math.ceil(left.total_seconds())))


def _count(s: Session, account: str, client: str, now: dt.datetime,
           pending: int | None) -> _Counts:
    """The failures in the window of the pair, the account and the address, but for the
    row `pending` (this try's own)."""
    pair = and_(LoginFailure.account == account, LoginFailure.client == client)
    by_address = LoginFailure.client == client
    query = select(
        func.count().filter(pair), func.max(LoginFailure.at).filter(pair),
        func.count().filter(LoginFailure.account == account),
        func.count().filter(by_address), func.max(LoginFailure.at).filter(by_address),
    ).where(or_(LoginFailure.account == account, by_address),
            LoginFailure.at >= now - WINDOW)
    if pending is not None:
        query = query.where(LoginFailure.id != pending)
    row = s.execute(query).one()
    return _Counts(pair=row[0], pair_last=row[1], account=row[2], address=row[3],
                   address_last=row[4])
