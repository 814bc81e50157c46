"""Slot tokens: the places in an edition, rendered once, where each reader's own values
go (their address, name, unsubscribe and confirm links), filled when each message is
built.

A token is `__DIGEST_SLOT_<key>_<name>__`, where `<key>` is 16 random hex digits drawn
for each render and stored with what was rendered (`editions.slot_key`). Only the tokens
the templates' `slot()` wrote carry that key, so nothing that came from a feed, an
editor or a template's data can name a slot: a feed item whose link holds
`__DIGEST_SLOT_email__` keeps it as written, and no reader's address is put in its place.
Editions rendered before keys existed have an empty key, and the old grammar
(`__DIGEST_SLOT_<name>__`) is read for them.

This module imports nothing heavy: the sender (`deliver.message`) and the renderer
(`render`) share it.
"""

from __future__ import annotations

import functools
import re
import secrets

PREFIX = "__DIGEST_SLOT_"
#: Per-subscriber values every message is given: `manage_url` leads to the reader's
#: preference page, `reason` says why they get the mail ("You subscribed to ... on ...").
NAMES = ("unsubscribe_url", "email", "name", "confirm_url", "manage_url", "reason")

# Names never start or end with "_" nor hold "__", so the closing "__" is unambiguous.
_NAME = r"[A-Za-z0-9]+(?:_[A-Za-z0-9]+)*"
_NAME_RE = re.compile(_NAME + r"\Z")
_KEY_RE = re.compile(r"(?:[0-9a-f]{16})?\Z")


def new_key() -> str:
    """A fresh key for one render: 64 random bits, which content cannot guess."""
    return secrets.token_hex(8)


def marker(key: str) -> str:
    """What every token of `key` starts with: a cheap test of whether a line holds one."""
    _check_key(key)
    return f"{PREFIX}{key}_" if key else PREFIX


def token(name: str, key: str) -> str:
    """The token for slot `name` in a render with `key`: letters, digits and `_` only, so
    it survives Jinja autoescaping, premailer and lxml untouched, in text and in
    attributes alike."""
    if not _NAME_RE.match(name):
        raise ValueError(f"slot name {name!r} must be letters and digits joined by single '_'")
    return f"{marker(key)}{name}__"


@functools.lru_cache(maxsize=64)
def pattern(key: str) -> re.Pattern[str]:
    """The tokens of `key`, with the slot name as the one group."""
    return re.compile(re.escape(marker(key)) + f"({_NAME})__")


def _check_key(key: str) -> None:
    if not _KEY_RE.match(key):
        raise ValueError(f"slot key {key!r} must be 16 hex digits (or empty, for old editions)")
