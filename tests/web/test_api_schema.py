"""schemathesis against the running API: each operation of /api/v1/openapi.json, as the
running app serves it, fed generated requests over real HTTP (uvicorn on loopback) with
an admin's token, on a database with lists, members, a source with articles, an open
draft and a sent edition.

Every answer must be no 5xx and match its documented status code, content type and
schema. Requests come in three kinds: valid ones with generated path parameters (mostly
404s), valid ones aimed at the seeded list, person, source, edition and item, and
invalid ones (negative mode). Examples are bounded and derandomized, so a run is
repeatable: about two minutes on SQLite, and on PostgreSQL (when CI starts one) half as
many examples, which is enough to find what only PostgreSQL refuses (NUL characters,
values longer than a column). Each operation gets its own database, server and outbox
in tmp_path: an archive, a forget or a send runs for real and leaks nowhere.

(schemathesis's own pytest plugin, `from_fixture`, does not run on pytest 9, so the
operations are parametrized here and each one's strategy is driven by Hypothesis.)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from digest.app import App
from digest.config import defaults
from digest.models import Article, Edition, EditionKind, EditionStatus, ListSource, Source
from digest.web.api import create_api
from digest.web.api.deps import operations
from digest.web.api.schemas import has_nul
from subscribers.lists import get_list
from tests.conftest import Clock
from tests.web.api_support import *  # noqa: F403
from tests.web.api_support import API, bearer
from tests.web.conftest import ALICE, World

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
# Per operation and kind of request, on SQLite: about 45 requests an operation.
EXAMPLES = 15
# The operations, read from the API app without serving it (nothing connects).
OPERATIONS = sorted((path, method) for method, path, _ in operations(create_api(
    App(defaults()))))


@pytest.fixture
def settings(settings):  # type: ignore[no-untyped-def]
    """A short fetch deadline: generated URLs for "add a page" must not wait 20 s."""
    return settings.with_overrides(gather__timeout=2.0, gather__max_redirects=0)


@pytest.fixture
def known(world: World, app: App, clock: Clock) -> dict[str, Any]:
    """Seeds the database; the path parameters that name something in it."""
    now = clock()
    with app.sessions() as s:
        news = get_list(s, "news")
        source = Source(url="https://feeds.example.org/news.xml", title="Harbour Times")
        s.add(source)
        s.flush()
        s.add(ListSource(list_id=news.id, source_id=source.id))
        s.add_all(Article(source_id=source.id, guid=f"a{i}", link=f"https://example.org/{i}",
                          content_hash=f"h{i}", title=f"Story {i}", summary="Text.",
                          published_at=now - dt.timedelta(hours=i + 1),
                          first_seen_at=now - dt.timedelta(hours=i + 1)) for i in range(5))
        s.add(Edition(list_id=news.id, kind=EditionKind.DIGEST, number=1,
                      status=EditionStatus.SENT, subject="No. 1",
                      since=now - dt.timedelta(days=9), cutoff=now - dt.timedelta(days=8),
                      created_at=now - dt.timedelta(days=8),
                      send_started_at=now - dt.timedelta(days=8),
                      sent_at=now - dt.timedelta(days=8)))
        s.commit()
        draft, _created = app.build(s, "news")
        assert draft is not None
        item_id = min(i.id for i in draft.items)
        return {"name": "news", "email": ALICE, "address": ALICE, "source_id": source.id,
                "edition_id": draft.id, "item_id": item_id}


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@pytest.mark.slow  # minutes: a server and some 45 requests per operation
@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_the_running_api_keeps_to_its_openapi(
        path: str, method: str, live_url: str, known: dict[str, Any],
        tokens: dict[str, str], http: requests.Session, app: App) -> None:
    schema = schemathesis.openapi.from_url(f"{live_url}{API}/openapi.json")
    operation = schema[path][method]
    real = {k: v for k, v in known.items() if "{" + k + "}" in path}
    kinds = [operation.as_strategy(GenerationMode.POSITIVE),
             operation.as_strategy(GenerationMode.NEGATIVE)]
    if real:
        kinds.append(operation.as_strategy(GenerationMode.POSITIVE, path_parameters=real))
    headers = bearer(tokens["admin"])
    examples = EXAMPLES if app.engine.dialect.name == "sqlite" else EXAMPLES // 2

    @given(case=st.one_of(kinds))
    @hypothesis_settings(max_examples=examples * len(kinds), deadline=None, derandomize=True,
              database=None, suppress_health_check=list(HealthCheck))
    def conforms(case: Any) -> None:
        case.call_and_validate(base_url=f"{live_url}{API}", headers=headers, session=http,
                               checks=CHECKS)

    conforms()


def test_nul_characters_are_found_anywhere_in_a_body() -> None:
    assert has_nul({"a": [1, {"b": "x\0y"}]}) and has_nul({"k\0": 1})
    assert not has_nul({"a": [1, {"b": "xy"}], "n": None})
