"""Public sign-up and preferences, no login: the subscribe form, and the page behind a
signed "manage" link where a person changes their lists or leaves all mail.

The subscribe form answers the same page, byte for byte, whatever the address: new,
pending, confirmed, unsubscribed or suppressed. What happens behind it differs:

- new, pending or unsubscribed: pending on a double opt-in list, and a confirmation
  mail (at most one per person and list in `confirm.RESEND_AFTER`); on a single
  opt-in list a new or pending address is confirmed at once, but one that
  unsubscribed must confirm by mail: a form anyone can fill in does not undo someone's
  unsubscribe;
- confirmed: nothing at all, no mail (a "you are already subscribed" mail would let
  anyone mail any subscriber at will, and tells them nothing they need);
- suppressed: nothing at all.
A typed name is stored only for a new address, so a stranger cannot rename a subscriber.

The form is guarded three ways, none needing a cookie or a script: a signed, dated
`form_token` (stateless, valid a day), a honeypot field bots fill in and people do not
see (a filled one gets the same answer and nothing done), and a per-IP limit of
SUBSCRIBE_LIMIT posts in SUBSCRIBE_WINDOW seconds (429 with Retry-After; an IPv6
client counts by its /64).

The preference page needs no CSRF token: as with one-click unsubscribe (docs/web.md),
the signed token in its URL is the credential and there is no session to ride on.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.types import Message

from digest.app import App
from digest.deliver.confirm import queue_confirmation
from digest.errors import InvalidInput
from digest.web.deps import AppDep, PagesDep
from digest.web.forms import in_transaction, read_body
from digest.web.mail_links import MAX_TOKEN, refused_link
from digest.web.pages import Pages, mask_email, sentence
from digest.web.public_views import (
    ListChoice,
    PreferenceChoice,
    PreferencesPage,
    SubscribedPage,
    SubscribePage,
)
from digest.web.throttle import Throttle, client_key, retry_after_header
from digest.web.words import page_language, shared_language, words
from subscribers.addresses import normalize
from subscribers.lists import all_lists
from subscribers.members import (
    SUPPRESSED,
    add_member,
    confirm,
    is_suppressed,
    unsubscribe,
    unsubscribe_all,
    verify_owner,
)
from subscribers.models import MailingList, Membership, MembershipStatus, Subscriber
from subscribers.tokens import MAX_AGE, ClockSigner, TokenData

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

#: Posts of the subscribe form allowed per client IP in any SUBSCRIBE_WINDOW seconds.
SUBSCRIBE_LIMIT = 5
SUBSCRIBE_WINDOW = 600.0
#: How long a subscribe form stays good after it was shown.
FORM_MAX_AGE = 24 * 3600
FORM_SALT = "digest.web.subscribe-form"
HONEYPOT = "website"
# Four fields and the ticked lists; the one-click form's cap of 20 (mail_links.py)
# would limit the lists.
MAX_FIELDS = 200
WEB_ORIGIN, PREFERENCES_ORIGIN = "web", "preferences"  # Membership.origin
REASON_PREFERENCES = "preferences"


# -- the subscribe form ----------------------------------------------------------------


@router.api_route("/subscribe", methods=["GET", "HEAD"])
def subscribe_form(request: Request, app: AppDep, pages: PagesDep) -> Response:
    """The form, with every public list to tick."""
    return _form_page(request, app, pages, None)


@router.api_route("/subscribe/{list_name}", methods=["GET", "HEAD"])
def subscribe_form_one(list_name: str, request: Request, app: AppDep,
                       pages: PagesDep) -> Response:
    """The form for one public list, ticked already."""
    return _form_page(request, app, pages, list_name)


@router.post("/subscribe")
async def subscribe_post(request: Request, app: AppDep, pages: PagesDep) -> Response:
    return await _sign_up(request, app, pages, None)


@router.post("/subscribe/{list_name}")
async def subscribe_post_one(list_name: str, request: Request, app: AppDep,
                             pages: PagesDep) -> Response:
    return await _sign_up(request, app, pages, list_name)


def _form_page(request: Request, app: App, pages: Pages, list_name: str | None) -> Response:
    with app.sessions() as s:
        offered = _offered(s, list_name)
    chosen = frozenset(c.name for c in offered) if len(offered) == 1 else frozenset()
    return _render_form(request, pages, offered, list_name, chosen=chosen)


def _render_form(request: Request, pages: Pages, offered: list[ListChoice],
                 list_name: str | None, *, chosen: frozenset[str], email: str = "",
                 name: str = "", error: tuple[str, str] = ("", ""),
                 status: int = 200) -> Response:
    lang, said = _form_language(request, offered, list_name)
    title = (said["subscribe_to"].format(title=offered[0].title) if list_name and offered
             else said["subscribe_title"])
    field, message = error
    if message:  # the tab's title says the form failed, before anything else is read
        title = said["error_title"].format(title=title)
    page = SubscribePage(
        title=title, lang=lang, words=said, lists=offered, chosen=chosen, email=email,
        name=name, error=message, error_field=field,
        form_token=_guards(request).form_token(),
        action="/subscribe" + (f"/{list_name}" if list_name else ""),
    )
    # private: the page holds a dated token, and may hold what was typed.
    return pages.render("web/subscribe.html", page, status=status, private=True)


async def _sign_up(request: Request, app: App, pages: Pages,
                   list_name: str | None) -> Response:
    guards = _guards(request)
    ip = client_ip(request)
    # Counted before anything else: bots post forged and empty forms too.
    wait = guards.throttle.hit(client_key(ip))
    if wait:
        lang, said = guards.shown_in(list_name)
        return pages.message(
            429, said["busy_heading"],
            said["busy_body"].format(minutes=max(1, round(wait / 60))), lang=lang,
            headers={"Retry-After": retry_after_header(wait)})
    form = await read_form(request)
    if not guards.form_token_ok(_first(form, "form_token")):
        lang, said = guards.shown_in(list_name)
        return pages.message(400, said["reload_heading"], said["reload_body"], lang=lang,
                             private=True)
    return await run_in_threadpool(_answer, request, app, pages, list_name, form, ip)


def _answer(request: Request, app: App, pages: Pages, list_name: str | None,
            form: list[tuple[str, str]], ip: str) -> Response:
    """The checked form's answer: the form again with what is wrong, or "check your
    inbox" (the same page whatever the address, and whether anything was done)."""
    email, name = _first(form, "email").strip()[:320], _first(form, "name").strip()[:200]
    wanted = {value for key, value in form if key == "lists"}
    with app.sessions() as s:
        offered = _offered(s, list_name)
    chosen = [c for c in offered if c.name in wanted]
    lang, said = _form_language(request, offered, list_name)
    title = said["inbox_title" if any(c.double_optin for c in chosen) else "inbox_title_single"]
    inbox = SubscribedPage(title=title, lang=lang, words=said, lists=chosen)
    if _first(form, HONEYPOT).strip():  # a bot: the usual answer, and nothing done
        return pages.render("web/subscribed.html", inbox, private=True)
    error = _form_error(email, chosen, lang)
    if error[1]:
        return _render_form(request, pages, offered, list_name, status=400, error=error,
                            chosen=frozenset(c.name for c in chosen), email=email, name=name)
    queued = in_transaction(
        app, lambda s: sign_up(s, [c.name for c in chosen], email, name, ip, app.clock()))
    if queued:
        app.mail_queued.set()  # the sender mails them; a request never sends
    return pages.render("web/subscribed.html", inbox, private=True)


def _form_language(request: Request, offered: list[ListChoice],
                   list_name: str | None) -> tuple[str, Mapping[str, str]]:
    """The `lang` and words of the sign-up pages: the offered lists' one language (the
    list's own on /subscribe/<name>), else English; noted for `_Guards.shown_in`."""
    lang = shared_language(c.language for c in offered)
    _guards(request).languages[list_name] = lang
    return lang, words(lang)


def _form_error(email: str, chosen: list[ListChoice], lang: str) -> tuple[str, str]:
    """The field that is wrong ("email" or "lists") and what to do about it; two empty
    strings when the form is good."""
    said = words(lang)
    try:
        normalize(email)
    except InvalidInput as exc:
        if not email:
            return "email", said["subscribe_no_email"]
        # email-validator says what is wrong, in English: an English form shows it.
        return "email", sentence(str(exc)) if lang == "en" else said["subscribe_bad_email"]
    if not chosen:
        return "lists", said["subscribe_no_list"]
    return "", ""


def sign_up(s: Session, list_names: list[str], email: str, name: str, ip: str,
            now: dt.datetime) -> list[str]:
    """Put `email` on each list by the rules in the module docstring; the names of the
    lists that queued a confirmation mail."""
    address = normalize(email)
    known = s.scalar(select(Subscriber).where(Subscriber.email == address))
    queued = []
    for mlist in s.scalars(select(MailingList).where(MailingList.name.in_(list_names))):
        before = _status(known, mlist)
        membership, outcome = add_member(
            s, mlist, address, name=name if known is None else "",
            confirmed=not mlist.double_optin and before != MembershipStatus.UNSUBSCRIBED,
            origin=WEB_ORIGIN, ip=ip, now=now)
        if membership is not None and outcome != SUPPRESSED \
                and queue_confirmation(s, membership, now):
            queued.append(mlist.name)
    return queued


def _status(subscriber: Subscriber | None, mlist: MailingList) -> str | None:
    if subscriber is None:
        return None
    return next((m.status for m in subscriber.memberships if m.list_id == mlist.id), None)


def _offered(s: Session, list_name: str | None) -> list[ListChoice]:
    """The public, active lists, by title; only `list_name` if given (404 unless it is
    one of them: a private list's name is not confirmed to exist)."""
    lists = [m for m in all_lists(s) if m.public]
    if list_name is not None:
        lists = [m for m in lists if m.name == list_name]
        if not lists:
            raise HTTPException(404)
    return sorted((choice(m) for m in lists), key=lambda c: (c.title.casefold(), c.name))


def choice(mlist: MailingList) -> ListChoice:
    return ListChoice(name=mlist.name, title=mlist.title, description=mlist.description,
                      language=mlist.language, double_optin=mlist.double_optin)


# -- the preference page ---------------------------------------------------------------


@router.api_route("/preferences/{token}", methods=["GET", "HEAD"])
def preferences_page(token: str, app: AppDep, pages: PagesDep) -> Response:
    """The person's lists with their current choices. Changes nothing."""
    with app.sessions() as s:
        try:
            data, subscriber = _owner(s, app, token)
        except InvalidInput as exc:
            return _refused(app, pages, exc, token)
        page = _preferences(s, data, subscriber)
    return pages.render("web/preferences.html", page, private=True)


@router.post("/preferences/{token}")
async def preferences_post(token: str, request: Request, app: AppDep,
                           pages: PagesDep) -> Response:
    """`action=save` with the ticked `lists`: join (confirmed: the link proves the
    address) and leave (reason "preferences"); `scope=all`: leave all mail."""
    form = await read_form(request)
    leave_all = _first(form, "scope") == "all"
    if not leave_all and _first(form, "action") != "save":
        return pages.message(400, "Nothing was changed", "use the buttons on the "
                             "preferences page", private=True)
    wanted = {value for key, value in form if key == "lists"}
    ip, now = client_ip(request), app.clock()

    def work(s: Session) -> PreferencesPage:
        data, subscriber = _owner(s, app, token)
        if leave_all:
            unsubscribe_all(s, subscriber.email, now=now, detail=REASON_PREFERENCES)
            return _preferences(s, data, subscriber, notice="left_all_notice")
        _save(s, subscriber, wanted, ip, now)
        return _preferences(s, data, subscriber, notice="saved")

    try:
        page = await run_in_threadpool(in_transaction, app, work)
    except InvalidInput as exc:
        return _refused(app, pages, exc, token)
    return pages.render("web/preferences.html", page, private=True)


def _owner(s: Session, app: App, token: str) -> tuple[TokenData, Subscriber]:
    if len(token) > MAX_TOKEN:
        raise InvalidInput("this link is not valid; copy the whole link from the email")
    data = app.tokens.read(token, "manage", MAX_AGE["manage"])
    return data, verify_owner(s, data)


def _language(s: Session, data: TokenData, subscriber: Subscriber) -> str:
    """The preference page's language: that of the list whose mail held the link (its
    manage token names it; links mailed before it did name none), else the one all the
    person's lists share, else English."""
    mlist = s.get(MailingList, data.list_id) if data.list_id is not None else None
    if mlist is not None:
        return page_language(mlist.language)
    on = [m for m in subscriber.memberships if m.status != MembershipStatus.UNSUBSCRIBED]
    return shared_language(m.mailing_list.language for m in on or subscriber.memberships)


def _choices(s: Session, subscriber: Subscriber) -> list[tuple[MailingList, Membership | None]]:
    """The lists the page offers: every public active list, and any other active list
    the person is on (they may leave it, not join it), by title."""
    memberships = {m.list_id: m for m in subscriber.memberships}
    shown = [(m, memberships.get(m.id)) for m in all_lists(s)]
    shown = [(m, ms) for m, ms in shown
             if m.public or (ms is not None and ms.status != MembershipStatus.UNSUBSCRIBED)]
    return sorted(shown, key=lambda pair: (pair[0].title.casefold(), pair[0].name))


def _preferences(s: Session, data: TokenData, subscriber: Subscriber, *,
                 notice: str = "") -> PreferencesPage:
    """The page; `notice` a key of its words ("" for none)."""
    lists = [
        PreferenceChoice(**vars(choice(mlist)),
                         subscribed=ms is not None and ms.status != MembershipStatus.UNSUBSCRIBED,
                         pending=ms is not None and ms.status == MembershipStatus.PENDING)
        for mlist, ms in _choices(s, subscriber)
    ]
    lang = _language(s, data, subscriber)
    said = words(lang)
    return PreferencesPage(title=said["preferences_title"], lang=lang, words=said,
                           email=mask_email(subscriber.email), lists=lists,
                           suppressed=is_suppressed(s, subscriber.email),
                           notice=said[notice] if notice else "")


def _save(s: Session, subscriber: Subscriber, wanted: set[str], ip: str,
          now: dt.datetime) -> None:
    suppressed = is_suppressed(s, subscriber.email)
    for mlist, membership in _choices(s, subscriber):
        if mlist.name not in wanted:
            if membership is not None:
                unsubscribe(s, membership, now=now, reason=REASON_PREFERENCES)
        elif suppressed:
            continue  # no list can be joined; the page says so
        elif membership is not None and membership.status == MembershipStatus.PENDING:
            confirm(s, membership, now=now, ip=ip)
        elif membership is None or membership.status == MembershipStatus.UNSUBSCRIBED:
            add_member(s, mlist, subscriber.email, confirmed=True, origin=PREFERENCES_ORIGIN,
                       ip=ip, now=now)


def _refused(app: App, pages: Pages, exc: InvalidInput, token: str) -> Response:
    return refused_link(app, pages, exc, token, "manage", after="refused_preferences")


# -- guards: form token, throttle ------------------------------------------------------


@dataclass
class _Guards:
    """The subscribe form's signed token and per-IP throttle, one pair per web app, and
    the language each form (/subscribe, /subscribe/<name>) was last shown in, by list
    name (None: every list; public lists only, so it stays small)."""

    throttle: Throttle
    signer: URLSafeTimedSerializer
    languages: dict[str | None, str] = field(default_factory=dict)

    def shown_in(self, list_name: str | None) -> tuple[str, Mapping[str, str]]:
        """The `lang` and words the form at /subscribe[/list_name] was last shown in
        (English before it was): the throttled and stale-form answers, which come
        before any database work on purpose, speak it."""
        lang = self.languages.get(list_name, "en")
        return lang, words(lang)

    def form_token(self) -> str:
        return str(self.signer.dumps("subscribe"))

    def form_token_ok(self, token: str) -> bool:
        if not token or len(token) > MAX_TOKEN:
            return False
        try:
            return bool(self.signer.loads(token, max_age=FORM_MAX_AGE) == "subscribe")
        except BadSignature:  # also SignatureExpired
            return False


_guards_lock = threading.Lock()


def form_token(request: Request) -> str:
    """A signed, dated token for a sign-up form on any page (the front page's too)."""
    return _guards(request).form_token()


def _guards(request: Request) -> _Guards:
    """The web app's guards, made on first use on the App's clock (so tests can move
    time) and signing key."""
    state = request.app.state
    with _guards_lock:
        guards: _Guards | None = getattr(state, "subscribe_guards", None)
        if guards is None:
            app: App = state.digest
            clock: Callable[[], float] = lambda: app.clock().timestamp()  # noqa: E731
            signer = URLSafeTimedSerializer(app.settings.signing_key(), salt=FORM_SALT,
                                            signer=ClockSigner,
                                            signer_kwargs={"clock": clock})
            guards = _Guards(Throttle(SUBSCRIBE_LIMIT, SUBSCRIBE_WINDOW, clock=clock), signer)
            state.subscribe_guards = guards
    return guards


# -- plumbing ----------------------------------------------------------------------------


def client_ip(request: Request) -> str:
    """The client's address as uvicorn reports it: X-Forwarded-For only from trusted
    proxies (see docs/web.md, "Behind a reverse proxy")."""
    return (request.client.host if request.client else "")[:64]


async def read_form(request: Request) -> list[tuple[str, str]]:
    """The text fields of a POSTed form (urlencoded or multipart) in order, repeated
    names kept, read with `forms.read_body`'s size cap; files are refused (400)."""
    body = await read_body(request)

    async def replay() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    form = await Request(request.scope, replay).form(max_files=0, max_fields=MAX_FIELDS)
    return [(k, v) for k, v in form.multi_items() if isinstance(v, str)]


def _first(form: list[tuple[str, str]], name: str) -> str:
    return next((value for key, value in form if key == name), "")
