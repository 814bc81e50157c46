"""One exception root for everything a user can cause or fix.

    DigestError            base: the CLI prints "Error: <message>" and exits 1
    ├── ConfigError        a setting or the config file is wrong
    ├── NotFound           a list, source, edition or subscriber does not exist
    ├── InvalidInput       a value given by the user is unusable (URL, address, CSV row)
    │   └── NotReady       an edition may not go out as it stands (no articles, list archived)
    ├── FetchError         a feed or page could not be fetched or parsed
    ├── DeliveryError      a backend is misconfigured or unreachable as a whole
    └── DatabaseUnavailable  the database went away mid-work; tried again when it answers

Messages say what happened and what to do, e.g. "list 'news' not found; create it with
`digest lists create news`".
"""

from __future__ import annotations


class DigestError(Exception):
    """Base of every error the user can act on."""


class ConfigError(DigestError):
    """A setting, the config file or the environment is wrong."""


class NotFound(DigestError):
    """A named thing does not exist."""


class InvalidInput(DigestError):
    """A value given by the user cannot be used."""


class NotReady(InvalidInput):
    """The edition may not go out as it stands (`digest.editions.require_sendable`).

    An InvalidInput, so every entry point that refuses a request refuses this one too;
    the scheduler catches it alone, to leave the edition for the editors instead of
    failing, and the API answers it with 409 `not_ready`.
    """


class LinkExpired(InvalidInput):
    """A signed link that is ours and whole, but older than its days
    (`subscribers.tokens`): gone, not wrong, so the web answers it 410."""


class FetchError(DigestError):
    """A feed or page could not be fetched or parsed; recorded on the source."""


class DeliveryError(DigestError):
    """The delivery backend as a whole cannot be used (bad host, bad login)."""


class DatabaseUnavailable(DigestError):
    """The database stopped answering (a restart, a network cut) in the middle of work.

    Senders catch it, record what they could not write once the database is back, and
    go on; nothing is sent twice on its account (`digest.deliver.outcomes`).
    """
