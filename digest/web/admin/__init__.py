"""The admin console under /admin, for users with the admin role: lists, sources,
users, subscribers, CSV imports and edition stats, one module each.

Every route takes `AdminUser` (strangers go to /login, editors get 403) and every POST
`CsrfForm`. Pages are plain server-rendered forms that work without JavaScript; wide
tables scroll sideways on a phone.
"""

from __future__ import annotations

from fastapi import APIRouter

from digest.web.admin import (
    imports,
    lists,
    overview,
    person,
    sources,
    stats,
    subscribers,
    users,
)

router = APIRouter(include_in_schema=False)
for module in (overview, lists, sources, users, subscribers, person, imports, stats):
    router.include_router(module.router)
