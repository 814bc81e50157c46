"""The pages the links in mail lead to, no login: unsubscribe (the page and the RFC 8058
one-click POST) and confirm (double opt-in: the page, and its button's POST).

The signed token in the URL is the only credential. It names one subscriber (checked
against the stored address by `members.verify_owner`) and one list, so whatever a link
does, it does to that membership and nothing else; a damaged, foreign or wrong-purpose
token is refused with a page that says what to do and nothing about why inside.

Every page here speaks the list's language (`digest.web.words`), as the mail the link
came from did; a refusal does too when the link can still be read, else English.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from email.utils import parseaddr
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.types import Message

from digest.app import App
from digest.errors import InvalidInput, LinkExpired
from digest.web.deps import AppDep, PagesDep
from digest.web.forms import in_transaction, read_body
from digest.web.pages import Pages, mask_email, sentence
from digest.web.public_views import (
    ConfirmedPage,
    ConfirmPage,
    LeftPage,
    LinkRefusedPage,
    UnsubscribeManagePage,
)
from digest.web.words import page_language, refusal, words
from subscribers.members import (
    check_confirmable,
    confirm,
    token_membership,
    unsubscribe,
    unsubscribe_all,
)
from subscribers.models import MailingList, Membership, MembershipStatus
from subscribers.tokens import MAX_AGE, TokenData

router = APIRouter(include_in_schema=False)

# Real tokens are under 100 characters; anything far longer is not worth an HMAC.
MAX_TOKEN = 512
# An RFC 8058 body is one field; a few fields of a form fit easily.
MAX_FIELDS = 20

ONE_CLICK_FIELD, ONE_CLICK_VALUE = "List-Unsubscribe", "One-Click"
SCOPE_LIST, SCOPE_ALL = "list", "all"
# The page's own button says so in a hidden field, which tells a reader's click from a
# mail provider's one-click POST in the membership's record.
VIA_FIELD, VIA_PAGE = "via", "page"
REASON_ONE_CLICK, REASON_LINK, REASON_ALL = "one-click", "link", "unsubscribe_all"


# -- unsubscribe -----------------------------------------------------------------------


# HEAD too, for link checkers: the page changes nothing either way.
@router.api_route("/unsubscribe/{token}", methods=["GET", "HEAD"])
def unsubscribe_page(token: str, app: AppDep, pages: PagesDep) -> Response:
    """Who and which list, with the buttons. It changes nothing: mail scanners and link
    previews open every link in a message, and must not unsubscribe anyone by that."""
    with app.sessions() as s:
        try:
            membership = token_membership(s, _read(app, token, "unsubscribe"))
        except InvalidInput as exc:
            return refused_link(app, pages, exc, token, "unsubscribe",
                            mailto=_unsubscribe_mailto(app))
        subscriber, mlist = membership.subscriber, membership.mailing_list
        page = UnsubscribeManagePage(
            title=words(mlist.language)["unsubscribe_title"].format(title=mlist.title),
            subscribed=membership.status != MembershipStatus.UNSUBSCRIBED,
            # The list's id lets the preference page speak the list's language.
            manage_url="/preferences/"
            + app.tokens.make("manage", subscriber.id, mlist.id, subscriber.email),
            **_who(membership),
        )
    return pages.render("web/unsubscribe.html", page, private=True)


@router.post("/unsubscribe/{token}")
async def unsubscribe_post(token: str, request: Request, app: AppDep,
                           pages: PagesDep) -> Response:
    """RFC 8058 one-click: `List-Unsubscribe=One-Click` leaves the token's list;
    `scope=all` leaves every list and suppresses the address. Safe to repeat.

    No CSRF token, on purpose: mail providers POST from their servers, without cookies,
    scripts or a page of ours to take a token from, so none could be checked. None is
    needed: the signed token in the URL is the credential, there is no session cookie a
    forged cross-site request could ride on, and the most anyone holding the link can do
    is what the link was sent to let its holder do.
    """
    try:
        data = _read(app, token, "unsubscribe")
    except InvalidInput as exc:
        return refused_link(app, pages, exc, token, "unsubscribe",
                        mailto=_unsubscribe_mailto(app))
    fields = await _form_fields(request)
    if fields.get("scope") == SCOPE_ALL:
        scope = SCOPE_ALL
    elif fields.get(ONE_CLICK_FIELD, "").strip().lower() == ONE_CLICK_VALUE.lower():
        scope = SCOPE_LIST
    else:  # English: a mail provider's malformed POST, not a reader's button
        return pages.message(
            400, "Nothing was changed",
            "this address unsubscribes with a POST whose body is List-Unsubscribe=One-Click "
            "(RFC 8058), or scope=all to leave all mail. To unsubscribe in a browser, open "
            "the link from the email and press the button", private=True)
    reason = REASON_LINK if fields.get(VIA_FIELD) == VIA_PAGE else REASON_ONE_CLICK
    try:
        page = await run_in_threadpool(in_transaction, app,
                                       lambda s: _leave(s, data, scope, reason, app.clock()))
    except InvalidInput as exc:
        return refused_link(app, pages, exc, token, "unsubscribe",
                        mailto=_unsubscribe_mailto(app))
    return pages.render("web/unsubscribed.html", page, private=True)


def _leave(s: Session, data: TokenData, scope: str, reason: str, now: dt.datetime) -> LeftPage:
    membership = token_membership(s, data)
    mlist = membership.mailing_list
    said = words(mlist.language)
    if scope == SCOPE_ALL:
        changed = unsubscribe_all(s, membership.subscriber.email, now=now,
                                  detail=reason).changed
        title = said["left_all_heading"]
    else:
        changed = unsubscribe(s, membership, now=now, reason=reason)
        title = said["left_title"].format(title=mlist.title)
    # The requester's IP is not kept: leaving needs no proof of consent, and the
    # membership records only when and how (`reason`).
    return LeftPage(title=title, scope=scope, already=not changed, **_who(membership))


# -- confirm ---------------------------------------------------------------------------


@router.get("/confirm/{token}")
def confirm_page(token: str, app: AppDep, pages: PagesDep) -> Response:
    """Who and which list, with one button that confirms. Opening it changes nothing:
    mail scanners open every link in a message, and must not subscribe anyone by that.
    Not HEAD: a link checker's HEAD gets a 405."""
    data = _confirm_token(app, pages, token)
    if isinstance(data, Response):
        return data
    with app.sessions() as s:
        try:
            membership = token_membership(s, data)
            mlist = membership.mailing_list
            if membership.status == MembershipStatus.CONFIRMED:
                page = ConfirmedPage(
                    title=words(mlist.language)["confirmed_title"].format(title=mlist.title),
                    already=True, **_who(membership))
                return pages.render("web/confirmed.html", page, private=True)
            check_confirmable(membership, data)
        except InvalidInput as exc:
            return refused_link(app, pages, exc, token, "confirm")
        ask = ConfirmPage(title=words(mlist.language)["confirm_title"].format(title=mlist.title),
                          **_who(membership))
    return pages.render("web/confirm.html", ask, private=True)


@router.post("/confirm/{token}")
def confirm_post(token: str, request: Request, app: AppDep, pages: PagesDep) -> Response:
    """Confirm a pending subscription (the page's button); a second press says it is
    already confirmed. No CSRF token, as for one-click unsubscribe: the signed token in
    the URL is the credential, and there is no session a forged request could ride on."""
    data = _confirm_token(app, pages, token)
    if isinstance(data, Response):
        return data
    # Who clicked, for the consent record. Behind a reverse proxy, uvicorn replaces the
    # peer with X-Forwarded-For only for proxies it is told to trust (forwarded_allow_ips,
    # 127.0.0.1 by default), so this never believes a header any client can send.
    ip = (request.client.host if request.client else "")[:64]

    def work(s: Session) -> ConfirmedPage:
        membership = token_membership(s, data)
        changed = confirm(s, membership, now=app.clock(), ip=ip, link=data)
        mlist = membership.mailing_list
        return ConfirmedPage(
            title=words(mlist.language)["confirmed_title"].format(title=mlist.title),
            already=not changed, **_who(membership))

    try:
        page = in_transaction(app, work)
    except InvalidInput as exc:
        return refused_link(app, pages, exc, token, "confirm")
    return pages.render("web/confirmed.html", page, private=True)


def _confirm_token(app: App, pages: Pages, token: str) -> TokenData | Response:
    """What a confirm link says, or the page that refuses it: 410 with how to get a new
    one when it is good but older than its days, 400 otherwise."""
    try:
        return _read(app, token, "confirm")
    except LinkExpired:
        pass
    except InvalidInput as exc:
        return refused_link(app, pages, exc, token, "confirm")
    said, lang = _link_words(app, token, "confirm")
    days = int((MAX_AGE["confirm"] or 0) // 86400)
    page = LinkRefusedPage(title=said["expired_heading"], lang=lang,
                           heading=said["expired_heading"],
                           message=said["expired_confirm"].format(days=days), words=said)
    return pages.render("web/link_refused.html", page, status=410, private=True)


# -- plumbing --------------------------------------------------------------------------


def _read(app: App, token: str, purpose: str) -> TokenData:
    if len(token) > MAX_TOKEN:
        raise InvalidInput(f"this {purpose} link is not valid; copy the whole link from the "
                           "email, or ask for a new one")
    return app.tokens.read(token, purpose, MAX_AGE[purpose])


def _unaged(app: App, token: str, purpose: str) -> TokenData | None:
    """What a token says, read without its age limit; None when it cannot be read."""
    if len(token) > MAX_TOKEN:
        return None
    try:
        return app.tokens.read(token, purpose)
    except InvalidInput:
        return None


def _link_words(app: App, token: str, purpose: str) -> tuple[Mapping[str, str], str]:
    """The words and `lang` of a page about a link that was refused: its list's when
    the link still names one that exists (signed by us, so it came in that list's mail),
    else English."""
    data = _unaged(app, token, purpose)
    language = "en"
    if data is not None and data.list_id is not None:
        with app.sessions() as s:
            mlist = s.get(MailingList, data.list_id)
            language = mlist.language if mlist is not None else "en"
    lang = page_language(language)
    return words(lang), lang


def refused_link(app: App, pages: Pages, exc: InvalidInput, token: str, purpose: str, *,
             mailto: str = "", after: str = "") -> Response:
    """The page of a refused link, in its list's language when it can be told. The
    core's messages name no ids and no cause inside the token; they say what to do.
    `after` is a key of `words` said after the message."""
    said, lang = _link_words(app, token, purpose)
    message = sentence(refusal(lang, str(exc)))
    if after:
        message = f"{message} {said[after]}"
    # A good link past its days (a manage link from an old mail) is gone, not wrong: 410.
    expired = isinstance(exc, LinkExpired)
    heading = said["expired_heading" if expired else "refused_heading"]
    page = LinkRefusedPage(title=heading, lang=lang, heading=heading, message=message,
                           mailto=mailto, words=said)
    return pages.render("web/link_refused.html", page, status=410 if expired else 400,
                        private=True)


def _unsubscribe_mailto(app: App) -> str:
    """The address that unsubscribes by mail, if configured: when a link fails, that
    way still works, and the page says so."""
    return parseaddr(app.settings["delivery.unsubscribe_mailto"])[1]


def _who(membership: Membership) -> dict[str, Any]:
    """The fields every page about one membership has: who, which list, and the list's
    language for the page's words and `lang`."""
    mlist = membership.mailing_list
    return {"email": mask_email(membership.subscriber.email), "list_title": mlist.title,
            "list_language": mlist.language, "lang": page_language(mlist.language),
            "words": words(mlist.language)}


async def _form_fields(request: Request) -> dict[str, str]:
    """The text fields of a POSTed form, read with a size cap.

    RFC 8058 senders use application/x-www-form-urlencoded or multipart/form-data. A body
    with another or no content type is read as urlencoded: refusing an unsubscribe over
    a missing header would be worse than reading it.
    """
    body = await read_body(request)
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        async def replay() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        # Starlette answers a malformed body (or any file part: max_files=0) with a 400.
        form = await Request(request.scope, replay).form(max_files=0, max_fields=MAX_FIELDS)
        return {k: v for k, v in form.multi_items() if isinstance(v, str)}
    try:
        return dict(parse_qsl(body.decode("utf-8", "replace"), max_num_fields=MAX_FIELDS))
    except ValueError:  # too many fields
        return {}
