"""Issue 14: `digest edition ls|show|discard|test`, run as a user runs them, and what
the database (and the outbox) holds afterwards."""

from __future__ import annotations

from pathlib import Path

from tests import test_cli_contract
from tests.test_cli_contract import morning, rows, said

run = test_cli_contract.run  # the fixture: `digest …` in a folder of its own


def db(tmp_path: Path) -> Path:
    return tmp_path / "var" / "digest.db"


def test_ls_and_show_say_what_each_edition_holds(run) -> None:  # type: ignore[no-untyped-def]
    morning(run)
    r = run("edition", "ls")
    assert r.exit_code == 0 and "No editions yet" in said(r), r.output
    run("edition", "build", "--list", "morning")
    r = run("edition", "ls", "--list", "morning")
    assert r.exit_code == 0, r.output
    assert "│ 1 │ morning │ draft │ morning: Ferry timetable changes from Monday │ 3 " \
           "│ by hand" in said(r), r.output
    r = run("edition", "show", "1", "--list", "morning")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[:3] == ["Edition #1 of morning: draft, by hand",
                         "Subject: morning: Ferry timetable changes from Monday",
                         "Articles: 3 articles: 3 in full, 0 in brief"]
    told = [line for line in lines if "Harbour Gazette" in line]
    assert ["Ferry timetable" in told[0], "sea wall" in told[2]] == [True, True]
    r = run("edition", "show", "2", "--list", "morning")
    assert r.exit_code == 1 and r.output.startswith(
        "Error: list 'morning' has no edition #2; `digest edition ls --list morning`")


def test_discard_cancels_the_draft_and_its_articles_are_proposed_again(  # type: ignore[no-untyped-def]
        run, tmp_path: Path) -> None:
    morning(run)
    run("edition", "build", "--list", "morning")
    r = run("edition", "discard", "--list", "morning")
    assert r.exit_code == 0, r.output
    assert said(r).startswith("Discarded edition #1 of morning (now cancelled, never sent): "
                              "its 3 articles are proposed again")
    assert rows(db(tmp_path), "SELECT number, status FROM editions") == [(1, "cancelled")]
    r = run("edition", "discard", "--list", "morning")
    assert r.exit_code == 1 and r.output.startswith(
        "Error: list 'morning' has no open draft to discard"), r.output
    assert "Built edition #2 of morning, status draft: 3 articles" in said(
        run("edition", "build", "--list", "morning"))


def test_discard_refuses_a_sent_edition(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    morning(run)
    run("subscribers", "add", "ada@example.org", "--list", "morning", "--confirmed")
    assert run("edition", "send", "--list", "morning").exit_code == 0
    r = run("edition", "discard", "--list", "morning")
    assert r.exit_code == 1, r.output
    assert r.output.startswith("Error: list 'morning' has no open draft to discard; edition "
                               "#1 is sent, and a sent edition cannot be discarded")
    assert "Traceback" not in r.output
    assert rows(db(tmp_path), "SELECT number, status FROM editions WHERE kind = 'digest'") \
        == [(1, "sent")]
    assert "sent 20" in run("edition", "ls").output


def test_test_mails_one_copy_and_records_no_delivery(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    morning(run)
    r = run("edition", "test", "--list", "morning", "--to", "me@example.org")
    assert r.exit_code == 1 and r.output.startswith(
        "Error: list 'morning' has no open edition to test; `digest edition build --list "
        "morning`"), r.output
    run("edition", "build", "--list", "morning")
    r = run("edition", "test", "--list", "morning", "--to", "Me@Example.org")
    assert r.exit_code == 0, r.output
    assert said(r).startswith("Sent a test of edition #1 of morning to me@example.org via "
                              "outbox (Message-ID <")
    [message] = (tmp_path / "var" / "outbox" / "new").iterdir()
    text = message.read_text(encoding="utf-8")
    assert "To: me@example.org" in text and "Subject: [Test] morning: Ferry" in text
    assert rows(db(tmp_path), "SELECT count(*) FROM deliveries") == [(0,)]
    assert rows(db(tmp_path), "SELECT status FROM editions") == [("draft",)]
    r = run("edition", "test", "--list", "morning", "--to", "nobody")
    assert r.exit_code == 1 and r.output.startswith("Error: 'nobody' is not a valid email")
