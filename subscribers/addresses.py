"""Email addresses: one normal form, its hash and its domain.

Every address that reaches the database goes through `normalize`, so that one person is
one `Subscriber` however they typed it. The normal form is email-validator's (domain
lowercased, IDNA turned into its Unicode form, Unicode NFC) with the local part lowercased
too. RFC 5321 lets a server treat `Alice@` and `alice@` as different mailboxes, but no
real provider does, while people do type their address in different cases on different
days; merging them costs nothing in practice and avoids mailing one person twice.
"""

from __future__ import annotations

import functools
import hashlib
import re

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

from digest.errors import InvalidInput

# The common shape: an ASCII dot-atom local part (RFC 5322 atext). For it, email-validator
# checks nothing beyond this pattern, the lengths and the domain, so the domain's verdict
# can be cached: real files have few distinct domains, and the domain checks (IDNA, UTS-46,
# character by character) are two thirds of its cost. Anything else takes the full path,
# which also gives the error messages.
ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
SIMPLE_LOCAL = re.compile(rf"{ATEXT}(?:\.{ATEXT})*")
LOCAL_MAX, ADDRESS_MAX = 64, 254  # RFC 5321 limits in bytes, as email-validator applies them


def validate(email: str) -> str:
    """The address as email-validator normalizes it, local part left as typed.

    For addresses shown to people, like a list's From; subscribers use `normalize`.
    """
    text = email.strip()
    try:
        # No DNS: imports must be fast and offline, and bounces tell the truth later.
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        shown = text if len(text) <= 80 else text[:77] + "..."
        raise InvalidInput(f"{shown!r} is not a valid email address: {exc}") from None
    return result.normalized


def normalize(email: str) -> str:
    """The one form under which an address is stored, looked up and hashed.

    Raises InvalidInput("'x' is not a valid email address: <why>").
    """
    text = email.strip()
    local, at, domain = text.rpartition("@")
    if at and len(local) <= LOCAL_MAX and SIMPLE_LOCAL.fullmatch(local):
        forms = _domain_forms(domain)
        # email-validator checks the length as typed, normalized and in ASCII.
        if forms and len(local) + 1 + max(len(f.encode()) for f in forms) <= ADDRESS_MAX:
            return f"{local.lower()}@{forms[1]}"
    local, _, domain = validate(text).rpartition("@")
    return f"{local.lower()}@{domain}"


# A plain ASCII host name: labels of letters, digits and inner hyphens, and an
# alphabetic top-level domain. email-validator only lowercases such a domain, unless a
# label holds "--" (reserved, or Punycode) or the name is special-use; those take its path.
# A million-row import meets ~50,000 domains, and each full check costs ~95 µs.
_PLAIN_DOMAIN = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
_SPECIAL_USE = tuple(SPECIAL_USE_DOMAIN_NAMES)


@functools.lru_cache(maxsize=65536)
def _domain_forms(domain: str) -> tuple[str, str, str] | None:
    """(as typed, normalized, ASCII) if `domain` is valid, else None: take the full path."""
    lowered = domain.lower()
    # endswith() is broader than the special-use rule ("x.glocal"): such names merely
    # take the slow path.
    if (len(lowered) <= 253 and _PLAIN_DOMAIN.fullmatch(lowered) and "--" not in lowered
            and not lowered.endswith(_SPECIAL_USE)):
        return domain, lowered, lowered
    try:
        result = validate_email("postmaster@" + domain, check_deliverability=False)
    except EmailNotValidError:
        return None
    return domain, result.domain, result.ascii_domain


def email_hash(normalized: str) -> str:
    """sha256 hex of a normalized address: how suppression remembers it after `forget`."""
    return hashlib.sha256(normalized.encode("utf-8")).hexdigest()


def domain_hash(domain: str) -> str:
    """The `email_hash` of a blocked-domain row: "@" cannot start an address, so it
    never collides with one."""
    return email_hash("@" + domain)


def domain_of(normalized: str) -> str:
    """The part after the last "@" of a normalized address."""
    return normalized.rpartition("@")[2]


def normalize_domain(domain: str) -> str:
    """A bare domain in the same form `normalize` gives the part after the "@"."""
    text = domain.strip().lstrip("@")
    try:
        return domain_of(validate("postmaster@" + text))
    except InvalidInput:
        raise InvalidInput(
            f"{text!r} is not a valid domain; give it as example.org, without user or '@'"
        ) from None
