"""An edition's "view in browser" link: its page in the archive.

A public list's editions are in the public archive, so the link is the page's plain
address. A private list's archive is closed: its link carries a key, an itsdangerous
signature (the site's signing key, like the unsubscribe and manage links of
`subscribers.tokens`) over `[list_id, edition_id]` with a salt of its own, so a key opens
that one edition and no other, needs no login, and cannot be made without the secret. It
never expires: mail is read years later.
"""

from __future__ import annotations

from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer

from digest.errors import InvalidInput

SALT = "digest.edition"
MAX_KEY = 200  # a key is ~30 characters; longer input is not ours
NOT_VALID = "this link is not valid; copy the whole link from the email"


class EditionLinks:
    """Makes and checks the links to an edition's page in the archive."""

    def __init__(self, secret_key: str, public_url: str) -> None:
        self._signer = URLSafeSerializer(secret_key, salt=SALT)
        self._base = public_url.rstrip("/")

    def url(self, *, list_name: str, list_id: int, public: bool, edition_id: int,
            number: int) -> str:
        """The edition's page: plain for a public list, with its key for a private one."""
        page = f"{self._base}/archive/{list_name}/{number}"
        return page if public else f"{page}?key={self.key(list_id, edition_id)}"

    def key(self, list_id: int, edition_id: int) -> str:
        return str(self._signer.dumps([list_id, edition_id]))

    def opens(self, key: str, list_id: int, edition_id: int) -> bool:
        """Whether `key` is this edition's. Raises InvalidInput for a key that is no key
        of ours at all (damaged, cut short, made elsewhere)."""
        return self.names(key) == (list_id, edition_id)

    def names(self, key: str) -> tuple[int, int]:
        """The list and edition ids `key` was made for. Raises InvalidInput for a key
        that is no key of ours at all (damaged, cut short, made elsewhere)."""
        if len(key) > MAX_KEY:
            raise InvalidInput(NOT_VALID)
        try:
            payload: Any = self._signer.loads(key)
        except BadSignature:
            raise InvalidInput(NOT_VALID) from None
        if (not isinstance(payload, list) or len(payload) != 2
                or not all(type(n) is int for n in payload)):
            raise InvalidInput(NOT_VALID)
        return payload[0], payload[1]
