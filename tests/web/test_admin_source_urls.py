"""The console's sources page shows each source's whole URL and its whole error, the
reason first: a 150-character URL is neither cut nor ellipsized, and does not hide why."""

from __future__ import annotations

from html import unescape

from fastapi.testclient import TestClient
from sqlalchemy import select

from digest.app import App
from digest.models import Source
from tests.conftest import DATA
from tests.loopback import feed_server
from tests.web.conftest import World, csrf

FEED = (DATA / "flow" / "news.xml").read_bytes()
LONG_PATH = "/feeds/category/harbour-and-shipping/" + "x" * 70 + "/rss.xml?edition=morning&s=1"


def test_the_sources_page_shows_whole_urls_and_errors(admin_client: TestClient,
                                                      app: App, world: World) -> None:
    def post(path: str, **data: str) -> None:
        admin_client.post(path, data={"csrf_token": csrf(admin_client), **data},
                          follow_redirects=False)

    with feed_server(lambda path: FEED if path.startswith("/feeds/") else None) as base:
        good, broken = base + LONG_PATH, base + LONG_PATH.replace("/feeds/", "/gone/")
        assert len(good) >= 150
        post("/admin/sources", url=good, list="news")
        post("/admin/sources", url=broken, list="news")
        with app.sessions() as s:
            ids = s.scalars(select(Source.id).order_by(Source.id)).all()
        for source_id in ids:
            post(f"/admin/sources/{source_id}/fetch")
    page = unescape(admin_client.get("/admin/sources").text)
    assert f'<span class="url">{good}</span>' in page
    assert f'<span class="url">{broken}</span>' in page
    assert ("HTTP 500 Internal Server Error; the site has a problem; it will be tried again "
            f"at the next fetch ({broken})") in page
