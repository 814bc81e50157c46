"""The front page, the address every mail's footer names: each public list with its
description, a sign-up form of its own and its latest edition; a line for staff; and,
with no public list, what an admin does to make one."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import lxml.html
from fastapi.testclient import TestClient
from sqlalchemy import select

from digest.app import App
from digest.publication import update_list
from subscribers.lists import get_list
from subscribers.models import Membership, Subscriber
from tests.conftest import Clock
from tests.web.conftest import World
from tests.web.test_archive import editions  # noqa: F401  (a fixture)


def test_the_front_page_shows_each_public_list_with_its_form_and_latest_edition(
        client: TestClient, editions: None) -> None:  # noqa: F811
    r = client.get("/")
    assert r.status_code == 200
    doc = lxml.html.document_fromstring(r.text)
    public_url = client.app.state.digest.settings["public_url"]  # type: ignore[attr-defined]
    assert doc.xpath("string(//h1)") == urlsplit(public_url).hostname
    titles = doc.xpath("//h2")
    assert [h.text_content() for h in titles] == ["Morning News", "스포츠 소식"]
    assert titles[1].get("lang") == "ko"
    # Private and archived lists are not offered.
    assert "Staff Only" not in r.text and "Old Times" not in r.text
    forms = doc.xpath("//form[contains(@class, 'subscribe-form')]")
    assert [f.get("action") for f in forms] == ["/subscribe/news", "/subscribe/sport"]
    for form, name in zip(forms, ("news", "sport"), strict=True):
        assert form.xpath("string(.//input[@name='lists']/@value)") == name
        assert form.xpath(".//input[@name='form_token']/@value")[0]
        email = form.xpath(".//input[@name='email']")[0]
        assert form.xpath(f"string(.//label[@for='{email.get('id')}'])")
    # The Korean list's form asks in Korean.
    assert forms[1].xpath("string(.//button)") == "구독 신청"
    assert forms[1].getparent().get("lang") == "ko"
    # Ids are not repeated across the forms.
    ids = doc.xpath("//@id")
    assert len(ids) == len(set(ids))
    latest = doc.xpath("//a[starts-with(@href, '/archive/news/')]")
    assert [(a.get("href"), a.text_content()) for a in latest] == [
        ("/archive/news/2", "Morning News: Council approves sea wall")]
    assert client.get("/archive/news/2").status_code == 200
    staff = doc.xpath("//p[contains(@class, 'staff')]//a/@href")
    assert staff == ["/desk", "/admin", "/login"]


def test_a_form_on_the_front_page_signs_up(client: TestClient, world: World) -> None:
    page = client.get("/")
    doc = lxml.html.document_fromstring(page.text)
    form = doc.xpath("//form[@action='/subscribe/news']")[0]
    data = {i.get("name"): i.get("value") or "" for i in form.xpath(".//input")}
    data["email"] = "carol@example.com"
    r = client.post(form.get("action"), data=data)
    assert r.status_code == 200, r.text
    assert "Check your inbox" in r.text
    with world.app.sessions() as s:
        status = s.scalar(select(Membership.status).join(Membership.subscriber).where(
            Subscriber.email == "carol@example.com"))
    assert status == "pending"


def test_with_no_public_list_the_front_page_says_how_to_make_one(
        client: TestClient, app: App, world: World, clock: Clock) -> None:
    with app.sessions() as s:
        for name in ("news", "sport"):
            update_list(s, get_list(s, name), public=False)
        s.commit()
    r = client.get("/")
    assert r.status_code == 200
    text = re.sub(r"\s+", " ", lxml.html.document_fromstring(r.text).text_content())
    assert "no public lists" in text and "digest lists create" in text
    assert "Morning News" not in text and "<form" not in r.text
