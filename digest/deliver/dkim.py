"""DKIM signatures (RFC 6376) on the mail digest hands over itself: SMTP and the outbox.

`DkimSigner.from_settings` loads the key once, when a sender starts, so a missing or
unusable key is one `Error:` then, never a failure per message. `MessageTemplate` asks
it for one signature per message (relaxed/relaxed, rsa-sha256).

Why not `dkim.sign()` itself: it parses the whole message, canonicalizes the whole body
with regular expressions (about 2 ms for a 70 KB edition here) and signs with RSA in pure
Python (about 7 ms). Every reader's body differs only in a few footer lines, so the
template canonicalizes the constant parts once per edition with dkimpy's own
canonicalization (`dkim.canonicalization`) and only the filled lines per message; the
headers that never change are canonicalized once too; and the RSA step is OpenSSL's
(`cryptography`, about 0.25 ms). `dkim.verify` checks the result in the tests.

The API providers sign with their own keys (set up at the provider); SES replaces
Date and Message-ID, which this signature covers, so only SMTP and the outbox sign.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import re
import textwrap
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from dkim.canonicalization import (
    compress_whitespace,
    strip_trailing_whitespace,
    unfold_header_value,
)

from digest.errors import ConfigError

if TYPE_CHECKING:
    from digest.config import Settings

log = logging.getLogger(__name__)

#: The header fields the signature covers, in h= order: what a receiver shows (From,
#: To, Subject, Date), what identifies the message and the list, the one-click
#: unsubscribe pair (RFC 8058 §4: both must be signed, else no one-click button in
#: Gmail or Yahoo), the MIME structure and the feedback-loop id. From is listed twice
#: (oversigned, as dkimpy does by default): a second From added on the way breaks it.
SIGNED = ("from", "to", "subject", "date", "message-id", "list-id", "list-unsubscribe",
          "list-unsubscribe-post", "mime-version", "content-type", "feedback-id", "from")
#: Backends whose messages arrive as we signed them.
SIGNING_BACKENDS = ("smtp", "outbox")
#: Gmail and Yahoo refuse shorter keys (email-providers.md §8).
MIN_BITS = 1024
_SELECTOR = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*")
_DOMAIN = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,63}\.?")


def relaxed_header(name: str, value: str) -> bytes:
    """One header field in relaxed canonical form (RFC 6376 §3.4.2), with its CRLF."""
    folded = unfold_header_value(value.encode("utf-8"))
    value_bytes: bytes = compress_whitespace(folded)
    return name.lower().encode("ascii") + b":" + value_bytes.strip() + b"\r\n"


def relaxed_body(piece: bytes) -> bytes:
    """A stretch of body in relaxed canonical form (RFC 6376 §3.4.4), trailing empty lines
    kept: canonicalizing stretches one by one gives the whole body's form as long as no
    run of spaces or line break crosses from one to the next (see `MessageTemplate`)."""
    canonical: bytes = compress_whitespace(strip_trailing_whitespace(piece))
    return canonical


class DkimSigner:
    """A domain, selector and RSA private key; `sign` makes a DKIM-Signature header."""

    def __init__(self, domain: str, selector: str, key: rsa.RSAPrivateKey) -> None:
        self.domain = domain.rstrip(".").lower()
        self.selector = selector
        self._key = key
        # h= folded after a colon (FWS is allowed there), keeping lines under 78.
        self._signed = ":\r\n\t".join(
            (":".join(SIGNED[:6]), ":".join(SIGNED[6:9]), ":".join(SIGNED[9:])))

    @classmethod
    def from_settings(cls, settings: Settings) -> DkimSigner | None:
        """The signer `[dkim]` describes, or None when `domain` is empty or the backend
        does not send what we sign. Raises ConfigError saying what to fix."""
        if not settings["dkim.domain"] or settings["delivery.backend"] not in SIGNING_BACKENDS:
            return None
        return cls.load(settings["dkim.domain"], settings["dkim.selector"],
                        settings["dkim.private_key_file"])

    @classmethod
    def load(cls, domain: str, selector: str, key_file: str | Path) -> DkimSigner:
        """Read and check the key. Raises ConfigError naming the setting and the fix."""
        if not _DOMAIN.fullmatch(domain):
            raise ConfigError(f"[dkim] domain {domain!r} is not a domain name; set the "
                              "domain of the from address, like news.example.org")
        if not _SELECTOR.fullmatch(selector or ""):
            raise ConfigError(f"[dkim] selector {selector!r} must be letters, digits and "
                              "hyphens, like digest or mail2026")
        if not str(key_file):
            raise ConfigError("[dkim] domain is set but private_key_file is empty; make a "
                              "key with `openssl genrsa -out dkim.pem 2048` and set "
                              "private_key_file, or empty [dkim] domain to send unsigned")
        path = Path(key_file)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ConfigError(f"[dkim] private_key_file {path} does not exist; make it with "
                              f"`openssl genrsa -out {path} 2048`, or empty [dkim] domain "
                              "to send unsigned") from None
        except OSError as exc:
            raise ConfigError(f"[dkim] private_key_file {path} cannot be read ({exc.strerror}); "
                              "let the user running digest read it (chmod 600, owned by "
                              "that user)") from None
        signer = cls(domain, selector, _private_key(data, path))
        if path.stat().st_mode & 0o007:
            log.warning("[dkim] private_key_file %s is readable by every user of this machine: "
                        "anyone who copies it can sign mail as %s; chmod 600 %s (owned by "
                        "the user running digest), and if others may have read it, rotate "
                        "the key (docs/operations.md, Rotating keys)", path, domain, path)
        return signer

    # -- what DNS must hold ---------------------------------------------------------

    @property
    def record_name(self) -> str:
        """Where the public key is published: <selector>._domainkey.<domain>."""
        return f"{self.selector}._domainkey.{self.domain}"

    @property
    def public_key(self) -> str:
        """The public key as DNS carries it: base64 of its SubjectPublicKeyInfo."""
        der = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return base64.b64encode(der).decode("ascii")

    @property
    def record(self) -> str:
        """The TXT record's text (one string; DNS splits it, see `txt_strings`)."""
        return f"v=DKIM1; k=rsa; p={self.public_key}"

    @property
    def bits(self) -> int:
        return self._key.key_size

    # -- signing ------------------------------------------------------------------

    def body_hash(self, canonical: Iterable[bytes]) -> bytes:
        """The bh= value of a body given as stretches already in relaxed form."""
        h = hashlib.sha256()
        for piece in canonical:
            h.update(piece)
        return base64.b64encode(h.digest())

    def sign(self, headers: Mapping[str, bytes], body_hash: bytes, now: dt.datetime) -> bytes:
        """The `DKIM-Signature: ...` header line (CRLF-terminated) to put on top.

        headers: the message's header fields named in SIGNED, each in relaxed form
        (`relaxed_header`); one missing is signed as absent, so it cannot be added later.
        """
        when = int((now if now.tzinfo else now.replace(tzinfo=dt.UTC)).timestamp())
        value = (f" v=1; a=rsa-sha256; c=relaxed/relaxed; d={self.domain};"
                 f" s={self.selector}; t={when};\r\n"
                 f"\th={self._signed};\r\n\tbh={body_hash.decode('ascii')};\r\n\tb=")
        data = bytearray()
        seen: set[str] = set()
        for name in SIGNED:
            if name not in seen:  # a second listing selects the (absent) second field
                data += headers.get(name, b"")
                seen.add(name)
        # The signature header itself, relaxed, b= empty and without its CRLF (§3.7).
        data += relaxed_header("DKIM-Signature", value).rstrip(b"\r\n")
        signature = self._key.sign(bytes(data), padding.PKCS1v15(), hashes.SHA256())
        b64 = base64.b64encode(signature).decode("ascii")
        return f"DKIM-Signature:{value}{_fold(b64)}\r\n".encode("ascii")


def txt_strings(record: str, size: int = 255) -> list[str]:
    """A TXT record's text cut into the ≤255-character strings DNS allows in one record
    (receivers join them without spaces)."""
    return [record[i:i + size] for i in range(0, len(record), size)] or [""]


def _fold(b64: str) -> str:
    # Lines of at most 76 characters; receivers ignore whitespace in b= (§3.5).
    return "\r\n\t ".join(textwrap.wrap(b64, 72, break_on_hyphens=False))


def _private_key(data: bytes, path: Path) -> rsa.RSAPrivateKey:
    """The RSA key in a PEM file, or ConfigError saying what is wrong with it."""
    what = f"[dkim] private_key_file {path}"
    if b"-----BEGIN" not in data or b"PRIVATE KEY-----" not in data:
        hint = (" (it holds a public key: give the private one)"
                if b"PUBLIC KEY-----" in data else "")
        raise ConfigError(f"{what} holds no PEM private key{hint}; it should start with "
                          f"-----BEGIN PRIVATE KEY-----; {_new_key(path)}")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ConfigError(f"{what} is protected by a passphrase; write it out unprotected "
                          f"for the sender to another file (`openssl pkey -in {path} -out "
                          f"{_beside(path, 'plain')}`), keep that file readable by its user "
                          "only and set private_key_file to it (the key, hence DNS, stays "
                          "the same)") from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ConfigError(f"{what} is not a readable private key ({exc}); "
                          f"{_new_key(path)}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"{what} is not an RSA key; DKIM here signs with rsa-sha256, "
                          f"which every receiver checks; {_new_key(path)}")
    if key.key_size < MIN_BITS:
        raise ConfigError(f"{what} has {key.key_size} bits; Gmail and Yahoo want at least "
                          f"{MIN_BITS}; {_new_key(path)}")
    return key


def _beside(path: Path, tag: str) -> Path:
    """A new file next to `path` (dkim.pem -> dkim-new.pem), so no hint overwrites the
    operator's key: the one DNS publishes now."""
    return path.with_name(f"{path.stem}-{tag}{path.suffix or '.pem'}")


def _new_key(path: Path) -> str:
    return (f"make a new 2048-bit key in a new file (`openssl genrsa -out "
            f"{_beside(path, 'new')} 2048`), set private_key_file to it with a new "
            "[dkim] selector, and publish its record (`digest check-dns`) before sending")
