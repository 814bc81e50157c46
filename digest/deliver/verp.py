"""VERP: an envelope sender per message naming its delivery, so a bounce says whose it is.

`[delivery] return_path = "bounces+{token}@news.example.org"` gives delivery 4711 the
envelope sender (MAIL FROM, which the receiving server writes as Return-Path) e.g.
`bounces+k3q7xw2mcdv5ya4n3nb@news.example.org`. Every bounce goes back to that address, and
`digest bounces process` reads the token from the address the DSN was sent to.

The token is the delivery id in base 36 after a 16-character HMAC-SHA256 tag (80 bits,
lower-case base 32) keyed with itsdangerous' key derivation from the signing key (salt
"verp"), so no one can make a bounce count against another delivery. It holds only
lower-case letters and digits because RFC 5321 (2.4) lets local parts be case-sensitive
but warns that hosts fold them, and some do: Postfix folds the address to lower case
for its table lookups, and mail systems that rewrite a bounce's recipient may too; a
token that means the same in any case survives all of them. itsdangerous' own
signatures are case-sensitive base 64, hence the raw HMAC re-encoded here.

Length: RFC 5321 (4.5.3.1.1) limits a local part to 64 octets. The longest token (a
63-bit delivery id: 13 base-36 digits) is 29 characters; the pattern's local part is
checked to leave room for it, and the whole address (with a sample token) is checked with
email-validator (syntax only, no DNS), when the sender starts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from email_validator import EmailNotValidError, validate_email
from itsdangerous import Signer

from digest.config import Settings
from digest.errors import ConfigError

TAG_CHARS = 16  # base 32 characters: 80 bits
LONGEST_TOKEN = TAG_CHARS + 13  # 36**13 > 2**63
LOCAL_PART_MAX = 64  # RFC 5321 4.5.3.1.1
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_TOKEN = re.compile(rf"[a-z2-7]{{{TAG_CHARS}}}[0-9a-z]{{1,13}}")
_PLAIN = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+")


class ReturnPath:
    """Makes each delivery's envelope sender from the pattern, and reads a delivery id
    back out of an address (None when the address holds no valid token)."""

    def __init__(self, pattern: str, secret_key: str) -> None:
        local, at, domain = pattern.strip().rpartition("@")
        if (not at or local.count("{token}") != 1 or "{token}" in domain
                or not pattern.isascii() or not domain):
            raise ConfigError(
                f"[delivery] return_path = {pattern!r} must be an address whose part before "
                "the @ holds {token} once, e.g. bounces+{token}@news.example.org")
        prefix, _, suffix = local.partition("{token}")
        if not _PLAIN.fullmatch(prefix + "x" + suffix) or ".." in local or local[0] == ".":
            raise ConfigError(f"[delivery] return_path = {pattern!r}: use only letters, "
                              "digits and + - _ . around {token} (no quotes, no spaces)")
        if len(local) - len("{token}") + LONGEST_TOKEN > LOCAL_PART_MAX:
            raise ConfigError(
                f"[delivery] return_path = {pattern!r}: the part before the @ would grow to "
                f"{len(local) - len('{token}') + LONGEST_TOKEN} characters with the token; "
                f"mail servers refuse more than {LOCAL_PART_MAX}: shorten "
                f"{prefix + suffix!r}")
        sample = f"{prefix}{'a' * LONGEST_TOKEN}{suffix}@{domain}"
        try:  # syntax only, no DNS: a server refuses the MAIL FROM of a bad address
            validate_email(sample, check_deliverability=False)
        except EmailNotValidError as exc:
            raise ConfigError(
                f"[delivery] return_path = {pattern!r} is not a usable address ({exc}); "
                "give one like bounces+{token}@news.example.org, its domain one you "
                "receive mail for") from exc
        self.pattern = pattern.strip()
        self._prefix, self._suffix, self._domain = prefix, suffix, domain.lower()
        signer = Signer(secret_key, salt="verp", digest_method=hashlib.sha256)
        self._key = signer.derive_key()

    @classmethod
    def from_settings(cls, settings: Settings) -> ReturnPath | None:
        """The `[delivery] return_path` in use; None when it is empty (the from address)."""
        pattern = settings["delivery.return_path"].strip()
        return cls(pattern, settings.signing_key()) if pattern else None

    @property
    def domain(self) -> str:
        """The part after the @ (lower case): the envelope sender's domain, SPF's."""
        return self._domain

    def address(self, delivery_id: int) -> str:
        """The envelope sender of the delivery's message."""
        return f"{self._prefix}{self.token(delivery_id)}{self._suffix}@{self._domain}"

    def token(self, delivery_id: int) -> str:
        digits, n = [], delivery_id
        while True:
            n, d = divmod(n, 36)
            digits.append(_DIGITS[d])
            if not n:
                break
        number = "".join(reversed(digits))
        return self._tag(number) + number

    def delivery_of(self, address: str) -> int | None:
        """The delivery id an address (any case, with or without <>) names, when it is
        one of ours and its tag is right; else None."""
        local, _, domain = address.strip().strip("<>").lower().rpartition("@")
        prefix, suffix = self._prefix.lower(), self._suffix.lower()
        if (domain != self._domain or not local.startswith(prefix)
                or not local.endswith(suffix) or len(local) < len(prefix) + len(suffix)):
            return None
        token = local[len(prefix):len(local) - len(suffix)]
        if not _TOKEN.fullmatch(token):
            return None
        tag, number = token[:TAG_CHARS], token[TAG_CHARS:]
        if not hmac.compare_digest(tag, self._tag(number)):
            return None
        return int(number, 36)

    def _tag(self, number: str) -> str:
        mac = hmac.new(self._key, number.encode("ascii"), hashlib.sha256).digest()
        return base64.b32encode(mac[:10]).decode("ascii").lower()
