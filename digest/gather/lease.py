"""The fetch lease: one fetch of a source at a time, across threads, processes and hosts.

The lease also says when its fetch began (`fetch_lease_from`, the time every article
the fetch stores is first seen at): an edition built meanwhile ends just before it
(`digest.editions.fetches_begun`), so nothing the fetch stores falls between editions.

Whoever fetches a source — the scheduler's round, the console's "Fetch now", `digest
fetch` — does it through `fetch_source`, which first takes the source's lease: one
conditional UPDATE of its row, so of two fetchers exactly one gets it, whatever they
run in; the other skips the source ("being fetched elsewhere"). The fetch frees the
lease in the commit that records its outcome.

The lease runs out by itself, so a fetcher that died does not hold its source for
ever; it lasts as long as the longest fetch the `[gather]` settings allow, so a live
fetch keeps it. Should one outlast it all the same (a database that stalled), the
unique index on each article's identity still keeps a second fetch from storing what
the first stores: the lease saves the duplicate work, the index is the guarantee.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import CursorResult, or_, update
from sqlalchemy.orm import Session

from digest.models import Source

#: Beyond the HTTP time: parsing, cleaning and storing, and waits for the database.
SLACK = dt.timedelta(minutes=2)


def lease_length(timeout: float, pages: int) -> dt.timedelta:
    """The longest a fetch may take: the feed and up to `pages` article pages (a
    full-text source's), each bounded by `[gather] timeout`, and the slack."""
    return dt.timedelta(seconds=timeout) * (1 + pages) + SLACK


def new_owner() -> str:
    """A name for one fetch, so that only it frees its lease."""
    return uuid.uuid4().hex


def take_lease(s: Session, source_id: int, owner: str, now: dt.datetime,
               length: dt.timedelta) -> bool:
    """Take the source's lease for `length` if it is free or has run out; whether this
    call took it. Commits, so that other fetchers see it at once."""
    result: CursorResult[Any] = s.execute(  # type: ignore[assignment]
        update(Source)
        .where(Source.id == source_id,
               or_(Source.fetch_lease_until.is_(None), Source.fetch_lease_until <= now))
        .values(fetch_lease_until=now + length, fetch_lease_owner=owner,
                fetch_lease_from=now),
        execution_options={"synchronize_session": False},
    )
    s.commit()
    return result.rowcount == 1


def release_lease(s: Session, source_id: int, owner: str) -> None:
    """Free the lease if `owner` still holds it (a fetch that outlived it must not free
    the one that took it over). Not committed: it goes with the fetch's outcome."""
    s.execute(
        update(Source)
        .where(Source.id == source_id, Source.fetch_lease_owner == owner)
        .values(fetch_lease_until=None, fetch_lease_owner="", fetch_lease_from=None),
        execution_options={"synchronize_session": False},
    )
