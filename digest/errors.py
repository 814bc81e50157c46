"""One exception root for everything a user can cause or fix.

    DigestError            base: the CLI prints "Error: <message>" and exits 1
    ├── ConfigError        a setting or the config file is wrong
    ├── NotFound           a list, source, edition or subscriber does not exist
    ├── InvalidInput       a value given by the user is unusable (URL, address, CSV row)
    ├── FetchError         a feed or page could not be fetched or parsed
    └── DeliveryError      a backend is misconfigured or unreachable as a whole

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


class FetchError(DigestError):
    """A feed or page could not be fetched or parsed; recorded on the source."""


class DeliveryError(DigestError):
    """The delivery backend as a whole cannot be used (bad host, bad login)."""
