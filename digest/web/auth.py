"""Logging in, sessions, CSRF and roles for the desk, the console and the JSON API.

The session cookie (`digest_session`) is signed with the site's key (itsdangerous) and
holds a random CSRF token and, once logged in, the id of a session kept in the database
(digest.login_sessions). The row is what makes the cookie logged in: logging out deletes
it, so the cookie stops working in every web worker at once, and a copy of it kept
elsewhere opens nothing; the user's other sessions go on. A new password, a new role or
disabling a user deletes all of theirs. Anonymous visitors, who need a CSRF token for
the login form, have the signed cookie alone and no row. The cookie is HttpOnly,
SameSite=Lax, and Secure whenever the request came over HTTPS (uvicorn reads that from
the proxy's X-Forwarded-Proto when the proxy is trusted). It lasts `SESSION_MAX_AGE`,
as the session row does.

Every visitor of a page with a form gets a session, logged in or not, so the login form
carries a CSRF token too. Every form posted to a logged-in page must send the token back
(`csrf_token` field, or the X-CSRF-Token header); a mismatch is refused with 403 before
the route runs. Logging in issues a new session and token (no session fixation), and
ends the one the browser had. Failed logins are throttled by digest.login_throttle, by
account and client address (`client_key`: IPv6 by its /64).

Route parameters:
    Viewer       the visitor's WebSession (user may be None)
    EditorUser   a logged-in editor or admin; others go to /login, or get 403
    AdminUser    a logged-in admin
    CsrfForm     declare it on every POST route of a logged-in page
and for the JSON API, `api_user(role)` reads `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import hmac
import logging
import math
import secrets
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digest import login_sessions
from digest.app import App
from digest.login_throttle import Throttled
from digest.models import ADMIN, EDITOR
from digest.users import UserView, authenticate, dummy_hash, token_user
from digest.web.deps import AppDep, PagesDep
from digest.web.pages import Page, WebSession
from digest.web.throttle import client_key
from subscribers.tokens import ClockSigner

log = logging.getLogger(__name__)
#: The largest login or logout form read: a few short fields. Without a cap, anyone
#: could make a worker hold a body of any size in memory before the CSRF check.
FORM_MAX_BYTES = 16 * 1024
router = APIRouter(include_in_schema=False, max_body_size=FORM_MAX_BYTES)

COOKIE = "digest_session"
SESSION_MAX_AGE = int(login_sessions.LIFETIME.total_seconds())
CSRF_FIELD, CSRF_HEADER = "csrf_token", "x-csrf-token"
_STATE_KEY = "digest_set_cookie"
#: Where get_session leaves the id of the visitor's logged-in session, for logout.
_SESSION_ID_KEY = "digest_session_id"
_RANK = {EDITOR: 1, ADMIN: 2}


class LoginRequired(Exception):
    """Raised by a role check for an anonymous visitor: they are sent to log in."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


def install(web: FastAPI) -> None:
    """The cookie-writing middleware and the redirect to /login; the hash an unknown
    address is checked against is made now, so that no login waits for it."""
    dummy_hash()
    web.add_middleware(SessionCookie)
    web.add_exception_handler(LoginRequired, _to_login)


# -- the session cookie --------------------------------------------------------------


def session_serializer(app: App) -> URLSafeTimedSerializer:
    """Signs and reads the cookie, its age on the App's clock."""
    return URLSafeTimedSerializer(app.settings.signing_key(), salt="digest.web.session",
                                  signer=ClockSigner,
                                  signer_kwargs={"clock": lambda: app.clock().timestamp()})


def get_session(request: Request, app: AppDep) -> WebSession:
    """The visitor's session from their cookie; a new anonymous one (sent back as a
    cookie with the response) when there is none or it is no longer valid."""
    cached: WebSession | None = getattr(request.state, "digest_session", None)
    if cached is not None:
        return cached
    found = _read_cookie(app, request.cookies.get(COOKIE, ""))
    if found is None:
        session = WebSession(user=None, csrf=secrets.token_urlsafe(24))
        _issue(request, app, session, session_id=None)
    else:
        session, session_id = found
        setattr(request.state, _SESSION_ID_KEY, session_id)
    request.state.digest_session = session
    return session


def _read_cookie(app: App, cookie: str) -> tuple[WebSession, str | None] | None:
    """The session and the id of its row (None: anonymous), or None if the cookie is
    forged, too old, or its session has ended."""
    if not cookie or len(cookie) > 1000:
        return None
    try:
        data = session_serializer(app).loads(cookie, max_age=SESSION_MAX_AGE)
        csrf, session_id = data["c"], data.get("s")
    except (BadSignature, KeyError, TypeError, ValueError, AttributeError):
        return None
    if not isinstance(csrf, str) or not csrf:
        return None
    if session_id is None:  # anonymous (or from before sessions had rows: logged out)
        return WebSession(user=None, csrf=csrf), None
    if not isinstance(session_id, str):
        return None
    with app.sessions() as s:
        user = login_sessions.session_user(s, session_id, now=app.clock())
        if user is None:
            return None
        return WebSession(user=UserView.of(user), csrf=csrf), session_id


def _issue(request: Request, app: App, session: WebSession, *,
           session_id: str | None) -> None:
    """Have SessionCookie send `session` as the cookie with this response: its CSRF
    token, and the id of its row when logged in."""
    payload = {"c": session.csrf} if session_id is None else {"c": session.csrf,
                                                              "s": session_id}
    value = session_serializer(app).dumps(payload)
    secure = request.url.scheme == "https"
    request.state.digest_session = session
    setattr(request.state, _STATE_KEY, _cookie_header(value, SESSION_MAX_AGE, secure))


def reissue(request: Request, app: App, user: UserView, session_id: str) -> WebSession:
    """Send the browser a new cookie for the logged-in session `session_id` of `user`,
    with a new CSRF token (the account page, after a new password: the session the
    browser had has ended with the others)."""
    session = WebSession(user=user, csrf=secrets.token_urlsafe(24))
    _issue(request, app, session, session_id=session_id)
    setattr(request.state, _SESSION_ID_KEY, session_id)
    return session


def _cookie_header(value: str, max_age: int, secure: bool) -> str:
    parts = [f"{COOKIE}={value}", "Path=/", f"Max-Age={max_age}", "HttpOnly", "SameSite=Lax"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


class SessionCookie:
    """Adds the Set-Cookie header a route asked for through `_issue`. (FastAPI drops
    headers set on a dependency's Response when the route returns its own.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                cookie = scope.get("state", {}).get(_STATE_KEY)
                if cookie:
                    message.setdefault("headers", [])
                    message["headers"] = [*message["headers"],
                                          (b"set-cookie", cookie.encode("latin-1"))]
            await send(message)

        await self.app(scope, receive, send_with_cookie)


Viewer = Annotated[WebSession, Depends(get_session)]


# -- CSRF ----------------------------------------------------------------------------


async def check_csrf(request: Request, session: Viewer) -> None:
    """Refuse (403) a form whose CSRF token is not the session's."""
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded",
                                    "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD, "")
            sent = value if isinstance(value, str) else ""
    if not sent or not hmac.compare_digest(sent.encode(), session.csrf.encode()):
        raise HTTPException(403, "this form has expired or did not come from this site; "
                                 "go back, reload the page and try again")


CsrfForm = Annotated[None, Depends(check_csrf)]


# -- roles ---------------------------------------------------------------------------


def require(role: str) -> Any:
    """A dependency giving the logged-in user with at least `role`."""

    def dependency(request: Request, session: Viewer) -> UserView:
        if session.user is None:
            path = request.url.path
            if request.url.query:
                path += "?" + request.url.query
            raise LoginRequired(path)
        if _RANK[session.user.role] < _RANK[role]:
            raise HTTPException(403, f"this page is for {role}s; you are logged in as "
                                     f"{session.user.email}, an {session.user.role}")
        return session.user

    return dependency


EditorUser = Annotated[UserView, Depends(require(EDITOR))]
AdminUser = Annotated[UserView, Depends(require(ADMIN))]


async def _to_login(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    if request.method != "GET":
        # A form posted after the session ran out: back to its page after logging in.
        raise HTTPException(401, "you are not logged in (or your session ended); "
                                 "log in and try again")
    return RedirectResponse(f"/login?next={quote(exc.next_path, safe='/')}", status_code=303)


def api_user(role: str) -> Any:
    """A dependency for the JSON API: the user of the bearer token, with `role`."""

    def dependency(request: Request, app: AppDep) -> UserView:
        scheme, _, raw = request.headers.get("authorization", "").partition(" ")
        user: UserView | None = None
        if scheme.lower() == "bearer" and raw.strip():
            with app.sessions() as s:
                found = token_user(s, raw.strip(), now=app.clock())
                user = UserView.of(found) if found else None
        if user is None:
            raise HTTPException(401, "a valid API token is needed: send "
                                     "`Authorization: Bearer <token>`; "
                                     "`digest users token add` makes one",
                                headers={"WWW-Authenticate": "Bearer"})
        if _RANK[user.role] < _RANK[role]:
            raise HTTPException(403, f"this needs the {role} role; the token's user "
                                     f"is an {user.role}")
        return user

    return dependency


# -- the login page ------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class LoginPage(Page):
    """web/login.html: the form; `error` after a failed attempt."""

    email: str = ""
    next: str = ""
    error: str = ""


@router.get("/login")
def login_page(request: Request, session: Viewer, pages: PagesDep, next: str = "") -> Response:
    if session.user is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    page = LoginPage(title="Log in", next=_safe_next(next, default=""))
    return pages.render("web/login.html", page, viewer=session, private=True)


@router.post("/login")
async def login(request: Request, session: Viewer, app: AppDep, pages: PagesDep,
                _: CsrfForm) -> Response:
    form = await request.form()
    email, password, next_path = (str(form.get(k, "")) for k in ("email", "password", "next"))
    ip = request.client.host if request.client else ""
    previous = getattr(request.state, _SESSION_ID_KEY, None)
    try:
        started = await run_in_threadpool(_log_in, app, email, password, ip, previous)
    except Throttled as exc:
        # %r: the address is what a stranger typed; no line breaks into the log.
        log.warning("login throttled for %r from %s", email[:100], ip)
        page = LoginPage(title="Error: Log in", email=email[:320], next=next_path[:1000],
                         error=f"Too many failed attempts. Try again in "
                               f"{wait_words(exc.retry_after)}. If you have forgotten "
                               "your password, ask an admin to set a new one.")
        return pages.render("web/login.html", page, viewer=session, status=429,
                            private=True, headers={"Retry-After": str(exc.retry_after)})
    if started is None:
        page = LoginPage(title="Error: Log in", email=email[:320], next=next_path[:1000],
                         error="That email and password do not match an account.")
        return pages.render("web/login.html", page, viewer=session, status=400, private=True)
    user, session_id = started
    _issue(request, app, WebSession(user=user, csrf=secrets.token_urlsafe(24)),
           session_id=session_id)
    log.info("%s logged in from %s", user.email, ip)
    return RedirectResponse(_safe_next(next_path), status_code=303)


@router.post("/logout")
def logout(request: Request, session: Viewer, app: AppDep, _: CsrfForm) -> Response:
    """Ends this browser's session, in every worker; the user's other sessions go on."""
    session_id = getattr(request.state, _SESSION_ID_KEY, None)
    if session_id is not None:
        with app.sessions() as s:
            login_sessions.end_session(s, session_id)
            s.commit()
    if session.user is not None:
        log.info("%s logged out", session.user.email)
    _issue(request, app, WebSession(user=None, csrf=secrets.token_urlsafe(24)),
           session_id=None)
    return RedirectResponse("/login", status_code=303)


def _log_in(app: App, email: str, password: str, ip: str,
            previous: str | None) -> tuple[UserView, str] | None:
    """The user and the id of their new session, or None for a wrong address or
    password; raises Throttled. The session the browser had before ends."""
    with app.sessions() as s:
        # Counted by client_key: an IPv6 client by its /64, from which it could draw a
        # fresh address for every guess.
        user = authenticate(s, email, password, ip=client_key(ip), now=app.clock())
        if user is None:
            return None
        if previous is not None:
            login_sessions.end_session(s, previous)
        session_id = login_sessions.start_session(s, user, now=app.clock())
        s.commit()
        return UserView.of(user), session_id


def _safe_next(next_path: str, default: str = "/desk") -> str:
    """Only a path on this site: never `//evil.example`, `/\\evil.example` or `https://...`
    (RedirectResponse percent-encodes a tab or a newline, so "/<tab>/evil" stays a path)."""
    if next_path.startswith("/") and not next_path.startswith(("//", "/\\")):
        return next_path
    return default


def wait_words(seconds: int) -> str:
    """A Retry-After in words: "1 second", "40 seconds", "5 minutes" (rounded up)."""
    if seconds < 60:
        return "1 second" if seconds == 1 else f"{seconds} seconds"
    minutes = math.ceil(seconds / 60)
    return "1 minute" if minutes == 1 else f"{minutes} minutes"
