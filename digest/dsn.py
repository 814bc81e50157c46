"""Bounce messages (DSNs) read into `digest.feedback.Feedback` notices, for `digest bounces
process`.

Which recipient failed, and whether for good, is flufl.bounce's job: it knows RFC 3464
DSNs and the older shapes of Postfix, Exim, qmail, Exchange, Gmail and a dozen others
(its `all_failures` gives the temporary and the permanent set; a permanent failure is a
hard bounce, a temporary one, a delay warning or a 4.x.x status, a soft bounce).

Which delivery it is about comes from us, not from the bounce:

1. the VERP address it was sent to (`[delivery] return_path`): the token in an envelope
   or header recipient (Delivered-To, X-Original-To, Envelope-To, To, or the address
   given with `--recipient`), checked with the signing key;
2. else the original Message-ID quoted in the returned message (a message/rfc822 or
   text/rfc822-headers part), else named by the bounce's own X-Original-Message-ID,
   In-Reply-To or References, else a "Message-ID:" line in the text; which
   `Delivery.message_id` holds.

An ARF report (RFC 5965, `multipart/report; report-type=feedback-report`: a receiver
forwarding a reader's "this is spam" to the return path) is a complaint about the
delivery it names, found the same way.

A message in which flufl.bounce finds no failed recipient is an "auto-reply" when it
says it was sent automatically (RFC 3834 `Auto-Submitted` other than "no", `X-Autoreply`,
`Precedence: auto_reply`: vacation and challenge-response replies) and comes from no
mailer daemon; it is counted, not kept (it is a reader's own mail, and no bounce).
Otherwise (a bounce shape flufl.bounce does not know, a broken MIME structure), or
when flufl.bounce raises (no From header, empty, UTF-16, binary junk), it is
"unparsable": counted, kept aside, logged in one line at INFO, without flufl.bounce's
traceback.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email
import email.message
import email.utils
import hashlib
import logging
import mailbox
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from flufl.bounce import all_failures
from sqlalchemy.orm import Session

from digest.deliver.verp import ReturnPath
from digest.errors import InvalidInput
from digest.feedback import OUTCOMES, Feedback, record
from digest.files import PRIVATE, private_folder

log = logging.getLogger(__name__)

# Where the address a bounce was delivered to shows, most trustworthy first.
_RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "To")
_MESSAGE_ID = re.compile(r"^\s*Message-ID:\s*(<[^>\s]+>)", re.IGNORECASE | re.MULTILINE)
_DAEMONS = frozenset(("mailer-daemon", "postmaster", "mail-daemon", "mailer"))
_ANGLED = re.compile(r"<[^<>\s]+@[^<>\s]+>")
_STATUS = re.compile(r"^\s*Status:\s*([245]\.\d{1,3}\.\d{1,3})", re.IGNORECASE | re.MULTILINE)
_DIAGNOSTIC = re.compile(r"^\s*Diagnostic-Code:\s*(.+(?:\n[ \t]+.+)*)",
                         re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class Reading:
    """What a bounce message says: a notice, or why there is none and what it counts as
    ("unparsable", or "auto-reply" for a vacation or challenge-response reply)."""

    feedback: Feedback | None
    problem: str = ""
    outcome: str = "unparsable"


def read_bounce(raw: bytes, return_path: ReturnPath | None, *, now: dt.datetime,
                recipient: str = "") -> Reading:
    """The notice one bounce message makes. `recipient`: the address the MTA delivered
    it to, when known apart from the headers (a pipe's ${original_recipient})."""
    try:
        msg = email.message_from_bytes(raw)
        if (msg.get_content_type() == "multipart/report"
                and str(msg.get_param("report-type", "")).lower() == "feedback-report"):
            return _complaint(msg, return_path, now=now, recipient=recipient)
        with _quiet_flufl():
            temporary, permanent = all_failures(msg)
    except Exception as exc:  # a message flufl.bounce cannot read is one bad input
        return Reading(None, f"unreadable: {type(exc).__name__}: {exc}"[:200])
    failed = sorted(_text(a) for a in permanent) or sorted(_text(a) for a in temporary)
    if not failed:
        if _auto_reply(msg):
            return Reading(None, "an automatic reply (RFC 3834), not a bounce", "auto-reply")
        return Reading(None, "no failed recipient found (not a bounce?)")
    text = _all_text(msg)
    delivery_id = _verp_delivery(msg, return_path, recipient)
    message_id = "" if delivery_id is not None else _original_message_id(msg, text)
    status = _STATUS.search(text)
    diagnostic = _DIAGNOSTIC.search(text)
    detail = " ".join(filter(None, (status.group(1) if status else "",
                                    " ".join(diagnostic.group(1).split()) if diagnostic
                                    else "")))
    return Reading(Feedback(
        provider="dsn", kind="hard_bounce" if permanent else "soft_bounce",
        email=failed[0], at=_date(msg, now), message_id=message_id,
        delivery_id=delivery_id, detail=detail[:300],
    ))


class _NoDetectorTracebacks(logging.Filter):
    """flufl.bounce logs a traceback ("Exception in detector") before it raises for mail
    it cannot scan (no From header, an empty or UTF-16 message, binary junk); the
    exception is caught and the message counted unparsable, so the traceback is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and record.getMessage().startswith("Exception in detector"))


_FLUFL = logging.getLogger("flufl.bounce")
_QUIET = _NoDetectorTracebacks()


@contextlib.contextmanager
def _quiet_flufl() -> Iterator[None]:
    _FLUFL.addFilter(_QUIET)
    try:
        yield
    finally:
        _FLUFL.removeFilter(_QUIET)


def _complaint(msg: email.message.Message, return_path: ReturnPath | None, *,
               now: dt.datetime, recipient: str) -> Reading:
    """An ARF report (RFC 5965: a receiver's "this is spam" sent back to the return
    path): a complaint about the delivery its address or quoted message names. The
    recipient is the report's Original-Rcpt-To, else the quoted message's To (often
    redacted: the delivery's own address is taken then)."""
    fields: email.message.Message | None = None
    for part in msg.walk():
        if part.get_content_type() == "message/feedback-report":
            inner = part.get_payload(0) if part.is_multipart() else \
                email.message_from_string(_decoded(part))
            fields = inner if isinstance(inner, email.message.Message) else None
            break
    text = _all_text(msg)
    rcpt = str(fields.get("Original-Rcpt-To", "")) if fields is not None else ""
    if not rcpt:
        rcpt = _quoted_to(msg)
    address = email.utils.parseaddr(rcpt)[1]
    kind = str(fields.get("Feedback-Type", "abuse")).strip() if fields is not None else "abuse"
    delivery_id = _verp_delivery(msg, return_path, recipient)
    message_id = "" if delivery_id is not None else _original_message_id(msg, text)
    return Reading(Feedback(
        provider="dsn", kind="complaint", email=address if "@" in address else "",
        at=_date(msg, now), message_id=message_id, delivery_id=delivery_id,
        detail=f"ARF feedback report: {kind}"[:300],
    ))


def _quoted_to(msg: email.message.Message) -> str:
    """The To of the message a report quotes (a message/rfc822 or text/rfc822-headers
    part); "" when there is none."""
    for part in msg.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822" and part.is_multipart():
            inner = part.get_payload(0)
            if isinstance(inner, email.message.Message):
                return str(inner.get("To", ""))
        if kind == "text/rfc822-headers":
            return str(email.message_from_string(_decoded(part)).get("To", ""))
    return ""


def _auto_reply(msg: email.message.Message) -> bool:
    """Whether the message says it was sent automatically: RFC 3834's Auto-Submitted (any
    value but "no"), or the older X-Autoreply, X-Autorespond and Precedence: auto_reply."""
    sender = email.utils.parseaddr(str(msg.get("From", "")))[1].partition("@")[0].lower()
    if msg.get_content_type() == "multipart/report" or sender in _DAEMONS:
        return False  # a bounce flufl.bounce could not read: kept aside for a look
    submitted = str(msg.get("Auto-Submitted", "")).strip().lower()
    precedence = str(msg.get("Precedence", "")).strip().lower()
    return ((bool(submitted) and submitted != "no") or precedence == "auto_reply"
            or any(msg.get(name) for name in ("X-Autoreply", "X-Autorespond",
                                                "X-Autoresponder")))


def _text(address: bytes | str) -> str:
    return address.decode("utf-8", "replace") if isinstance(address, bytes) else address


def _verp_delivery(msg: email.message.Message, return_path: ReturnPath | None,
                   recipient: str) -> int | None:
    if return_path is None:
        return None
    candidates = [recipient] if recipient else []
    for name in _RECIPIENT_HEADERS:
        for value in msg.get_all(name, []):
            candidates += [addr for _, addr in email.utils.getaddresses([str(value)])]
    for address in candidates:
        found = return_path.delivery_of(address)
        if found is not None:
            return found
    return None


def _original_message_id(msg: email.message.Message, text: str) -> str:
    """The Message-ID of the message that bounced: the returned part's header, else a
    quoted header line that is not the bounce's own."""
    for part in msg.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822" and part.is_multipart():
            inner = part.get_payload(0)
            if isinstance(inner, email.message.Message) and inner.get("Message-ID"):
                return str(inner["Message-ID"]).strip()
        if kind == "text/rfc822-headers":
            found = _MESSAGE_ID.search(_decoded(part))
            if found:
                return found.group(1)
    # No quoted message: the bounce's own headers may name ours.
    for name in ("X-Original-Message-ID", "In-Reply-To", "References"):
        ids = _ANGLED.findall(str(msg.get(name, "")))
        if ids:
            return str(ids[-1])  # References: the last is the message replied to
    own = str(msg.get("Message-ID", "")).strip().lower()
    for found in _MESSAGE_ID.finditer(text):
        if found.group(1).lower() != own:
            return found.group(1)
    return ""


def _all_text(msg: email.message.Message) -> str:
    """The text of every non-multipart part, the returned message's headers included."""
    parts = []
    for part in msg.walk():
        if part.get_content_type() == "message/delivery-status":
            # Its payload is a list of header blocks (per message, then per recipient).
            blocks = part.get_payload()
            if isinstance(blocks, list):
                parts += ["".join(f"{k}: {v}\n" for k, v in block.items())
                          for block in blocks if isinstance(block, email.message.Message)]
                continue
        if part.is_multipart():
            if part.get_content_type() == "message/rfc822" and part is not msg:
                inner = part.get_payload(0)
                if isinstance(inner, email.message.Message):
                    parts.append("".join(f"{k}: {v}\n" for k, v in inner.items()))
            continue
        parts.append(_decoded(part))
    return "\n".join(parts)


def _decoded(part: email.message.Message) -> str:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload.decode(part.get_content_charset() or "utf-8", "replace")
    body = part.get_payload()
    if isinstance(body, list):  # message/delivery-status: header blocks as messages
        return "\n".join(str(block) for block in body)
    return str(body)


def _date(msg: email.message.Message, now: dt.datetime) -> dt.datetime:
    """The bounce's Date, in UTC; `now` when it has none that makes sense."""
    try:
        when = email.utils.parsedate_to_datetime(str(msg.get("Date", "")))
    except (TypeError, ValueError, IndexError):
        return now
    if when is None or when.tzinfo is None or when > now + dt.timedelta(days=1):
        return now
    return when.astimezone(dt.UTC)


@dataclass
class Tally:
    """What a run of `process` did: notices by outcome, and the messages kept aside."""

    counts: dict[str, int]
    kept: list[str]


def process(sessions: Callable[[], Session], messages: Iterable[tuple[str, bytes]], *,
            return_path: ReturnPath | None, soft_limit: int, now: dt.datetime,
            keep_dir: Path, recipient: str = "") -> Tally:
    """Record each bounce (one commit each, so a crash loses nothing done); copy those
    unmatched or unparsable into `keep_dir`/<outcome>/, named by their content's hash,
    so a second run keeps no second copy; automatic replies are only counted (they are
    readers' own mail, not for keeping). Never raises for one bad message."""
    tally = Tally(dict.fromkeys((*OUTCOMES, "unparsable", "auto-reply"), 0), [])
    for name, raw in messages:
        reading = read_bounce(raw, return_path, now=now, recipient=recipient)
        if reading.feedback is None:
            outcome = reading.outcome
            log.info("bounce %s: %s", name, reading.problem)
        else:
            with sessions() as s:
                outcome = record(s, reading.feedback, soft_limit=soft_limit, now=now)
                s.commit()
        tally.counts[outcome] += 1
        if outcome in ("unmatched", "unparsable"):
            tally.kept.append(str(_keep(keep_dir / outcome, raw)))
    return tally


def _keep(folder: Path, raw: bytes) -> Path:
    private_folder(folder)
    path = folder / f"{hashlib.sha256(raw).hexdigest()[:24]}.eml"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE)
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
    return path


def messages_at(path: str) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of each message: `-` one on standard input, a Maildir's new/ and
    cur/, an mbox file, or a file holding one message. InvalidInput for anything else."""
    if path == "-":
        yield "stdin", sys.stdin.buffer.read()
        return
    where = Path(path)
    if where.is_dir():
        if not (where / "new").is_dir() or not (where / "cur").is_dir():
            raise InvalidInput(f"{where} is a folder but not a Maildir (no new/ and cur/)")
        for sub in ("new", "cur"):
            for file in sorted((where / sub).iterdir()):
                if file.is_file():
                    yield f"{sub}/{file.name}", file.read_bytes()
        return
    if not where.is_file():
        raise InvalidInput(f"{where} does not exist: give a Maildir, an mbox file or -")
    with where.open("rb") as f:
        first = f.read(5)
    if first != b"From ":
        yield where.name, where.read_bytes()
        return
    box = mailbox.mbox(where, create=False)
    try:
        for key, message in box.iteritems():
            yield f"{where.name}#{key}", message.as_bytes()
    finally:
        box.close()
