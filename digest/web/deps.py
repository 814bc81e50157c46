"""What routes ask FastAPI for: the `App` and the page renderer of the running app.

Both are put on `app.state` by `create_app`; routes declare them as `AppDep`, `PagesDep`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from digest.app import App
from digest.web.pages import Pages


def get_app(request: Request) -> App:
    app: App = request.app.state.digest
    return app


def get_pages(request: Request) -> Pages:
    pages: Pages = request.app.state.pages
    return pages


AppDep = Annotated[App, Depends(get_app)]
PagesDep = Annotated[Pages, Depends(get_pages)]
