"""Mail sent to `[delivery] unsubscribe_mailto`: unsubscribing by email.

Every message's List-Unsubscribe header offers `mailto:<address>?subject=unsubscribe
<token>`; mail clients send exactly that when the reader presses their unsubscribe
button. The token is the one in the https link: it names the subscriber and the list
and is signed. The From of the reply is not trusted (anyone can forge it), so a mail
without a valid token changes nothing and says so.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re
from dataclasses import dataclass
from email.message import EmailMessage

from sqlalchemy.orm import Session

from digest.errors import InvalidInput
from subscribers.members import token_membership, unsubscribe
from subscribers.tokens import Tokens

# itsdangerous tokens are URL-safe base64 and dots.
_TOKEN = re.compile(r"\bunsubscribe\s+([A-Za-z0-9_\-.]{16,})", re.IGNORECASE)


@dataclass(frozen=True)
class InboundResult:
    outcome: str  # unsubscribed | already | ignored
    detail: str


def handle_unsubscribe_mail(s: Session, tokens: Tokens, raw: bytes,
                            now: dt.datetime) -> InboundResult:
    """Unsubscribe the membership named by the token in the mail's subject (or, for
    clients that move it, the first lines of its body)."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    token = _find_token(msg)
    if token is None:
        return InboundResult("ignored", "no unsubscribe token in the subject; nothing changed")
    try:
        membership = token_membership(s, tokens.read(token, "unsubscribe"))
    except InvalidInput as exc:
        return InboundResult("ignored", f"the token does not work: {exc}")
    changed = unsubscribe(s, membership, now=now, reason="mailto")
    who = f"{membership.subscriber.email} from {membership.mailing_list.name}"
    return InboundResult("unsubscribed" if changed else "already", who)


def _find_token(msg: EmailMessage) -> str | None:
    match = _TOKEN.search(str(msg.get("Subject", "")))
    if match is None:
        body = msg.get_body(("plain",))
        if body is not None:
            try:
                text = body.get_content()
            except (LookupError, ValueError):  # unknown charset, broken encoding
                return None
            match = _TOKEN.search(str(text)[:2000])
    return match.group(1) if match else None
