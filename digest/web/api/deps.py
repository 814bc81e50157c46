"""What API routes declare: the caller's role, path parameters, pages and cursors; and
the helpers that document their answers in OpenAPI.

Every route names its role by taking `user: Editor` or `user: Admin` (a bearer token of
a user with at least that role, see `digest.web.auth.api_user`). `route_role` reads it
back from the route's dependencies, so the OpenAPI document and the security tests see
the rule that is enforced, not a label beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Any

import fastapi.routing
from fastapi import Depends, FastAPI, Path, Query, Request, Security
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from digest.errors import InvalidInput
from digest.models import ADMIN, EDITOR
from digest.users import UserView
from digest.web.api.schemas import ErrorResponse
from digest.web.auth import api_user
from digest.web.deps import MAX_ID, AppDep, RowId

# Only to document the scheme in OpenAPI: the check is api_user's, which answers 401 in
# the API's error shape (HTTPBearer's own errors would not be).
_bearer = HTTPBearer(
    scheme_name="bearerAuth", auto_error=False,
    description="An API token: `digest users token add EMAIL` makes one. It acts with "
                "its user's role (editor or admin).",
)
_Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]


def _role(role: str) -> Callable[..., UserView]:
    check = api_user(role)

    def dependency(request: Request, app: AppDep, _: _Credentials) -> UserView:
        user: UserView = check(request, app)
        return user

    dependency.__name__ = f"{role}_user"
    return dependency


editor_user = _role(EDITOR)
admin_user = _role(ADMIN)
Editor = Annotated[UserView, Depends(editor_user)]
Admin = Annotated[UserView, Depends(admin_user)]
_ROLES: dict[Callable[..., Any], str] = {editor_user: EDITOR, admin_user: ADMIN}


def route_role(route: APIRoute) -> str | None:
    """The role a route requires (the strongest of its role dependencies), or None."""
    found = {_ROLES[d.call] for d in _walk(route.dependant) if d.call in _ROLES}
    if ADMIN in found:
        return ADMIN
    return EDITOR if found else None


def operations(api: FastAPI) -> Iterator[tuple[str, str, APIRoute]]:
    """(method, path, route) of every operation of `api`, through included routers.
    (FastAPI keeps an included router as one entry of `api.routes` since 0.16x.)"""
    contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    found = ([(c.original_route, c.path_format, c.methods) for c in contexts(api.routes)]
             if contexts else [(r, getattr(r, "path_format", ""), getattr(r, "methods", None))
                               for r in api.routes])
    for route, path, methods in found:
        if isinstance(route, APIRoute):
            for method in sorted(set(methods or ()) - {"HEAD"}):
                yield method, path, route


def _walk(dependant: Dependant) -> Iterator[Dependant]:
    for sub in dependant.dependencies:
        yield sub
        yield from _walk(sub)


Responses = dict[int | str, dict[str, Any]]


def refusals(**by_status: str) -> Responses:
    """OpenAPI responses in the error shape: `refusals(e404="No such list")`."""
    return {int(key[1:]): {"model": ErrorResponse, "description": text}
            for key, text in by_status.items()}


def answer(model: type[BaseModel], description: str) -> dict[str, Any]:
    """An OpenAPI response with another body than the route's main one."""
    return {"model": model, "description": description}


# -- parameters -----------------------------------------------------------------------

MAX_LIMIT = 500
Id = RowId
ListName = Annotated[str, Path(max_length=64, description="The list's name",
                               examples=["news"])]
Address = Annotated[str, Path(max_length=320, description="An email address (any case)",
                              examples=["alice@example.org"])]

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT,
                             description=f"Items per page, at most {MAX_LIMIT}.")]
After = Annotated[str | None, Query(
    max_length=400,
    description="The `next` of the previous page; absent for the first page.")]


def int_cursor(after: str | None) -> int | None:
    """A cursor this API gave out as a number (an id or an edition number)."""
    if after is None:
        return None
    if len(after) > 10 or not after.isascii() or not after.isdigit() or int(after) > MAX_ID:
        raise InvalidInput(f"cursor {after[:40]!r} is not one this API gave out; pass the "
                           "`next` of the previous page, or nothing for the first page")
    return int(after)
