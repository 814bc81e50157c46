"""Test sends from the desk and the API (issue 9, finding 14): only to the site's users,
at most `[web] test_sends_per_hour` per user and hour, desk and API together. Through
the app with an editor's API token and an editor's desk login; the outbox is the mail
server."""

from __future__ import annotations

from email.utils import parseaddr

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from digest.app import App
from tests.conftest import Clock
from tests.test_curate import add_articles
from tests.web.api_support import *  # noqa: F403
from tests.web.api_support import error_of, sent_to
from tests.web.conftest import ADMIN_EMAIL, ALICE, EDITOR_EMAIL, World, form_csrf

LIMIT = 10  # [web] test_sends_per_hour's default


@pytest.fixture
def edition_id(app: App, clock: Clock, world: World, editor_api: TestClient) -> int:
    """The id of news's draft, with articles: what the desk shows and the API names."""
    add_articles(app, clock, "news", 5)
    answer = editor_api.get("/lists/news/draft")
    assert answer.status_code == 200, answer.text
    return int(answer.json()["id"])


def desk_test(client: TestClient, **fields: str) -> Response:
    """The desk's "Send a test" button, as the page posts it (and any extra `fields`)."""
    page = client.get("/desk/news")
    assert page.status_code == 200, page.text
    edition = page.text.split('name="edition" value="', 1)[1].split('"', 1)[0]
    return client.post("/desk/news/test", data={"csrf_token": form_csrf(page.text),
                                                "edition": edition, **fields},
                       follow_redirects=False)


def test_an_editors_token_cannot_mail_strangers(editor_api: TestClient, edition_id: int,
                                                 app: App) -> None:
    strangers = [f"stranger{i}@example.net" for i in range(19)] + [ALICE]  # and a reader
    for address in strangers:
        error = error_of(editor_api.post(f"/editions/{edition_id}/test", json={"to": address}),
                         403, "not_a_user")
        assert f"{address} is not a user of this site" in error["message"]
        assert "your own address or to another user's" in error["message"]
    assert sent_to(app) == []
    # Refusals do not count: the editor's own tests still go, all ten.
    for _ in range(LIMIT):
        assert editor_api.post(f"/editions/{edition_id}/test", json={}).status_code == 200
    assert sent_to(app) == [EDITOR_EMAIL] * LIMIT


def test_tests_to_users_stop_at_the_hourly_limit(editor_api: TestClient, edition_id: int,
                                                 app: App, clock: Clock) -> None:
    for n in range(LIMIT):
        body = {"to": ADMIN_EMAIL.upper()} if n % 2 else {}  # a colleague, or oneself
        answer = editor_api.post(f"/editions/{edition_id}/test", json=body)
        assert answer.status_code == 200, answer.text
    refused = editor_api.post(f"/editions/{edition_id}/test", json={})
    error = error_of(refused, 429, "too_many_requests")
    assert "test_sends_per_hour" in error["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 3600
    assert sorted(sent_to(app)) == [ADMIN_EMAIL] * 5 + [EDITOR_EMAIL] * 5

    clock.advance(minutes=59)
    assert editor_api.post(f"/editions/{edition_id}/test", json={}).status_code == 429
    clock.advance(minutes=1)  # the first test is an hour old
    assert editor_api.post(f"/editions/{edition_id}/test", json={}).status_code == 200
    assert len(sent_to(app)) == LIMIT + 1


def test_the_desk_sends_to_oneself_only_and_counts_with_the_api(
        editor_client: TestClient, editor_api: TestClient, edition_id: int, app: App) -> None:
    for _ in range(LIMIT - 1):
        answer = desk_test(editor_client, to="stranger@example.net")  # a field it ignores
        assert answer.status_code == 303, answer.text
    assert editor_api.post(f"/editions/{edition_id}/test", json={}).status_code == 200
    assert sent_to(app) == [EDITOR_EMAIL] * LIMIT

    refused = desk_test(editor_client)
    assert refused.status_code == 429, refused.text
    assert 1 <= int(refused.headers["Retry-After"]) <= 3600
    assert "test_sends_per_hour" in refused.text and "try again in" in refused.text
    error_of(editor_api.post(f"/editions/{edition_id}/test", json={}), 429)
    assert len(sent_to(app)) == LIMIT
    assert all(parseaddr(to)[1] == EDITOR_EMAIL for to in sent_to(app))


def test_each_user_has_a_limit_of_their_own(editor_api: TestClient, admin_api: TestClient,
                                           edition_id: int, app: App) -> None:
    for _ in range(LIMIT):
        assert editor_api.post(f"/editions/{edition_id}/test", json={}).status_code == 200
    error_of(editor_api.post(f"/editions/{edition_id}/test", json={}), 429)
    assert admin_api.post(f"/editions/{edition_id}/test", json={}).status_code == 200
    assert sent_to(app).count(ADMIN_EMAIL) == 1
