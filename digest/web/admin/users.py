"""Users and roles in the console: adding users, their role, disabling, new passwords,
and API tokens (shown once, in the answer to the form that made them).

There is always an active admin: a change that would leave none (demoting or disabling
the last one, often oneself) is refused, since nobody could manage users after it but
from the command line.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.app import App
from digest.errors import InvalidInput
from digest.models import ADMIN, ROLES, ApiToken, User
from digest.users import (
    PASSWORD_MAX,
    PASSWORD_MIN,
    check_role,
    create_user,
    make_token,
    revoke_token,
    set_disabled,
    set_password,
    set_role,
)
from digest.web.admin.common import (
    AdminPage,
    Fields,
    get_or_404,
    notice,
    render,
    see_other,
    when,
)
from digest.web.auth import AdminUser, CsrfForm, Viewer
from digest.web.deps import AppDep, PagesDep, RowId
from digest.web.forms import in_transaction
from digest.web.pages import Pages, WebSession, sentence
from subscribers.addresses import normalize

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class UserRow:
    id: int
    email: str
    name: str
    role: str
    disabled: bool
    last_login: str
    tokens: int  # active ones


@dataclass(frozen=True)
class TokenRow:
    id: int
    name: str
    prefix: str
    created: str
    last_used: str
    revoked: bool


@dataclass(frozen=True, kw_only=True)
class UsersPage(AdminPage):
    """web/admin/users.html: every user, and the form adding one (`email`, `name`,
    `role` as typed; `error` the core's refusal, about the field `error_at`)."""

    users: list[UserRow]
    roles: tuple[str, ...] = ROLES
    email: str = ""
    name: str = ""
    role: str = "editor"
    error: str = ""
    error_at: str = ""


@dataclass(frozen=True, kw_only=True)
class UserPage(AdminPage):
    """web/admin/user.html: one user's role, state, password and tokens. `new_token`
    is a token just made, shown this once; `is_self` when it is the viewer. `error` is
    the core's refusal of the form `error_at` (name, role, password, disable, enable)."""

    user: UserRow
    tokens: list[TokenRow]
    is_self: bool
    roles: tuple[str, ...] = ROLES
    error: str = ""
    error_at: str = ""
    new_token: str = ""


@router.get("/admin/users")
def users_page(user: AdminUser, session: Viewer, app: AppDep, pages: PagesDep,
               done: str = "") -> Response:
    with app.sessions() as s:
        page = UsersPage(title="Users", section="users", notice=notice(done),
                         users=_rows(s))
    return render(pages, "web/admin/users.html", page, session)


@router.post("/admin/users")
def add_user(user: AdminUser, _: CsrfForm, form: Fields, session: Viewer, app: AppDep,
             pages: PagesDep) -> Response:
    email, name, role = form.get("email"), form.get("name"), form.get("role")

    def work(s: Session) -> int:
        return create_user(s, email, role=role, password=form.raw("password"), name=name,
                           now=app.clock()).id

    try:
        new_id = in_transaction(app, work)
    except InvalidInput as exc:
        with app.sessions() as s:
            page = UsersPage(title="Users", section="users", users=_rows(s), email=email,
                             name=name, role=role, error=sentence(str(exc)),
                             error_at=_refused_field(s, email, role, form.raw("password")))
        return render(pages, "web/admin/users.html", page, session, status=400)
    return see_other(f"/admin/users/{new_id}?done=user-added")


@router.get("/admin/users/{user_id}")
def user_page(user_id: RowId, user: AdminUser, session: Viewer, app: AppDep,
              pages: PagesDep, done: str = "") -> Response:
    return _user_page(app, pages, session, user_id, done=notice(done))


@router.post("/admin/users/{user_id}")
def change_user(user_id: RowId, user: AdminUser, _: CsrfForm, form: Fields, session: Viewer,
                app: AppDep, pages: PagesDep) -> Response:
    """One change per form: `action` is role (with `role`), disable, enable, password
    (with `password`) or name (with `name`)."""
    action = form.get("action")

    def work(s: Session) -> None:
        target = get_or_404(s, User, user_id)
        if action == "role":
            _keep_an_admin(s, target, role=check_role(form.get("role")))
            set_role(target, form.get("role"))
        elif action in ("disable", "enable"):
            _keep_an_admin(s, target, disabled=action == "disable")
            set_disabled(target, action == "disable")
        elif action == "password":
            set_password(target, form.raw("password"))
        elif action == "name":
            target.name = form.get("name")[:200]
        else:
            raise InvalidInput("use the buttons on the user's page")

    try:
        in_transaction(app, work)
    except InvalidInput as exc:
        return _user_page(app, pages, session, user_id, error=sentence(str(exc)),
                          error_at=action, status=400)
    return see_other(f"/admin/users/{user_id}?done=user-saved")


@router.post("/admin/users/{user_id}/tokens")
def add_token(user_id: RowId, user: AdminUser, _: CsrfForm, form: Fields, session: Viewer,
              app: AppDep, pages: PagesDep) -> Response:
    """Make a token and show it in this answer, the only time it is ever shown (the
    page is never cached, and the token is in no URL)."""
    def work(s: Session) -> str:
        return make_token(s, get_or_404(s, User, user_id), name=form.get("name"),
                          now=app.clock())[1]

    raw = in_transaction(app, work)
    return _user_page(app, pages, session, user_id, new_token=raw)


@router.post("/admin/users/{user_id}/tokens/{token_id}/revoke")
def revoke(user_id: RowId, token_id: RowId, user: AdminUser, _: CsrfForm,
           app: AppDep) -> Response:
    def work(s: Session) -> None:
        token = get_or_404(s, ApiToken, token_id)
        if token.user_id == user_id:
            revoke_token(s, token.id, now=app.clock())

    in_transaction(app, work)
    return see_other(f"/admin/users/{user_id}?done=token-revoked")


def _keep_an_admin(s: Session, target: User, *, role: str | None = None,
                   disabled: bool = False) -> None:
    """Refuse a change that would leave no active admin."""
    loses_admin = (role is not None and role != ADMIN) or disabled
    if target.role != ADMIN or target.disabled or not loses_admin:
        return
    others = s.scalar(select(func.count()).select_from(User).where(
        User.role == ADMIN, User.disabled.is_(False), User.id != target.id))
    if not others:
        raise InvalidInput(
            f"this would leave no active admin: {target.email} is the last one. Make "
            "another user an admin first, or nobody could manage users and lists here")


def _refused_field(s: Session, email: str, role: str, password: str) -> str:
    """Which field of the add form `create_user` refused: it checks the address, that
    it is free, the role, then the password, in that order."""
    try:
        address = normalize(email)
    except InvalidInput:
        return "email"
    if s.scalar(select(User.id).where(User.email == address)) is not None:
        return "email"
    if role not in ROLES:
        return "role"
    return "password" if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX else ""


def _user_page(app: App, pages: Pages, session: WebSession, user_id: int, *,
               done: str = "", error: str = "", error_at: str = "", new_token: str = "",
               status: int = 200) -> Response:
    with app.sessions() as s:
        target = get_or_404(s, User, user_id)
        tokens = [TokenRow(t.id, t.name, t.prefix, when(t.created_at), when(t.last_used_at),
                           t.revoked_at is not None)
                  for t in sorted(target.tokens, key=lambda t: t.id)]
        page = UserPage(title=f"User {target.email}", section="users", notice=done,
                        user=_row(target), tokens=tokens, error=error, error_at=error_at,
                        new_token=new_token,
                        is_self=session.user is not None and session.user.id == target.id)
    return render(pages, "web/admin/user.html", page, session, status=status)


def _rows(s: Session) -> list[UserRow]:
    return [_row(u) for u in s.scalars(select(User).order_by(User.email))]


def _row(u: User) -> UserRow:
    live = sum(1 for t in u.tokens if t.revoked_at is None)
    return UserRow(u.id, u.email, u.name, u.role, u.disabled, when(u.last_login_at), live)
