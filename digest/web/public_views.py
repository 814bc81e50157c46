"""What the public pages' templates are given (no login): the pages the links in mail
lead to (unsubscribe, confirm; `mail_links`), the subscribe form and the preference page
(`subscribe`) and the archive (`archive`).

Each template in templates/web/ named below gets one of these as `page` (see
docs/web.md). List titles, descriptions and subjects are in the list's own `language`;
the templates mark them with it, as the other public pages do. The pages a mail's links
open also speak its language: their `words` (`digest.web.words`) and `lang` are the
list's, or for the preference page the person's (docs/templates.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from digest.web.pages import MessagePage, Page


@dataclass(frozen=True, kw_only=True)
class MembershipPage(Page):
    """A page about one person on one list, reached by a signed link."""

    email: str  # masked: a***@example.org
    list_title: str
    list_language: str  # the list's own language, for its title
    words: Mapping[str, str]  # the page's fixed words, in `lang`


@dataclass(frozen=True, kw_only=True)
class UnsubscribePage(MembershipPage):
    """web/unsubscribe.html: the buttons. `subscribed` is False when already left."""

    subscribed: bool


@dataclass(frozen=True, kw_only=True)
class LeftPage(MembershipPage):
    """web/unsubscribed.html: after leaving one list (`scope` "list") or all mail ("all")."""

    scope: str
    already: bool  # nothing changed: they had left before


@dataclass(frozen=True, kw_only=True)
class ConfirmPage(MembershipPage):
    """web/confirm.html: the confirm link's page, one button that confirms."""


@dataclass(frozen=True, kw_only=True)
class ConfirmedPage(MembershipPage):
    """web/confirmed.html: a subscription confirmed, now or earlier (`already`)."""

    already: bool


@dataclass(frozen=True, kw_only=True)
class LinkRefusedPage(MessagePage):
    """web/link_refused.html: a link from mail that does not work, in the language of
    its list when the link can still be read (English when it cannot); `mailto` as for
    MessagePage, offered in `words`."""

    words: Mapping[str, str]


@dataclass(frozen=True, kw_only=True)
class ListChoice:
    """A list as the public pages show it."""

    name: str
    title: str
    description: str
    language: str
    double_optin: bool = True  # a sign-up gets a mail with a link to confirm


@dataclass(frozen=True, kw_only=True)
class SubscribePage(Page):
    """web/subscribe.html: the sign-up form.

    `lists` are those offered (one, on /subscribe/{name}); `chosen` the names ticked;
    `email` and `name` what was typed (kept when the form comes back with an `error`,
    which `error_field` ties to the field it is about: "email" or "lists");
    `form_token` the signed, dated token the form must send back; `action` the URL it
    posts to."""

    lists: list[ListChoice]
    chosen: frozenset[str]
    words: Mapping[str, str]  # the page's fixed words, in `lang`
    email: str = ""
    name: str = ""
    error: str = ""
    error_field: str = ""
    form_token: str
    action: str


@dataclass(frozen=True, kw_only=True)
class SubscribedPage(Page):
    """web/subscribed.html: "check your inbox", the same whoever the address is."""

    lists: list[ListChoice]
    words: Mapping[str, str]  # the page's fixed words, in `lang`


@dataclass(frozen=True, kw_only=True)
class PreferenceChoice(ListChoice):
    """One list on the preference page: `subscribed` (confirmed or pending),
    `pending` (waiting for the confirmation link)."""

    subscribed: bool
    pending: bool


@dataclass(frozen=True, kw_only=True)
class PreferencesPage(Page):
    """web/preferences.html: a person's lists, reached by a signed "manage" link.

    `email` is masked; `suppressed` when the address gets no mail at all (left all
    mail, bounced, complained or blocked): then nothing can be joined; `notice` says
    what the last POST did ("" on GET)."""

    email: str
    lists: list[PreferenceChoice]
    suppressed: bool
    words: Mapping[str, str]  # the page's fixed words, in `lang`
    notice: str = ""


@dataclass(frozen=True, kw_only=True)
class ArchivedList(ListChoice):
    """A list in the archive's index: how many editions went out, and the last's date."""

    editions: int
    last_sent: str  # "27 November 2026", or "" when none went out yet


@dataclass(frozen=True, kw_only=True)
class ArchiveIndexPage(Page):
    """web/archive_index.html: the public lists."""

    lists: list[ArchivedList]


@dataclass(frozen=True, kw_only=True)
class EditionLink:
    """A sent edition in a list's archive."""

    number: int
    subject: str
    sent: str  # the date it went out, in the list's timezone: "27 November 2026"
    url: str


@dataclass(frozen=True, kw_only=True)
class ArchiveListPage(Page):
    """web/archive_list.html: one list's sent editions, newest first, a page at a time.

    `newer_url` and `older_url` are "" at either end."""

    mailing_list: ListChoice
    editions: list[EditionLink]
    page_number: int
    pages: int
    newer_url: str
    older_url: str
    feed_url: str


@dataclass(frozen=True, kw_only=True)
class UnsubscribeManagePage(UnsubscribePage):
    """web/unsubscribe.html, with `manage_url`: the preference page of the same person,
    offered as "change your preferences instead"."""

    manage_url: str
