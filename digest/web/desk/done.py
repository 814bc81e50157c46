"""What the desk says after a button, and where the keyboard's focus lands then.

A button's redirect names what was done, `?done=<code>`, and for one article which one:
`item=<id>`, the item it acted on (or added), or `article=<id>`, the article of a
dropped item, which is among the proposals again. The desk then says so naming the
headline (looked up on the page, never taken from the address: a link cannot put words
on the desk), and the page puts `autofocus` on the control that was used, now on the
item wherever it went, so Enter does it again; on the item itself when that control is
disabled now (Up at the top), on the status message when the item is gone (Drop).

The redirect has no fragment (#item-N): HTML skips autofocus on a page whose address
points at an element ("flush autofocus candidates"), and focusing scrolls anyway.

What the desk says when a form is refused is here too: a refusal shown at once
(`Refusal`: the reason, the article's headline first, the field it is about and what
was typed), and a stale button, one from a page that showed an article or an edition
that is gone (another tab, another editor), answered with a redirect that says so,
`?error=<code>&article=<id>` (`Stale`), so reloading the page posts nothing again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlencode

from digest.web.pages import sentence


@dataclass(frozen=True)
class Notice:
    """The status message: `text`, or, naming an article, `text` “`title`” `after`, the
    headline in its own language (`lang`, "" for the list's)."""

    text: str = ""
    title: str = ""
    after: str = ""
    lang: str = ""


NO_NOTICE = Notice()


@dataclass(frozen=True)
class Said:
    """What one `done` code says: `text` when its article is not on the page (any
    more), else `before` “headline” `after`; `control`, the item's control that keeps
    the focus (an id prefix: up, down, pin, brief, save, item), or the page's own."""

    text: str
    before: str = ""
    after: str = ""
    control: str = ""


DONE = {
    "started": Said("The draft is started."),
    "dropped": Said("Dropped. Its article is among the proposals again.", "Dropped",
                    ". Its article is among the proposals again."),
    "pinned": Said("Pinned: pinned articles lead the edition.", "Pinned",
                   ": pinned articles lead the edition.", "pin"),
    "unpinned": Said("Unpinned.", "Unpinned", ".", "pin"),
    "moved": Said("Moved."),  # the code of old links, before up and down said which
    "moved-up": Said("Moved up.", "Moved", " up, to number {number}.", "up"),
    "moved-down": Said("Moved down.", "Moved", " down, to number {number}.", "down"),
    "briefed": Said("Moved to \"Also new\": headline and link only.", "Moved",
                    " to \"Also new\": headline and link only.", "brief"),
    "in-full": Said("Told in full.", "Told in full:", ".", "brief"),
    "edited": Said("Saved.", "Saved", ".", "save"),
    "intro": Said("Subject and introduction saved.", control="save-intro"),
    "added": Said("Added at the end of the edition.", "Added",
                  " at the end of the edition, number {number}.", "item"),
    "approved": Said("Approved."),
    "scheduled": Said("Scheduled."),
    "unscheduled": Said("No longer scheduled: it goes at the list's next scheduled time."),
    "tested": Said("A test copy is on its way to you."),
    "sending": Said("Sending has started: the sender delivers it in the next moments."),
}

@dataclass(frozen=True)
class Done:
    """What a redirect's query says was done: a code of DONE and which article."""

    code: str = ""
    item: int | None = None
    article: int | None = None

    def query(self) -> str:
        """"done=pinned&item=7", for the redirect back to the desk."""
        fields = {"done": self.code, "item": self.item, "article": self.article}
        return urlencode({k: v for k, v in fields.items() if v is not None})


NOTHING_DONE = Done()


def row_id(value: str) -> int | None:
    """A row id from a query or a form; anything else (an old or edited link) names no
    row."""
    value = value.strip()
    return int(value) if value.isdigit() and len(value) < 19 else None


#: What a stale button's redirect says (`?error=`): `text` when the article cannot be
#: looked up (gone, or added by URL), else `before` “headline” `after`; {number} is the
#: list's current edition.
STALE = {
    "gone": Said("That article is no longer in this edition (it was dropped in another "
                 "tab, or by another editor); nothing was changed.", "The article",
                 " is no longer in this edition (it was dropped in another tab, or by "
                 "another editor); nothing was changed."),
    "closed": Said("The edition this page showed is no longer open (it was sent, or "
                   "withdrawn); nothing was changed. This is the desk as it is now.",
                   "Nothing was changed for",
                   ": the edition this page showed is no longer open (it was sent, or "
                   "withdrawn). This is the desk as it is now."),
    "changed": Said("The edition this page showed is no longer the list's current one, "
                    "#{number}; nothing was changed. Here it is.",
                    "Nothing was changed for",
                    ": the edition this page showed is no longer the list's current one, "
                    "#{number}. Here it is."),
}


@dataclass(frozen=True)
class Stale:
    """A stale button's redirect: a code of STALE and the article it was about (from
    its form: the item itself may be gone)."""

    code: str = ""
    article: int | None = None

    def query(self) -> str:
        """"error=gone&article=12", for the redirect back to the desk."""
        fields = {"error": self.code, "article": self.article}
        return urlencode({k: v for k, v in fields.items() if v is not None})


NOT_STALE = Stale()


@dataclass(frozen=True)
class Refusal:
    """A form the desk refused, shown again at once: `reason` (the core's words), the
    item it was about (its headline leads the message), the field it is about (an element
    id: "title-7", "subject", "url", "when"; "" for the form as a whole), and what the
    editor typed, by field id, put back in the form."""

    reason: str
    item: int | None = None
    field: str = ""
    typed: dict[str, str] = dataclasses.field(default_factory=dict)


NO_REFUSAL = Refusal("")


class _Item(Protocol):  # what is read of views.ItemView (views imports this module)
    @property
    def id(self) -> int: ...
    @property
    def number(self) -> int: ...
    @property
    def title(self) -> str: ...
    @property
    def language(self) -> str: ...
    @property
    def can_up(self) -> bool: ...
    @property
    def can_down(self) -> bool: ...


class _Proposal(Protocol):  # and of views.ProposalView
    @property
    def article_id(self) -> int: ...
    @property
    def title(self) -> str: ...
    @property
    def language(self) -> str: ...


def refused(refusal: Refusal, items: Sequence[_Item]) -> Notice:
    """The message of a refused form: "“Headline” was not changed: the reason." when it
    was about an item, else the reason."""
    reason = refusal.reason.strip()
    item = next((i for i in items if i.id == refusal.item), None)
    if item is None or not reason:
        return Notice(sentence(reason))
    stop = "" if reason.endswith((".", "!", "?")) else "."
    return Notice("", item.title, f" was not changed: {reason}{stop}", item.language)


def gone(stale: Stale, headline: tuple[str, str] | None, number: int) -> Notice:
    """The message of a stale button: `headline` is its article's (title, language), if
    it can still be looked up; `number`, the list's current edition's."""
    said = STALE.get(stale.code)
    if said is None:
        return NO_NOTICE
    if headline is None:
        return Notice(said.text.format(number=number))
    return Notice(said.before, headline[0], said.after.format(number=number), headline[1])


def told(done: Done, items: Sequence[_Item],
         proposals: Sequence[_Proposal]) -> tuple[Notice, str]:
    """The status message for `done`, and the id of the element that gets the focus
    ("notice" for the message itself; "" for none)."""
    said = DONE.get(done.code)
    if said is None:
        return NO_NOTICE, ""
    item = next((i for i in items if i.id == done.item), None)
    if item is not None and said.before:
        notice = Notice(said.before, item.title, said.after.format(number=item.number),
                        item.language)
        control = said.control
        if (control == "up" and not item.can_up) or (control == "down" and not item.can_down):
            control = "item"  # at the end of its group now, where that button is disabled
        return notice, f"{control}-{item.id}" if control else "notice"
    article = next((p for p in proposals if p.article_id == done.article), None)
    if article is not None and said.before:
        return Notice(said.before, article.title, said.after, article.language), "notice"
    # A control of the page's own ("save-intro") keeps the focus; else the message.
    return Notice(said.text), said.control if "-" in said.control else "notice"
