"""Personalized messages built in microseconds from an edition rendered once.

`MessageTemplate` does the slow work once per edition: it parses the slot tokens,
encodes everything around them, and serializes every constant header and MIME
boundary. `build()` then only fills the slots, encodes those few bytes, and joins bytes.

Each part goes in whichever transfer encoding is smaller for it: quoted-printable for
mostly Latin text, base64 for mostly non-Latin text (quoted-printable writes each byte
of a Hangul syllable as "=EA", nine characters for three bytes; base64 writes four).

Every message carries a Feedback-ID (Gmail's feedback loop: `feedback_id`) and, with a
`DkimSigner`, a DKIM signature whose constant parts are canonicalized once per edition.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import functools
import html
import random
import re
import secrets
from dataclasses import dataclass, field
from email.utils import format_datetime, parseaddr
from typing import TYPE_CHECKING
from urllib.parse import quote

import idna  # a dependency of requests: IDNA 2008 with UTS 46 mapping, unlike the stdlib codec

from digest import slots
from digest.deliver.dkim import relaxed_body, relaxed_header
from digest.errors import ConfigError, InvalidInput

if TYPE_CHECKING:
    from digest.deliver.dkim import DkimSigner

#: Its own generator, so that sending (in digest serve's thread) never moves the global
#: `random` state under code that seeds it (hypothesis, in the API schema test).
_NONCES = random.Random()

#: Slot names a rendered edition may hold (tokens as `digest.slots` writes them). Filled
#: here rather than by render.Slotted, which fills a whole text: encoding 17 KB of
#: quoted-printable per message costs ~100 us where filling only the lines that hold
#: slots costs ~10 us. It also keeps premailer and lxml out of a sender worker.
SLOT_NAMES = slots.NAMES

# What may not appear in an address or URL put into a header: controls, spaces, brackets.
_BAD_IN_HEADER = re.compile(r"[\x00-\x20\x7f<>]")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f]+")
# RFC 5322 specials: a display name holding one must be a quoted string.
_SPECIALS = re.compile(r'[][\\()<>@,:;".]')
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
# Longest UTF-8 run per encoded word: 39 bytes give 52 base64 characters, so
# "=?utf-8?b?...?=" is 64 characters and even "Subject: " + one word stays under 78.
_WORD_BYTES = 39
_FOLD = 78
# A display name in one encoded word when it fits in 45 bytes (60 base64 characters,
# 72 in all, under RFC 2047's 75): splitting a phrase between words is where decoders
# disagree, so avoid it for the names most people have.
_ONE_WORD_BYTES = 45
_NAME_CHARS = 100
# What each field of a Feedback-ID may hold: the colon separates them.
_FEEDBACK_FIELD = re.compile(r"[A-Za-z0-9._-]+")
_NOT_FEEDBACK = re.compile(r"[^A-Za-z0-9._-]+")
# A body piece's canonical form is the whole's only if no run of spaces or CRLF
# crosses its edges: it ends a line, or neither side of the edge is white space.
_WSP_OR_CR = b" \t\r"


@dataclass(frozen=True)
class Recipient:
    """One subscriber's values for the slots, and the delivery it belongs to."""

    delivery_id: int
    email: str  # may be internationalized (UTF-8 local part / IDN domain)
    name: str
    unsubscribe_url: str  # https URL with a signed token
    confirm_url: str = ""  # only in double opt-in mails
    # The unsubscribe token again, for the mailto's subject (see `digest inbound`).
    unsubscribe_token: str = ""
    manage_url: str = ""  # the preference page, with a signed token
    reason: str = ""  # why they get it: "You subscribed to <list> on <date>."


# BCP 47 in its common shapes: "en", "ko", "en-GB", "zh-Hant-TW".
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8})*")


@dataclass(frozen=True)
class Outgoing:
    """A message ready for a backend: envelope and the bytes to send."""

    delivery_id: int
    sender: str  # envelope MAIL FROM (bare address)
    recipient: str  # envelope RCPT TO (bare address)
    message_id: str  # "<...@domain>"
    data: bytes  # the whole RFC 5322 message, CRLF line endings
    # What an HTTP API that takes one body for many readers needs (SendGrid's
    # substitutions): the template this was built from and the reader's slot values, in
    # SLOT_NAMES order. Empty for messages built elsewhere.
    template: MessageTemplate | None = field(default=None, repr=False, compare=False)
    values: tuple[str, ...] = field(default=(), repr=False, compare=False)


class MessageTemplate:
    """Built once per edition; build() per subscriber costs microseconds
    (no Jinja2, no premailer, no email.message).

    Raises InvalidInput for an unusable from address, list id or slot token. Only the
    tokens of `slot_key` (the render's, see `digest.slots`) are slots.
    """

    def __init__(
        self,
        *,
        html: str,
        text: str,
        subject: str,
        from_addr: str,
        reply_to: str = "",
        list_id: str,
        list_name: str,
        unsubscribe_mailto: str = "",
        edition_key: str,
        slot_key: str,
        language: str = "",
        feedback_id: str = "",
        dkim: DkimSigner | None = None,
    ) -> None:
        from_name, sender = parseaddr(from_addr)
        sender = _ascii_address(sender, "from address")
        self.sender = sender
        self.domain = sender.rpartition("@")[2]
        if not _DOT_ATOM.fullmatch(edition_key):
            raise InvalidInput(
                f"edition key {edition_key!r} may hold only letters, digits, . and -"
            )
        self._mid_prefix = f"<{edition_key}."
        self._mid_suffix = f"@{self.domain}>"
        list_id = list_id.strip().strip("<>")
        if not _DOT_ATOM.fullmatch(list_id):
            raise InvalidInput(f"list id {list_id!r} must look like name.example.org")

        # The sources as rendered, slot tokens in place, for the API backends.
        self.text, self.html, self.slot_key = text, html, slot_key
        self._text = _body(text, slot_key, html=False)
        self._html = _body(html, slot_key, html=True)
        # "=" in quoted-printable is always followed by two hex digits or a line break,
        # and base64 has no "_", so a boundary starting "=_" never occurs inside a body.
        boundary = "=_" + secrets.token_hex(16)

        constant = [
            f"From: {_mailbox(from_name, sender)}",
            f"Subject: {_unstructured(subject, len('Subject: '))}",
        ]
        if reply_to:
            reply_name, reply_addr = parseaddr(reply_to)
            reply_addr = _ascii_address(reply_addr, "reply-to address")
            constant.append(f"Reply-To: {_mailbox(reply_name, reply_addr)}")
        constant += [
            "MIME-Version: 1.0",
        ]
        if language:
            if not _LANGUAGE_TAG.fullmatch(language):
                raise InvalidInput(f"language {language!r} is not a language tag like en or ko")
            # RFC 3282: mail clients choose a spell checker or offer a translation by it.
            constant.append(f"Content-Language: {language}")
        if feedback_id:
            if _CONTROLS.search(feedback_id) or len(feedback_id) > 200:
                raise InvalidInput(f"Feedback-ID {feedback_id[:50]!r} cannot go into a header")
            constant.append(f"Feedback-ID: {feedback_id}")
        #: For the API backends, which pass our headers on as fields.
        self.feedback_id = feedback_id
        constant += [
            f"List-Id: {_phrase(list_name)} <{list_id}>" if list_name else f"List-Id: <{list_id}>",
            # One-click unsubscribe (RFC 8058), required by Gmail and Yahoo for bulk senders.
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
            # Keeps vacation auto-replies from answering every subscriber's copy.
            "Precedence: bulk",
            f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"',
        ]
        part = "Content-Type: text/{}; charset=utf-8\r\nContent-Transfer-Encoding: {}"
        body_start = f"--{boundary}\r\n{part.format('plain', self._text.encoding)}\r\n\r\n"
        self._head_end = ("\r\n".join(constant) + "\r\n\r\n" + body_start).encode("ascii")
        self._between = (f"\r\n--{boundary}\r\n{part.format('html', self._html.encoding)}"
                         "\r\n\r\n").encode("ascii")
        self._end = f"\r\n--{boundary}--\r\n".encode("ascii")

        self._mailto = ""
        if unsubscribe_mailto:
            addr = _ascii_address(parseaddr(unsubscribe_mailto)[1], "unsubscribe mailto address")
            # The subject carries the unsubscribe link's token, so `digest inbound` knows
            # whom and which list without trusting the (forgeable) From of the reply.
            self._mailto = f",\r\n <mailto:{quote(addr, safe='@+')}?subject=unsubscribe"
        self._date: tuple[dt.datetime | None, str] = (None, "")
        self._dkim = dkim
        if dkim is not None:
            # The signed fields that are the same in every message, canonical once.
            self._dkim_fields = {
                name.lower(): relaxed_header(name, value)
                for name, _, value in (line.partition(": ") for line in constant)
            }
            self._dkim_start = body_start.encode("ascii")
            self._dkim_between = relaxed_body(self._between)
            self._dkim_end = relaxed_body(self._end)

    def build(self, r: Recipient, now: dt.datetime) -> Outgoing:
        """The message for one recipient. Raises InvalidInput for an unusable address or URL."""
        rcpt = _envelope_address(r.email)
        url = r.unsubscribe_url
        if _BAD_IN_HEADER.search(url) or len(url) > 900:
            raise InvalidInput(f"unsubscribe URL {url[:100]!r} cannot go into a header")
        when, date = self._date
        if when is not now:  # a batch is usually built with one `now`; one tuple stays thread-safe
            date = format_datetime(now if now.tzinfo else now.replace(tzinfo=dt.UTC))
            self._date = (now, date)
        nonce = _NONCES.getrandbits(32)  # tells retries apart; needs no secrecy
        message_id = f"{self._mid_prefix}{r.delivery_id}.{nonce:08x}{self._mid_suffix}"
        to = f"{_phrase(r.name)} <{rcpt}>" if r.name.strip() else rcpt
        unsubscribe = f"<{url}>{self._mailto_for(r.unsubscribe_token)}"
        head = (
            f"Date: {date}\r\nMessage-ID: {message_id}\r\nTo: {to}\r\n"
            f"List-Unsubscribe: {unsubscribe}\r\n"
        ).encode()
        values = (url, r.email, r.name, r.confirm_url, r.manage_url, r.reason)
        pieces: list[tuple[bytes, bytes]] | None = None
        if self._dkim is not None:
            pieces = [(self._dkim_start, self._dkim_start)]
        text = self._text.encode(values, pieces)
        if pieces is not None:
            pieces.append((self._between, self._dkim_between))
        html_part = self._html.encode(values, pieces)
        data = b"".join((head, self._head_end, text, self._between, html_part, self._end))
        if self._dkim is not None and pieces is not None:
            pieces.append((self._end, self._dkim_end))
            fields = self._dkim_fields | {
                "date": relaxed_header("Date", date),
                "message-id": relaxed_header("Message-ID", message_id),
                "to": relaxed_header("To", to),
                "list-unsubscribe": relaxed_header("List-Unsubscribe", unsubscribe),
            }
            data = self._dkim.sign(fields, self._dkim.body_hash(_canonical(pieces)), now) + data
        return Outgoing(r.delivery_id, self.sender, rcpt, message_id, data, self, values)

    def _mailto_for(self, token: str) -> str:
        if not self._mailto:
            return ""
        if _BAD_IN_HEADER.search(token) or len(token) > 500:
            raise InvalidInput(f"unsubscribe token {token[:50]!r} cannot go into a header")
        return f"{self._mailto}%20{quote(token, safe='')}>" if token else f"{self._mailto}>"


def feedback_id(number: int, list_name: str, sender_id: str) -> str:
    """The Feedback-ID header's value: `<list>-<number>:<list>:digest:<sender id>`, e.g.
    `morning-12:morning:digest:news-example` for what the CLI and console call Edition
    #12 of the list `morning`. Gmail's feedback loop reports spam rates per field, each
    field on its own, so the edition's field names its list too (Gmail asks that one
    identifier not stand for unrelated mail: a bare `12` would add up every list's #12).
    Raises ConfigError for a sender id that is not 1-64 letters, digits, `.`, `_` or
    `-` (`check_feedback_sender` holds a configured one to Gmail's 5 to 15); other
    characters of a list name become "-"."""
    if not _FEEDBACK_FIELD.fullmatch(sender_id) or len(sender_id) > 64:
        raise ConfigError(
            f"[delivery] feedback_id_sender {sender_id!r} may hold only letters, digits, "
            ". _ and -, 5 to 15 of them (Gmail's advice), like news-example"
        )
    name = _NOT_FEEDBACK.sub("-", list_name).strip("-") or "list"
    return f"{name}-{number}:{name}:digest:{sender_id}"


def check_feedback_sender(sender_id: str) -> None:
    """ConfigError unless a configured `[delivery] feedback_id_sender` is 5 to 15
    letters, digits, `.`, `_` or `-` (Gmail: "5-15 characters", stable). The default,
    the from domain, is not held to the length: it is what the operator already has."""
    if not _FEEDBACK_FIELD.fullmatch(sender_id) or not 5 <= len(sender_id) <= 15:
        raise ConfigError(
            f"[delivery] feedback_id_sender {sender_id!r} must be 5 to 15 letters, digits, "
            f". _ or - (Gmail's rule; it has {len(sender_id)} characters), like news-example"
        )


def _canonical(pieces: list[tuple[bytes, bytes]]) -> list[bytes]:
    """The body's relaxed canonical form from its pieces' (raw, canonical) pairs.

    Relaxed body canonicalization works within lines, so the pieces' forms joined are the
    whole's when every edge between two pieces ends a line, or has no space, tab or CR
    on either side. Otherwise (a filled slot ending in a space at the end of a part) the
    whole body is canonicalized again, more slowly but the same."""
    before = b"\n"
    for raw, _ in pieces:
        if not raw:
            continue
        if before != b"\n" and (before in _WSP_OR_CR or raw[:1] in b" \t"):
            return [relaxed_body(b"".join(raw for raw, _ in pieces))]
        before = raw[-1:]
    return [canonical for _, canonical in pieces]


def _body(source: str, slot_key: str, *, html: bool) -> _QPBody | _Base64Body:
    """The part in the smaller of its two encodings (measured with the slots unfilled,
    which are a few dozen bytes of a part of many kilobytes)."""
    qp = _QPBody(source, slot_key, html=html)
    if source.isascii():  # quoted-printable is never larger for ASCII
        return qp
    b64 = _Base64Body(source, slot_key, html=html)
    return b64 if b64.size < qp.size else qp


class _QPBody:
    """A body part as quoted-printable: lines without slots encoded once, the rest per build.

    Quoted-printable state ends at each hard line break, so encoding a part line-group by
    line-group gives a valid encoding of the whole.
    """

    encoding = "quoted-printable"

    def __init__(self, source: str, slot_key: str, *, html: bool) -> None:
        self._escape = html
        marker, tokens = slots.marker(slot_key), slots.pattern(slot_key)
        self._static: list[bytes] = []  # static[i] is followed by dynamic[i], if any
        self._dynamic: list[str] = []  # str.format templates; slots are {0} to {5}
        # Runs of lines alternate: plain (no slot), then with slots, then plain...
        runs: list[list[str]] = [[]]
        lines = _unix_newlines(source).split("\n")
        for i, line in enumerate(lines):
            if i < len(lines) - 1:
                line += "\n"
            if (marker in line) != (len(runs) % 2 == 0):
                runs.append([])
            runs[-1].append(line)
        for i, run in enumerate(runs):
            if i % 2:
                self._dynamic.append(_format_template("".join(run), tokens))
            else:
                self._static.append(_qp("".join(run)))
        if len(runs) % 2 == 0:
            self._static.append(b"")
        self.size = sum(map(len, self._static))
        self._canonical: list[bytes] | None = None  # the static runs' DKIM form, when signing

    def encode(self, values: tuple[str, ...],
               pieces: list[tuple[bytes, bytes]] | None = None) -> bytes:
        """The part's body; with `pieces`, each piece and its relaxed DKIM form added."""
        if pieces is not None and self._canonical is None:
            self._canonical = [relaxed_body(static) for static in self._static]
        canonical = self._canonical or []
        if not self._dynamic:
            if pieces is not None:
                pieces.append((self._static[0], canonical[0]))
            return self._static[0]
        filled = [_unix_newlines(v) if "\r" in v else v for v in values]
        if self._escape:
            filled = [html.escape(v) for v in filled]
        out: list[bytes] = []
        for i, template in enumerate(self._dynamic):
            line = _qp(template.format(*filled))
            out += (self._static[i], line)
            if pieces is not None:
                pieces += ((self._static[i], canonical[i]), (line, relaxed_body(line)))
        out.append(self._static[-1])
        if pieces is not None:
            pieces.append((self._static[-1], canonical[-1]))
        return b"".join(out)


class _Base64Body:
    """A body part as base64: the text between slots encoded once, the slots per build.

    Base64 turns each 3 bytes into 4 characters, so a stretch of text can be encoded
    ahead only from a 3-byte boundary, and where that is depends on how long the
    filled slots before it are. So each stretch is kept encoded for the three ways it
    can start (0, 1 or 2 bytes left over before it): `build()` encodes the few bytes
    around each slot and joins the rest. Lines end at each stretch, shorter than 76
    characters there: decoders ignore line breaks in base64 (RFC 2045, 6.8).
    """

    encoding = "base64"

    def __init__(self, source: str, slot_key: str, *, html: bool) -> None:
        self._escape = html
        parts = slots.pattern(slot_key).split(_crlf(source))
        self._slots: list[int] = []
        for name in parts[1::2]:
            if name not in SLOT_NAMES:
                raise InvalidInput(
                    f"unknown slot {name!r} in the template; known: {', '.join(SLOT_NAMES)}"
                )
            self._slots.append(SLOT_NAMES.index(name))
        # For each stretch and each count of bytes left over before it: the bytes that
        # complete that group, the rest encoded, and the 0-2 bytes it leaves over (None:
        # too short to complete the group, so all of it is left over).
        self._stretches: list[list[tuple[bytes, bytes, bytes | None]]] = []
        for text in parts[0::2]:
            data = text.encode("utf-8")
            ways: list[tuple[bytes, bytes, bytes | None]] = []
            for carry in range(3):
                need = (3 - carry) % 3
                if len(data) < need:
                    ways.append((data, b"", None))
                    continue
                rest = data[need:]
                cut = len(rest) - len(rest) % 3
                ways.append((data[:need], _b64(rest[:cut]), rest[cut:]))
            self._stretches.append(ways)
        whole = len(_crlf(source).encode("utf-8"))
        self.size = (whole + 2) // 3 * 4 + 2 * ((whole + 56) // 57)

    def encode(self, values: tuple[str, ...],
               pieces: list[tuple[bytes, bytes]] | None = None) -> bytes:
        """The part's body; with `pieces`, added as one piece: base64 lines hold no
        white space, so they are their own relaxed DKIM form."""
        filled = [_crlf(v) for v in values]
        if self._escape:
            filled = [html.escape(v) for v in filled]
        data = [v.encode("utf-8") for v in filled]
        out: list[bytes] = []
        carry = b""
        for i, ways in enumerate(self._stretches):
            if i:  # the slot before this stretch
                chunk = carry + data[self._slots[i - 1]]
                cut = len(chunk) - len(chunk) % 3
                out.append(_b64(chunk[:cut]))
                carry = chunk[cut:]
            head, encoded, rest = ways[len(carry)]
            if rest is None:
                carry += head
                continue
            out.append(_b64(carry + head))
            out.append(encoded)
            carry = rest
        out.append(_b64(carry))
        body = b"".join(out)
        if pieces is not None:
            pieces.append((body, body))
        return body


def _b64(data: bytes) -> bytes:
    """Base64 in lines of at most 76 characters, each ending in CRLF."""
    if not data:
        return b""
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def _crlf(text: str) -> str:
    """Text with CRLF line breaks, as base64 text parts carry it (RFC 2045's canonical form)."""
    return _unix_newlines(text).replace("\n", "\r\n")


def _format_template(line: str, tokens: re.Pattern[str]) -> str:
    """A line with slot tokens as a str.format template over SLOT_NAMES."""
    parts = tokens.split(line.replace("{", "{{").replace("}", "}}"))
    for j in range(1, len(parts), 2):
        if parts[j] not in SLOT_NAMES:
            raise InvalidInput(
                f"unknown slot {parts[j]!r} in the template; known: {', '.join(SLOT_NAMES)}"
            )
        parts[j] = f"{{{SLOT_NAMES.index(parts[j])}}}"
    return "".join(parts)


def _qp(text: str) -> bytes:
    """Quoted-printable with CRLF line breaks and lines of at most 76 characters."""
    if not text:
        return b""
    # b2a_qp picks its line break from the first one it meets, so feed it "\n" only.
    return binascii.b2a_qp(text.encode("utf-8"), istext=True).replace(b"\n", b"\r\n")


def _unix_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _encoded_words(text: str, size: int = _WORD_BYTES) -> str:
    """RFC 2047 base64 encoded words of at most `size` UTF-8 bytes, one per folded line,
    never splitting a character."""
    data = text.encode("utf-8")
    words = []
    i = 0
    while i < len(data):
        j = min(i + size, len(data))
        while j < len(data) and data[j] & 0xC0 == 0x80:  # UTF-8 continuation byte
            j -= 1
        words.append(f"=?utf-8?b?{binascii.b2a_base64(data[i:j], newline=False).decode()}?=")
        i = j
    return "\r\n ".join(words)


def _phrase(name: str) -> str:
    """A display name as an RFC 5322 phrase: bare or quoted when ASCII, else encoded words.

    Names are cut at 100 characters, so no header line can grow past the limit.
    """
    name = _CONTROLS.sub(" ", name).strip()[:_NAME_CHARS]
    if name.isascii():
        if not _SPECIALS.search(name) and "=?" not in name:
            return name
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if len(name.encode()) <= _ONE_WORD_BYTES:
        return _encoded_words(name, _ONE_WORD_BYTES)
    # Split only at spaces, keeping each space inside the word before it: decoders drop
    # the folding whitespace between two encoded words (Python's parser keeps it, so it
    # shows such a name with a doubled space).
    words: list[str] = []
    for token in name.split(" "):
        if words and len((words[-1] + token).encode()) < _ONE_WORD_BYTES:
            words[-1] += " " + token
        else:
            if words:
                words[-1] += " "
            words.append(token)
    return "\r\n ".join(_encoded_words(w, _ONE_WORD_BYTES) for w in words)


def _mailbox(name: str, addr: str) -> str:
    return f"{_phrase(name)} <{addr}>" if name.strip() else addr


def _unstructured(text: str, used: int) -> str:
    """A header value like Subject: folded at spaces when ASCII, encoded words otherwise."""
    text = _CONTROLS.sub(" ", text).strip()
    if not text.isascii() or "=?" in text:
        return _encoded_words(text)
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        if line and used + len(line) + 1 + len(word) > _FOLD:
            lines.append(line)
            line, used = word, 1  # a folded line starts with the space that was there
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    if max(len(line) for line in lines) > 900:  # a word too long to fold (998 is the limit)
        return _encoded_words(text)
    return "\r\n ".join(lines)


def _ascii_address(addr: str, what: str) -> str:
    """Our own addresses (from, reply-to, mailto): ASCII, with an IDN domain converted."""
    local, at, domain = addr.strip().rpartition("@")
    if not at or not local or not domain or _BAD_IN_HEADER.search(addr.strip()):
        raise InvalidInput(f"{what} {addr!r} is not an email address")
    if not local.isascii():
        raise InvalidInput(f"{what} {addr!r}: use an address whose part before @ is ASCII")
    return f"{local}@{_ascii_domain(domain)}"


def _envelope_address(email: str) -> str:
    """A subscriber's address for RCPT TO and To: IDN domains become A-labels; a UTF-8
    local part stays as it is and needs a server with SMTPUTF8."""
    if _BAD_IN_HEADER.search(email) or "@" not in email:
        raise InvalidInput(f"recipient {email!r} is not an email address")
    if email.isascii():
        return email
    local, _, domain = email.rpartition("@")
    # A domain that is no valid IDN stays in UTF-8: allowed with SMTPUTF8, which the
    # backend then requires, and the server judges it.
    with contextlib.suppress(InvalidInput):
        domain = _ascii_domain(domain)
    return f"{local}@{domain}"


@functools.lru_cache(maxsize=1024)
def _ascii_domain(domain: str) -> str:
    if domain.isascii():
        return domain
    try:
        return str(idna.encode(domain, uts46=True).decode("ascii"))
    except idna.IDNAError as exc:
        raise InvalidInput(f"domain {domain!r} is not a valid international name") from exc
