"""The account page: a logged-in user (editor or admin) changes their own password.

The current password is checked as a login checks it (`digest.users.authenticate`, so
failures are throttled by digest.login_throttle per account and client address, and a
guesser holding a stolen session learns no more than at /login); the new one is typed
twice and must pass the rules `digest users` applies (`digest.users.hash_password`:
PASSWORD_MIN to PASSWORD_MAX characters). A new password ends every session of the user
(`digest.users.set_password`); this browser gets a new one at once, with a new cookie
and CSRF token, so only the other sessions (another browser, a lost phone) are logged
out. A form sent back with an error marks the one field it is about (docs/web.md,
Accessibility).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from digest import login_sessions
from digest.app import App
from digest.errors import InvalidInput
from digest.login_throttle import Throttled
from digest.users import PASSWORD_MAX, PASSWORD_MIN, UserView, authenticate, set_password
from digest.web.auth import (
    FORM_MAX_BYTES,
    CsrfForm,
    EditorUser,
    Viewer,
    reissue,
    wait_words,
)
from digest.web.deps import AppDep, PagesDep
from digest.web.pages import Page, Pages, WebSession, sentence
from digest.web.throttle import client_key

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False, max_body_size=FORM_MAX_BYTES)

DONE = ("Your password is changed. Every other session of yours has ended (other "
        "browsers and devices must log in again); this one goes on.")


@dataclass(frozen=True, kw_only=True)
class AccountPage(Page):
    """web/account.html: who is logged in and the new-password form. `error` is about
    `error_field` ("current", "new" or "again"); `notice` says the password changed."""

    email: str
    name: str
    role: str
    error: str = ""
    error_field: str = ""
    notice: str = ""
    min_length: int = PASSWORD_MIN
    max_length: int = PASSWORD_MAX


@router.get("/account")
def account_page(user: EditorUser, session: Viewer, pages: PagesDep) -> Response:
    return _render(pages, session, user)


@router.post("/account")
async def change_password(request: Request, user: EditorUser, session: Viewer,
                          app: AppDep, pages: PagesDep, _: CsrfForm) -> Response:
    form = await request.form()
    current, new, again = (str(form.get(k, "")) for k in ("current", "new", "again"))
    ip = client_key(request.client.host if request.client else "")
    try:
        outcome = await run_in_threadpool(_change, app, user, current, new[:2000],
                                          again[:2000], ip)
    except Throttled as exc:
        log.warning("password change throttled for %s from %s", user.email, ip)
        return _render(pages, session, user, status=429,
                       error=("current", f"Too many wrong passwords. Try again in "
                                         f"{wait_words(exc.retry_after)}."),
                       headers={"Retry-After": str(exc.retry_after)})
    if isinstance(outcome, tuple):
        return _render(pages, session, user, status=400, error=outcome)
    renewed = reissue(request, app, user, outcome)
    log.info("%s changed their password; their other sessions ended", user.email)
    return _render(pages, renewed, user, notice=DONE)


def _change(app: App, user: UserView, current: str, new: str, again: str,
            ip: str) -> str | tuple[str, str]:
    """The id of this browser's new session once the password is changed; else the
    field that is wrong and what to do. Raises Throttled."""
    if not current:
        return "current", "Enter your current password."
    with app.sessions() as s:
        # As a login: throttled, one argon2 verification, commits. (It notes a login.)
        found = authenticate(s, user.email, current, ip=ip, now=app.clock())
        if found is None or found.id != user.id:
            return "current", "That is not your current password."
        if new == current:  # "changed", and every other session out, for nothing
            return "new", ("The new password is the one you have; choose another "
                           "(nothing was changed).")
        if new != again:
            return "again", "The new password and its repetition differ; type the " \
                            "same new password in both fields."
        try:
            set_password(found, new)  # ends every session of the user, this one too
        except InvalidInput as exc:
            s.rollback()
            return "new", sentence(str(exc))
        session_id = login_sessions.start_session(s, found, now=app.clock())
        s.commit()
        return session_id


def _render(pages: Pages, session: WebSession, user: UserView, *, status: int = 200,
            error: tuple[str, str] = ("", ""), notice: str = "",
            headers: dict[str, str] | None = None) -> Response:
    field, message = error
    page = AccountPage(title="Error: Account" if message else "Account", email=user.email,
                       name=user.name, role=user.role, error=message, error_field=field,
                       notice=notice)
    return pages.render("web/account.html", page, viewer=session, status=status,
                        headers=headers)
