"""What routes ask FastAPI for: the `App` and the page renderer of the running app, and
the row id in a path.

The first two are put on `app.state` by `create_app`; routes declare them as `AppDep`,
`PagesDep`. A path's id is a `RowId`: a number no row can have (0, -1, 10**23) is
refused before the route runs, as a bad request (the pages answer 400, the API 422),
rather than reaching the database, which cannot even compare it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from digest.app import App
from digest.web.pages import Pages


def get_app(request: Request) -> App:
    app: App = request.app.state.digest
    return app


def get_pages(request: Request) -> Pages:
    pages: Pages = request.app.state.pages
    return pages


#: The largest id a row can have: ids are INTEGER columns, 32 bits on PostgreSQL.
MAX_ID = 2**31 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_ID)]

AppDep = Annotated[App, Depends(get_app)]
PagesDep = Annotated[Pages, Depends(get_pages)]
