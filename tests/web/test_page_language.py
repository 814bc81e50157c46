"""The pages a reader reaches from a mail speak the mail's language (issue 11): a Korean
list's reader who follows 구독 취소 or 수신 설정 in a real mail from the outbox lands on
Korean pages, and so do the pages after each button; an English list's stay English.

    world (tests/web/conftest.py): news (en) and sport (ko); Alice on both.
"""

from __future__ import annotations

import re

import lxml.html
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from digest.app import App
from digest.publication import create_list, update_list
from digest.render import _LABELS
from digest.web import create_app
from digest.web import words as page_words
from subscribers.lists import get_list
from subscribers.members import add_member
from subscribers.models import Subscriber
from tests.conftest import Clock
from tests.web.conftest import ALICE, World
from tests.web.test_archive import publish
from tests.web.test_footer import _footer_links, _mail_of, _path

CAROL = "carol@example.com"


def _doc(html: str) -> lxml.html.HtmlElement:
    return lxml.html.document_fromstring(html)


def _lang(html: str) -> str:
    return str(_doc(html).get("lang"))


def _h1(html: str) -> str:
    return " ".join(_doc(html).xpath("//h1")[0].text_content().split())


def _buttons(html: str) -> list[str]:
    return [b.text_content().strip() for b in _doc(html).xpath("//button")]


def _title(html: str) -> str:
    return str(_doc(html).xpath("//title")[0].text_content())


def _add_carol(app: App, world: World) -> int:
    """Carol's id, known to `world` from now on."""
    with app.sessions() as s:
        world.ids[CAROL] = s.scalars(select(Subscriber.id).where(
            Subscriber.email == CAROL)).one()
    return world.ids[CAROL]


@pytest.fixture
def korean_mail(app: App, world: World, clock: Clock) -> dict[str, str]:
    """The footer links of the sport (ko) edition Alice received."""
    publish(app, clock, "sport", "서울 마라톤 개최")
    return _footer_links(_mail_of(app, "sport", ALICE)[1])


def test_a_korean_readers_unsubscribe_link_opens_korean_pages(
        client: TestClient, world: World, korean_mail: dict[str, str]) -> None:
    page = client.get(_path(korean_mail["구독 취소"])).text
    assert _lang(page) == "ko" and _title(page) == "스포츠 소식 구독 취소"
    assert _h1(page) == "스포츠 소식 구독을 취소하시겠습니까?"
    assert _buttons(page) == ["구독 취소", "모든 메일 수신 거부"]
    assert "Unsubscribe" not in _doc(page).text_content()
    # The list's title keeps its own mark, and the address its place in the sentence.
    assert '<strong lang="ko" dir="auto">스포츠 소식</strong>' in page
    assert "a***@example.org 주소로 더 이상" in _doc(page).text_content()

    left = client.post(_path(korean_mail["구독 취소"]),
                       data={"List-Unsubscribe": "One-Click", "via": "page"})
    assert left.status_code == 200 and _lang(left.text) == "ko"
    assert _h1(left.text) == "구독이 취소되었습니다"
    assert _title(left.text) == "스포츠 소식 구독 취소 완료"
    assert world.status(ALICE, "sport") == "unsubscribed"
    again = client.get(_path(korean_mail["구독 취소"])).text
    assert _h1(again) == "이미 구독을 취소하셨습니다"

    everything = client.post(_path(korean_mail["구독 취소"]), data={"scope": "all", "via": "page"})
    assert _lang(everything.text) == "ko"
    assert _h1(everything.text) == "앞으로 메일을 보내지 않습니다"
    assert world.suppressed(ALICE)


def test_a_korean_readers_preferences_link_opens_a_korean_page(
        client: TestClient, world: World, korean_mail: dict[str, str]) -> None:
    link = _path(korean_mail["수신 설정"])
    page = client.get(link).text
    assert _lang(page) == "ko" and _title(page) == "메일 수신 설정"
    assert _buttons(page) == ["설정 저장", "모든 메일 수신 거부"]
    assert "Send me" not in page and "<legend>받으실 뉴스레터</legend>" in page
    saved = client.post(link, data={"action": "save", "lists": ["sport"]})
    assert _lang(saved.text) == "ko"
    assert _doc(saved.text).xpath("//p[@role='status']")[0].text == "설정이 저장되었습니다."
    assert world.status(ALICE, "news") == "unsubscribed"


def test_an_english_lists_pages_stay_english(
        client: TestClient, app: App, world: World, clock: Clock) -> None:
    publish(app, clock, "news", "Ferry timetable changes")
    links = _footer_links(_mail_of(app, "news", ALICE)[1])
    page = client.get(_path(links["Unsubscribe"])).text
    assert _lang(page) == "en" and _h1(page) == "Unsubscribe from Morning News?"
    assert _buttons(page) == ["Unsubscribe", "Leave all mail"]
    preferences = client.get(_path(links["Manage preferences"])).text
    assert _lang(preferences) == "en" and _h1(preferences) == "Your email preferences"
    left = client.post(_path(links["Unsubscribe"]), data={"List-Unsubscribe": "One-Click"})
    assert _lang(left.text) == "en" and _h1(left.text) == "You are unsubscribed"


def test_a_preferences_link_naming_no_list_speaks_the_lists_the_person_shares(
        client: TestClient, app: App, world: World, clock: Clock) -> None:
    """Links mailed before the manage token named its list: Alice's lists differ in
    language (English); Carol's only list is Korean (Korean)."""
    with app.sessions() as s:
        add_member(s, get_list(s, "sport"), CAROL, confirmed=True, now=clock())
        s.commit()
    alice = client.get("/preferences/" + app.tokens.make(
        "manage", world.ids[ALICE], None, ALICE)).text
    assert _lang(alice) == "en" and _h1(alice) == "Your email preferences"
    carol_id = _add_carol(app, world)
    carol = client.get("/preferences/" + app.tokens.make("manage", carol_id, None, CAROL)).text
    assert _lang(carol) == "ko" and _h1(carol) == "메일 수신 설정"


def test_a_korean_confirm_link_that_expired_says_so_in_korean(
        client: TestClient, app: App, world: World, clock: Clock) -> None:
    with app.sessions() as s:
        add_member(s, get_list(s, "sport"), CAROL, now=clock())
        s.commit()
    _add_carol(app, world)
    link = "/confirm/" + world.token("confirm", CAROL, "sport")
    clock.advance(days=8)
    r = client.get(link)
    assert r.status_code == 410 and _lang(r.text) == "ko"
    assert _h1(r.text) == "링크가 만료되었습니다" and "7일 동안만" in r.text


def test_a_korean_unsubscribe_link_that_is_refused_is_refused_in_korean(
        app: App, world: World) -> None:
    """A link whose address is no longer the subscriber's still names its list: the
    refusal speaks its language, with the mail-to way out."""
    app.settings = app.settings.with_overrides(
        delivery__unsubscribe_mailto="Sport <leave@example.org>")
    token = app.tokens.make("unsubscribe", world.ids[ALICE], world.lists["sport"],
                            "someone-else@example.org")
    with TestClient(create_app(app)) as client:
        r = client.get(f"/unsubscribe/{token}")
        unreadable = client.get("/unsubscribe/nonsense").text
    assert r.status_code == 400 and _lang(r.text) == "ko"
    assert _h1(r.text) == "이 링크는 사용할 수 없습니다"
    assert "링크를 받으신 주소가 구독 중이 아닙니다" in r.text
    assert re.search(r'<a href="mailto:leave@example.org\?subject=unsubscribe">'
                     r"leave@example.org</a> 주소로", r.text)
    # A link that cannot be read names no list: English.
    assert _lang(unreadable) == "en" and _h1(unreadable) == "This link does not work"


def test_an_unknown_language_falls_back_to_english(
        client: TestClient, app: App, world: World, clock: Clock) -> None:
    with app.sessions() as s:
        mlist = create_list(s, "nouvelles", title="Les Nouvelles", language="fr",
                            from_addr="n@example.org")
        add_member(s, mlist, ALICE, confirmed=True, now=clock())
        s.commit()
        world.lists["nouvelles"] = mlist.id
    page = client.get("/unsubscribe/" + world.token("unsubscribe", ALICE, "nouvelles")).text
    assert _lang(page) == "en" and _h1(page) == "Unsubscribe from Les Nouvelles?"
    assert '<strong lang="fr" dir="auto">Les Nouvelles</strong>' in page


def test_every_language_has_every_word_with_the_same_placeholders() -> None:
    english = page_words.words("en")
    assert page_words.languages() == frozenset(_LABELS)  # the mail's languages, no more
    for language in page_words.languages():
        said = page_words.words(language)
        assert said.keys() == english.keys(), language
        for key, text in said.items():
            assert set(re.findall(r"{\w+}", text)) == set(re.findall(r"{\w+}", english[key])), \
                (language, key)


def test_an_expired_korean_preferences_link_says_so_in_korean(
        client: TestClient, app: App, world: World, clock: Clock,
        korean_mail: dict[str, str]) -> None:
    """A reader who opens 수신 설정 in a mail more than 30 days old learns, in Korean,
    that the link expired and how to get a new one: no English sentence on the page."""
    link = _path(korean_mail["수신 설정"])
    clock.advance(days=31)
    r = client.get(link)
    assert r.status_code == 410 and _lang(r.text) == "ko"
    assert _h1(r.text) == "링크가 만료되었습니다"
    text = _doc(r.text).xpath("//main")[0].text_content()
    assert not re.search(r"[A-Za-z]{3,}", text), text
    # The form's answer is the same page.
    posted = client.post(link, data={"action": "save", "lists": ["sport"]})
    assert posted.status_code == 410 and _h1(posted.text) == "링크가 만료되었습니다"
    assert world.status(ALICE, "news") == "confirmed"


def _english_words(page: str) -> list[str]:
    """Words of English (three letters or more) in the page's <main>."""
    return re.findall(r"[A-Za-z]{3,}", _doc(page).xpath("//main")[0].text_content())


def test_a_korean_lists_sign_up_form_and_its_answers_are_korean(
        client: TestClient, app: App, world: World) -> None:
    """/subscribe/sport, the address a Korean list gives out, speaks Korean from the form
    to "check your inbox", its mistakes included; the form for every list stays English
    while the lists differ."""
    form = client.get("/subscribe/sport").text
    assert _lang(form) == "ko" and _h1(form) == "스포츠 소식 구독 신청"
    assert _buttons(form) == ["구독 신청"] and not _english_words(form)
    assert _title(form) == "스포츠 소식 구독 신청"
    token = _doc(form).xpath('//input[@name="form_token"]/@value')[0]

    def post(**fields: object) -> str:
        data = {"email": CAROL, "name": "", "website": "", "lists": ["sport"],
                "form_token": token, **fields}
        r = client.post("/subscribe/sport", data=data)
        assert _lang(r.text) == "ko", r.text
        return r.text

    for mistake in ({"email": "carol at example"}, {"email": ""}, {"lists": []}):
        again = post(**mistake)
        error = _doc(again).xpath('//*[@role="alert"]')[0].text_content()
        assert not re.search(r"[A-Za-z]{3,}", error), error
    inbox = post()
    assert _h1(inbox) == "메일함을 확인해 주세요" and not _english_words(inbox)
    # A stale or forged form, and a sixth post from one network, are told in Korean too.
    forged = client.post("/subscribe/sport", data={"email": CAROL, "lists": ["sport"],
                                                   "form_token": "forged"})
    assert forged.status_code == 400 and _lang(forged.text) == "ko"
    assert _h1(forged.text) == "페이지를 새로 고쳐 주세요" and not _english_words(forged.text)
    busy = client.post("/subscribe/sport", data={"email": CAROL, "lists": ["sport"],
                                                 "form_token": token})
    assert busy.status_code == 429 and _lang(busy.text) == "ko"
    assert not _english_words(busy.text), busy.text
    assert _lang(client.get("/subscribe").text) == "en"


def test_a_list_title_that_looks_like_a_placeholder_is_shown_as_typed(
        client: TestClient, app: App, world: World) -> None:
    """A title is the admin's text, never a template: "{address}" in it stays as typed,
    and the reader's address appears only where the sentence puts it."""
    with app.sessions() as s:
        update_list(s, get_list(s, "news"), title="Morning {address} {list}")
        s.commit()
    page = client.get("/unsubscribe/" + world.token("unsubscribe", ALICE, "news")).text
    assert _h1(page) == "Unsubscribe from Morning {address} {list}?"
    assert _doc(page).text_content().count("a***@example.org") == 1
