"""No page reloads itself (WCAG 2.2.1, failure F41: focus goes back to the top at each
reload, and nothing stops it): every GET route of the app, public and behind login,
answered with neither a `Refresh` header nor `<meta http-equiv="refresh">`. The routes
come from the app itself, so a page added later is checked too."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.routing import Route

from digest import imports
from digest.app import App
from subscribers.lists import get_list
from subscribers.models import ImportStatus
from tests.conftest import Clock
from tests.test_curate import add_articles, draft
from tests.web.conftest import ALICE, BOB, World, flat_routes

META_REFRESH = re.compile(r"<meta[^>]+http-equiv\s*=\s*[\"']?refresh", re.I)


def _running_import(app: App, clock: Clock, tmp_path: Path) -> int:
    """An import job that stays "running": the page a Refresh header was on."""
    path = tmp_path / "slow.csv"
    path.write_text("email\nsomeone@example.org\n")
    with app.sessions() as s:
        job = imports.create_job(s, get_list(s, "news"), filename="slow.csv", path=path,
                                 size=path.stat().st_size, confirmed=True,
                                 created_by="admin@example.org", now=clock())
        job.status, job.rows = ImportStatus.RUNNING, 10
        s.commit()
        return job.id


def test_no_page_reloads_itself(web: FastAPI, admin_client: TestClient, world: World,
                                app: App, clock: Clock, tmp_path: Path) -> None:
    add_articles(app, clock, "news", 3)
    edition = draft(app, clock)
    values = {
        "list_name": "news", "name": "news", "number": "1", "edition_id": str(edition.id),
        "job_id": str(_running_import(app, clock, tmp_path)),
        "subscriber_id": str(world.ids[ALICE]), "user_id": "1", "source_id": "1",
        "email": ALICE, "item_id": "1", "token_id": "1",
        "token": world.token("manage", ALICE, "news"),
    }
    tokens = {"/confirm/{token}": world.token("confirm", BOB, "news"),
              "/unsubscribe/{token}": world.token("unsubscribe", ALICE, "news")}
    checked = []
    for route in flat_routes(web.routes):
        if not isinstance(route, Route) or "GET" not in (route.methods or ()):
            continue
        path = route.path
        if path in tokens:
            path = path.replace("{token}", tokens[path])
        path = re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: values.get(m.group(1), "1"), path)
        answer = admin_client.get(path, follow_redirects=False)
        assert "refresh" not in {k.lower() for k in answer.headers}, (
            f"{path} answers with Refresh: {answer.headers.get('refresh')}")
        assert not META_REFRESH.search(answer.text), f"{path} has a <meta> refresh"
        checked.append((path, answer.status_code))
    ok = [path for path, status in checked if status == 200]
    # The pages that matter answered for real, not with a 404 or a login redirect.
    for page in ("/admin/imports/{job_id}", "/desk/news", "/admin", "/subscribe",
                 "/preferences/{token}"):
        wanted = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], page)
        assert wanted in ok, (wanted, checked)
    assert len(ok) >= 25, checked
