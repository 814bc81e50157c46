"""An editor's change racing the start of a send, on SQLite and PostgreSQL: the change
lands before the render and goes out, or it is refused and changes nothing; what the
readers got and what the edition stores (its items, its page) are always the same.

The interleavings are forced: a real code path is held just before one of its own
statements (`Hold`, an SQLAlchemy engine event for one thread) while the other side
runs; no function is replaced. Each side runs in a thread of its own with its own
session, as the desk, the API and the sender do.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from digest import curate
from digest.app import App
from digest.errors import InvalidInput
from digest.models import Edition, EditionStatus
from subscribers.models import MailingList
from tests.conftest import Clock
from tests.test_curate import draft, outbox, seed

#: How long the other side is given to do the wrong thing while one side is held. The
#: outcome checked does not depend on it: a side that must wait cannot go on, however
#: long it is given; it only gives a broken lock the chance to show.
GRACE = 2.0


class Hold:
    """Holds `thread` just before it executes its first statement that starts with
    `start` and holds `has`, until `release()`."""

    def __init__(self, engine: Engine, start: str, has: str = "") -> None:
        self.engine, self.start, self.has = engine, start, has
        self.thread: threading.Thread | None = None
        self.reached, self._go = threading.Event(), threading.Event()
        event.listen(engine, "before_cursor_execute", self._before)

    def _before(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if (threading.current_thread() is self.thread and not self.reached.is_set()
                and statement.lstrip().startswith(self.start) and self.has in statement):
            self.reached.set()
            assert self._go.wait(30), "never released"

    def release(self) -> None:
        self._go.set()

    def close(self) -> None:
        """Stop watching (once no thread runs a statement: removing a listener while
        another thread runs the engine's listeners breaks that thread's statement)."""
        event.remove(self.engine, "before_cursor_execute", self._before)


@dataclass
class Side:
    """One side of the race, run in a thread: what it returned or raised."""

    work: Callable[[], object]
    result: object = None
    error: BaseException | None = None
    thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.result = self.work()
        except BaseException as exc:  # reported by the test
            self.error = exc

    def start(self) -> None:
        self.thread.start()

    def done_within(self, seconds: float) -> bool:
        self.thread.join(seconds)
        return not self.thread.is_alive()


def race(engine: Engine, first: Side, at: tuple[str, str], second: Side) -> bool:
    """Run `first` until it is about to execute the statement `at` (its start, and a
    word it holds), then `second`, given GRACE seconds; then let `first` go on, and
    wait for both. Whether `second` finished while `first` was held."""
    hold = Hold(engine, *at)
    hold.thread = first.thread
    first.start()
    assert hold.reached.wait(30), f"{at[0]} never ran"
    second.start()
    second_first = second.done_within(GRACE)
    hold.release()
    assert first.done_within(30) and second.done_within(30)
    hold.close()
    return second_first


def change(app: App, edition_id: int, do: Callable[[Session, Edition], object]) -> None:
    """An editor's change as the desk and the API make it: the edition read, changed
    through `digest.curate`, committed."""
    with app.sessions() as s:
        edition = s.get_one(Edition, edition_id)
        do(s, edition)
        s.commit()


def stored(app: App, edition_id: int) -> tuple[EditionStatus, list[str], str]:
    """The edition as the archive shows it: status, headlines in order, its page."""
    with app.sessions() as s:
        edition = s.get_one(Edition, edition_id)
        return edition.status, [i.title for i in edition.items], edition.html


def mailed_headlines(app: App, headlines: list[str]) -> list[list[str]]:
    """Of `headlines`, those each mail in the outbox holds."""
    mails = outbox(app)
    return [[h for h in headlines if h in text_of(m)] for m in mails]


def text_of(mail: EmailMessage) -> str:
    body = mail.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def test_an_edit_that_read_the_edition_before_a_send_began_goes_out(
        app: App, clock: Clock) -> None:
    """The editor's change has read the edition (a draft) and is about to write when
    `digest edition send` starts: the send waits for the change, and mails it."""
    seed(app, clock, 3)
    edition = draft(app, clock)
    _status, before, _html = stored(app, edition.id)
    first_id = _item_ids(app, edition.id)[0]
    corrected = "Harbour reopens after the storm: corrected headline"

    edit = Side(lambda: change(app, edition.id, lambda s, ed: curate.edit_item(
        s, ed, first_id, title=corrected)))
    send = Side(lambda: app.send("news"))
    send_finished_first = race(app.engine, edit, ("UPDATE edition_items", ""), send)

    assert edit.error is None and send.error is None, (edit.error, send.error)
    status, headlines, html = stored(app, edition.id)
    assert status == EditionStatus.SENT
    assert headlines == [corrected, *before[1:]]
    # Every reader got the edition as stored, the correction included; so does its page.
    assert mailed_headlines(app, [corrected, *before]) == [headlines] * 3
    assert corrected in html
    assert not send_finished_first, "the send went on while an edit of its edition was open"


def test_an_edit_made_while_the_send_renders_is_refused(app: App, clock: Clock) -> None:
    """`digest edition send` has rendered the edition and is about to store it when an
    editor drops an item: the drop waits, then is refused saying why; the mail, the
    stored items and the page all still hold the item."""
    seed(app, clock, 3)
    edition = draft(app, clock)
    _status, before, _html = stored(app, edition.id)
    first_id = _item_ids(app, edition.id)[0]

    send = Side(lambda: app.send("news"))
    drop = Side(lambda: change(app, edition.id,
                               lambda s, ed: curate.drop_item(s, ed, first_id)))
    drop_finished_first = race(app.engine, send, ("UPDATE editions", "html"), drop)

    assert send.error is None, send.error
    status, headlines, html = stored(app, edition.id)
    assert status == EditionStatus.SENT and headlines == before
    assert mailed_headlines(app, before) == [before] * 3
    assert all(h in html for h in before)
    # The editor is told: being sent, or (when `digest edition send` delivered before
    # the drop got its turn) sent already; either way, that nothing changed.
    assert isinstance(drop.error, InvalidInput), drop.error
    assert re.match(r"edition #1 (is already being sent|was sent already); nothing changed",
                    str(drop.error)), drop.error
    assert not drop_finished_first, "the drop went on while the send held the edition"


@pytest.mark.parametrize("what", ["intro", "add"])
def test_an_edit_held_open_makes_the_send_now_button_wait(
        app: App, clock: Clock, what: str) -> None:
    """The desk's Send button (`App.send_now`) pressed while another editor's change of
    the subject or a new item is being written: the button's send waits, and mails the
    change."""
    seed(app, clock, 4)
    edition = draft(app, clock)
    with app.sessions() as s:  # one article left out, to add back
        ed = s.get_one(Edition, edition.id)
        curate.drop_item(s, ed, ed.items[-1].id)
        s.commit()
    _status, before, _html = stored(app, edition.id)
    with app.sessions() as s:
        mlist_id = s.get_one(Edition, edition.id).list_id
        [left_out] = curate.proposals(s, s.get_one(Edition, edition.id),
                                      _list(s, mlist_id), now=clock(),
                                      rules=app.edition_rules())

    def edit(s: Session, ed: Edition) -> object:
        if what == "intro":
            curate.set_intro(s, ed, "A storm week.", subject="Storm week special")
            return None
        return curate.add_article(s, ed, left_out.article_id, rules=app.edition_rules())

    def press_send() -> int:
        with app.sessions() as s:
            ed = s.get_one(Edition, edition.id)
            queued = app.send_now(s, ed, _list(s, ed.list_id))
            s.commit()
            return queued

    editing, send = Side(lambda: change(app, edition.id, edit)), Side(press_send)
    at = ("UPDATE editions", "subject") if what == "intro" else ("INSERT INTO edition_items", "")
    send_finished_first = race(app.engine, editing, at, send)

    assert editing.error is None and send.error is None, (editing.error, send.error)
    assert send.result == 3
    app.deliver(edition.id)
    _status, headlines, html = stored(app, edition.id)
    mails = outbox(app)
    assert len(mails) == 3
    if what == "intro":
        assert all(m["Subject"] == "Storm week special" for m in mails)
        assert all("A storm week." in text_of(m) for m in mails)
        assert "A storm week." in html and headlines == before
    else:
        assert headlines == [*before, left_out.title]
        assert mailed_headlines(app, headlines) == [headlines] * 3
        assert left_out.title in html
    assert not send_finished_first, "the send went on while an edit of its edition was open"


def _item_ids(app: App, edition_id: int) -> list[int]:
    with app.sessions() as s:
        return [i.id for i in s.get_one(Edition, edition_id).items]


def _list(s: Session, list_id: int) -> MailingList:
    return s.get_one(MailingList, list_id)
