"""Issue 14: what a newcomer met on the command line. Each wrong case gives one
`Error: …` line saying what is wrong and what to do, exit status 1, and nothing
written to the database before it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from digest.cli import main
from tests.conftest import DATA

FEED = DATA / "flow" / "news.xml"  # three articles dated 2026-11-27


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Runs `digest …` in an empty folder with its own database and outbox."""
    monkeypatch.chdir(tmp_path)
    for name in ("DIGEST_CONFIG", "DIGEST_DATABASE_URL", "DIGEST_DELIVERY_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DIGEST_PUBLIC_URL", "https://news.example.org")
    # The test feed is dated 2026-11-27: reach back far enough whenever this runs.
    monkeypatch.setenv("DIGEST_EDITION_WINDOW_HOURS", str(24 * 365 * 30))
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(main, list(args), catch_exceptions=False)

    return invoke


def said(r: Result) -> str:
    return " ".join(r.output.split())


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as con:
        return con.execute(sql).fetchall()


def morning(run) -> None:  # type: ignore[no-untyped-def]
    for args in (["init"],
                 ["lists", "create", "morning", "--from", "m@news.example.org"],
                 ["sources", "add", str(FEED), "--list", "morning"],
                 ["fetch"]):
        r = run(*args)
        assert r.exit_code == 0, r.output


# -- 4: sending to no one ----------------------------------------------------------------


def test_send_to_a_list_without_confirmed_subscribers_is_refused_and_keeps_the_draft(  # type: ignore[no-untyped-def]
        run, tmp_path: Path) -> None:
    morning(run)
    assert run("subscribers", "add", "pat@example.org", "--list", "morning").exit_code == 0
    # No draft yet: none is built for no one.
    r = run("edition", "send", "--list", "morning")
    assert r.exit_code == 1, r.output
    assert r.output.startswith("Error: list 'morning' has no confirmed subscribers"), r.output
    assert "1 pending subscriber" in said(r)
    assert "digest subscribers add ADDRESS --list morning --confirmed" in said(r)
    assert "Traceback" not in r.output
    assert rows(tmp_path / "var" / "digest.db",
                "SELECT count(*) FROM editions WHERE kind = 'digest'") == [(0,)]
    # A draft: kept as it is, its articles still there for the next send.
    assert "Built edition #1" in said(run("edition", "build", "--list", "morning"))
    r = run("edition", "send", "--list", "morning")
    assert r.exit_code == 1 and r.output.startswith("Error: list 'morning' has no confirmed")
    assert rows(tmp_path / "var" / "digest.db",
                "SELECT number, status FROM editions WHERE kind = 'digest'") == [(1, "draft")]
    assert run("subscribers", "add", "ada@example.org", "--list", "morning",
               "--confirmed").exit_code == 0
    r = run("edition", "send", "--list", "morning")
    assert r.exit_code == 0 and "Edition #1 is sent" in r.output, r.output
    assert "3 articles" in said(r)
    assert "Edition #1: 1 delivery to go via outbox" in r.output, r.output  # 11: not "1 deliveries"
    # 11: status says the edition was sent by hand, not "scheduled: never".
    [row] = [line for line in run("status").output.splitlines() if "│ sent " in line]
    assert "by hand" in row and "never" not in row, row


# -- 5: fetch failures reach cron --------------------------------------------------------


def test_fetch_exits_1_when_a_source_failed_unless_failures_are_allowed(  # type: ignore[no-untyped-def]
        run, tmp_path: Path) -> None:
    broken = tmp_path / "broken.xml"
    broken.write_bytes(FEED.read_bytes())
    assert run("init").exit_code == 0
    assert run("lists", "create", "morning", "--from", "m@news.example.org").exit_code == 0
    assert run("sources", "add", str(FEED), "--list", "morning").exit_code == 0
    assert run("sources", "add", str(broken), "--list", "morning").exit_code == 0
    broken.write_text("this is not a feed <")
    r = run("fetch")
    assert r.exit_code == 1, r.output
    assert "3 new articles from 2 sources, 1 failed" in said(r), r.output
    [error] = [line for line in r.output.splitlines() if line.startswith("Error:")]
    assert error.startswith("Error: 1 of 2 sources failed"), error
    assert "--allow-failures" in error and "the articles of the others are kept" in error
    assert rows(tmp_path / "var" / "digest.db", "SELECT count(*) FROM articles") == [(3,)]
    r = run("fetch", "--allow-failures")
    assert r.exit_code == 0 and "Error" not in r.output, r.output
    assert "0 new articles from 2 sources, 1 failed" in said(r), r.output
    r = run("fetch", "--source", "1")
    assert r.exit_code == 0 and "0 new articles from 1 source, 0 failed" in said(r), r.output


# -- 6: every setting checked as a command starts ----------------------------------------


@pytest.mark.parametrize(("name", "value", "says"), [
    ("DIGEST_DELIVERY_BACKEND", "carrier-pigeon",
     "Error: [delivery] backend is 'carrier-pigeon': it must be one of outbox, smtp, ses, "
     "postmark, sendgrid, mailgun; change it where it is set (DIGEST_DELIVERY_BACKEND)"),
    ("DIGEST_SMTP_TLS", "bogus",
     "Error: [smtp] tls is 'bogus': it must be one of starttls, tls, none; change it where "
     "it is set (DIGEST_SMTP_TLS)"),
    ("DIGEST_GATHER_TIMEOUT", "-1",
     "Error: [gather] timeout is -1: it must be more than 0; change it where it is set "
     "(DIGEST_GATHER_TIMEOUT)"),
    ("DIGEST_SMTP_CONNECTIONS", "0", "Error: smtp.connections = '0' (from "
     "DIGEST_SMTP_CONNECTIONS) is out of range: it must be at least 1"),
], ids=["backend", "tls", "timeout", "connections"])
def test_a_wrong_setting_is_an_error_before_anything_is_written(  # type: ignore[no-untyped-def]
        run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str,
        says: str) -> None:
    assert run("init").exit_code == 0
    assert run("lists", "create", "morning", "--from", "m@news.example.org").exit_code == 0
    monkeypatch.setenv(name, value)
    for args in (["subscribers", "add", "ada@example.org", "--list", "morning"],
                 ["sources", "add", str(FEED), "--list", "morning"], ["status"]):
        r = run(*args)
        assert r.exit_code == 1, r.output
        assert r.output.startswith(says), r.output
        assert len(r.output.splitlines()) == 1, r.output
    db = tmp_path / "var" / "digest.db"
    assert rows(db, "SELECT count(*) FROM subscribers") == [(0,)]
    assert rows(db, "SELECT count(*) FROM sources") == [(0,)]


# -- 8: --config before the command, paths from the file's folder ------------------------


def test_config_before_the_command_and_its_paths_taken_from_its_folder(  # type: ignore[no-untyped-def]
        run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    site.mkdir()
    cfg = site / "digest.toml"
    cfg.write_text('data_dir = "data"\n[database]\nurl = "sqlite:///data/news.db"\n'
                   '[delivery]\noutbox_dir = "data/outbox"\n')
    (site / "data").mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    r = run("--config", str(cfg), "init")
    assert r.exit_code == 0, r.output
    assert (site / "data" / "news.db").exists() and not (elsewhere / "data").exists()
    r = run("--config", str(cfg), "lists", "create", "morning", "--from", "m@news.example.org")
    assert r.exit_code == 0, r.output
    # From another folder, before and after the command name: the same database.
    monkeypatch.chdir(tmp_path)
    for args in (["--config", str(cfg), "status"], ["status", "--config", str(cfg)],
                 ["--config", "site/digest.toml", "lists", "ls"]):
        r = run(*args)
        assert r.exit_code == 0 and "morning" in r.output, r.output
    monkeypatch.setenv("DIGEST_CONFIG", str(cfg))
    assert "morning" in run("lists", "ls").output
    assert run("subscribers", "add", "pat@example.org", "--list", "morning").exit_code == 0
    assert len(list((site / "data" / "outbox" / "new").iterdir())) == 1  # the confirm mail
    assert (site / "data" / "secret.key").exists()
    assert not (tmp_path / "data").exists() and not (tmp_path / "var").exists()
    monkeypatch.delenv("DIGEST_CONFIG")
    r = run("--config", "missing.toml", "status")
    assert r.exit_code == 1 and r.output.startswith("Error: config file missing.toml not found")


# -- 3: a source's URL is checked --------------------------------------------------------


@pytest.mark.parametrize(("url", "says"), [
    ("http://", "Error: 'http://' has no host name; give the feed's whole address"),
    ("http://exa mple.org/feed", "Error: 'http://exa mple.org/feed' has a space"),
    ("https://example.org:99999/feed", "has a port that is not a number from 1 to 65535"),
    ("https://ex..org/feed", "'ex..org' is not a host name"),
])
def test_sources_add_refuses_an_address_that_is_no_url(  # type: ignore[no-untyped-def]
        run, tmp_path: Path, url: str, says: str) -> None:
    assert run("init").exit_code == 0
    assert run("lists", "create", "morning", "--from", "m@news.example.org").exit_code == 0
    r = run("sources", "add", url, "--list", "morning")
    assert r.exit_code == 1, r.output
    assert r.output.startswith("Error: ") and says in r.output, r.output
    assert "e.g. https://example.org/feed.xml" in said(r)
    assert rows(tmp_path / "var" / "digest.db", "SELECT count(*) FROM sources") == [(0,)]
    r = run("sources", "add", "https://example.org/feed%20one.xml", "--list", "morning",
            "--no-check")  # what is checked here is the address, not the network
    assert r.exit_code == 0, r.output


# -- 10: forget without a terminal, rm of an unknown address -----------------------------


def test_forget_with_no_terminal_says_to_pass_yes_and_rm_points_at_ls(  # type: ignore[no-untyped-def]
        run) -> None:
    assert run("init").exit_code == 0
    assert run("lists", "create", "morning", "--from", "m@news.example.org").exit_code == 0
    assert run("subscribers", "add", "ada@example.org", "--list", "morning",
               "--confirmed").exit_code == 0
    r = run("subscribers", "forget", "ada@example.org")  # stdin empty: no one to answer
    assert r.exit_code == 1, r.output
    [error] = [line for line in r.output.splitlines() if line.startswith("Error: ")]
    assert error.startswith("Error: nothing was erased") and "pass --yes" in error, r.output
    assert "Aborted!" not in r.output
    assert "ada@example.org" in run("subscribers", "ls", "--list", "morning").output
    r = run("subscribers", "rm", "Nobody@example.org", "--list", "morning")
    assert r.exit_code == 1, r.output
    assert r.output.startswith("Error: 'nobody@example.org' is not on list 'morning'; see "
                               "who is with `digest subscribers ls --list morning`"), r.output
    assert "export" not in r.output


# -- 2: why a build found nothing ---------------------------------------------------------


def test_build_with_nothing_in_the_window_says_what_was_found_and_how_to_widen_it(  # type: ignore[no-untyped-def]
        run, monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    assert run("init").exit_code == 0
    assert run("lists", "create", "morning", "--from", "m@news.example.org").exit_code == 0
    r = run("edition", "build", "--list", "morning")
    assert "No new articles for morning, nothing to build: list morning has no sources; " \
        "add a feed with `digest sources add URL --list morning`" in said(r), r.output
    assert run("sources", "add", str(FEED), "--list", "morning").exit_code == 0
    monkeypatch.delenv("DIGEST_EDITION_WINDOW_HOURS")  # the default: 24 hours
    assert run("fetch").exit_code == 0
    r = run("edition", "build", "--list", "morning")
    assert r.exit_code == 0, r.output
    text = said(r)
    assert "No new articles for morning, nothing to build: it has 3 articles, the newest " \
        "dated 2026-11-27" in text, text
    assert "a first edition takes only those dated in the last 24 hours ([edition] " \
        "window_hours)" in text, text
    assert "since its last edition" not in text
    [hours] = re.findall(r"`DIGEST_EDITION_WINDOW_HOURS=(\d+) digest edition build "
                         r"--list morning`", text)
    monkeypatch.setenv("DIGEST_EDITION_WINDOW_HOURS", hours)  # as it says
    r = run("edition", "build", "--list", "morning")
    assert "Built edition #1 of morning" in said(r) and "3 articles" in said(r), r.output


# -- 7: serve on a busy port ---------------------------------------------------------------


def test_serve_on_a_busy_port_says_which_and_starts_nothing(tmp_path: Path) -> None:
    import os
    import socket
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env.update(DIGEST_PUBLIC_URL="https://news.example.org", DIGEST_DELIVERY_BACKEND="outbox")
    digest = [sys.executable, "-m", "digest"]
    assert subprocess.run([*digest, "init"], cwd=tmp_path, env=env, capture_output=True,
                          timeout=60).returncode == 0
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = subprocess.run([*digest, "serve", "--port", str(port)], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stderr
    assert r.stderr.startswith(f"Error: cannot listen on 127.0.0.1:{port}: another program, "
                               "or another digest serve, is listening there; nothing was "
                               "started"), r.stderr
    assert "--port 8001" in r.stderr and "DIGEST_WEB_PORT" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    # No sender, no scheduler: not one heartbeat was written.
    assert rows(tmp_path / "var" / "digest.db", "SELECT count(*) FROM senders") == [(0,)]


# -- 9: exit statuses as the README states them -------------------------------------------


def test_the_readme_states_the_exit_statuses_the_commands_have(run) -> None:  # type: ignore[no-untyped-def]
    readme = " ".join((Path(__file__).parent.parent / "README.md").read_text().split())
    assert "Errors print `Error: …` with what to do, and exit 1; bad usage (an unknown " \
        "command or option, a missing argument) exits 2" in readme
    assert run("init").exit_code == 0
    assert run("lists", "show", "nope").exit_code == 1  # an error
    for usage in (["lists", "bogus"], ["lists", "create"], ["status", "--bogus"]):
        r = run(*usage)
        assert r.exit_code == 2 and "Error: " in r.output, r.output


# -- one spelling: --output, undo, --status ------------------------------------------------


def test_output_is_the_long_form_of_o(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    morning(run)
    run("subscribers", "add", "ada@example.org", "--list", "morning", "--confirmed")
    r = run("subscribers", "export", "--list", "morning", "--output", "members.csv")
    assert r.exit_code == 0 and "Wrote 1 subscriber to members.csv" in r.output, r.output
    assert "ada@example.org" in (tmp_path / "members.csv").read_text()
    r = run("edition", "preview", "--list", "morning", "--output", "p.html")
    assert r.exit_code == 0 and "written to p.html" in r.output, r.output
    assert (tmp_path / "p.html").read_text().startswith("<!DOCTYPE")

    # Into a folder that is not there, or one it cannot write: an Error:, no traceback,
    # and no folder made on the way.
    for target in (tmp_path / "no" / "such" / "p.html", Path("/proc/p.html")):
        r = run("edition", "preview", "--list", "morning", "-o", str(target))
        assert r.exit_code == 1 and said(r).startswith("Error: cannot write the preview"), \
            r.output
        assert "Traceback" not in r.output
    assert not (tmp_path / "no").exists()


def test_counts_of_one_are_singular(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    morning(run)
    run("lists", "create", "solo", "--from", "s@news.example.org")
    feed = tmp_path / "one.xml"
    feed.write_text(
        '<?xml version="1.0"?><rss version="2.0"><channel><title>One</title>'
        "<link>https://one.example.org/</link><description>d</description><item>"
        "<title>Only story</title><link>https://one.example.org/1</link><guid>1</guid>"
        "<pubDate>Fri, 27 Nov 2026 06:00:00 GMT</pubDate></item></channel></rss>")
    assert run("sources", "add", str(feed), "--list", "solo").exit_code == 0
    r = run("fetch")
    assert "1 new article from 2 sources" in said(r), r.output
    run("subscribers", "add", "ada@example.org", "--list", "solo", "--confirmed")
    assert run("edition", "build", "--list", "solo").exit_code == 0
    r = run("edition", "discard", "--list", "solo")
    assert "its 1 article is proposed again" in said(r), r.output
    r = run("subscribers", "export", "--list", "solo", "--output", "solo.csv")
    assert "Wrote 1 subscriber to solo.csv" in said(r), r.output


def test_suppress_rm_domain_undoes_a_block_as_domain_undo_does(  # type: ignore[no-untyped-def]
        run, tmp_path: Path) -> None:
    run("init")
    for undo in (["rm", "--domain", "spam.example"], ["domain", "spam.example", "--undo"]):
        assert "Blocked spam.example" in run("suppress", "domain", "spam.example").output
        r = run("suppress", *undo)
        assert r.exit_code == 0 and r.output == "Unblocked spam.example.\n", r.output
        assert rows(tmp_path / "var" / "digest.db", "SELECT count(*) FROM suppressions") \
            == [(0,)]
        r = run("suppress", *undo)
        assert r.exit_code == 1 and r.output.startswith(
            "Error: domain 'spam.example' is not blocked"), r.output
    assert "digest suppress rm --domain DOMAIN" in said(run("suppress", "domain", "--help"))
    r = run("suppress", "rm")
    assert r.exit_code == 2 and "give either an EMAIL or --domain DOMAIN" in r.output


def test_subscribers_ls_and_export_take_the_same_statuses(run) -> None:  # type: ignore[no-untyped-def]
    morning(run)
    for command in ("ls", "export"):
        assert "[pending|confirmed|unsubscribed]" in said(
            run("subscribers", command, "--help")), command
        for status in ("pending", "confirmed", "unsubscribed"):
            r = run("subscribers", command, "--list", "morning", "--status", status)
            assert r.exit_code == 0, r.output
        r = run("subscribers", command, "--list", "morning", "--status", "active")
        # ls refuses it as bad usage (2), export as an error (1): `Error:` either way.
        assert r.exit_code in (1, 2) and "\nError: " in "\n" + r.output, r.output
        assert "'active' is not one of" in r.output and "pending" in r.output
        assert "confirmed" in r.output and "unsubscribed" in r.output
        assert "email,name" not in r.output  # nothing written before the refusal


def test_a_mistyped_environment_variable_is_named(  # type: ignore[no-untyped-def]
        run, monkeypatch: pytest.MonkeyPatch) -> None:
    """A setting in the file with a wrong name is an error; one in the environment is
    at least named, with what it looks like, since the environment holds others' too."""
    run("init")
    monkeypatch.setenv("DIGEST_DELIVERY_RATE_LIMT", "5")
    monkeypatch.setenv("DIGEST_TEST_ANYTHING", "1")  # the test suite's own: no word
    r = run("status")
    assert r.exit_code == 0, r.output
    assert ("Warning: DIGEST_DELIVERY_RATE_LIMT is not a setting digest knows, so it "
            "changes nothing; did you mean DIGEST_DELIVERY_RATE_LIMIT?") in said(r), r.output
    assert "DIGEST_TEST_ANYTHING" not in r.output


def test_a_web_address_without_its_scheme_gets_a_hint(run) -> None:  # type: ignore[no-untyped-def]
    """`example.org/feed.xml` is read as a local file (sources may be files): when no such
    file exists and it reads as a host and path, say what was probably meant."""
    assert run("init").exit_code == 0
    assert run("lists", "create", "morning", "--from", "m@news.example.org").exit_code == 0
    r = run("sources", "add", "news.example.org/feed.xml", "--list", "morning")
    assert r.exit_code == 1
    assert "does not exist; did you mean https://news.example.org/feed.xml? A web address " \
        "needs its http:// or https://" in said(r), r.output
    r = run("sources", "add", "feeds/morning.xml", "--list", "morning")  # a path, no host
    assert r.exit_code == 1 and "does not exist" in said(r) and "did you mean" not in said(r)


def test_confirmation_mails_an_import_queued_but_did_not_send_go_out_when_it_is_run_again(
    run, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    """Stopped (Ctrl-C) after queueing its confirmation mails and before sending them
    all, an import run again sends them, though it queues nothing new: its Ctrl-C
    message promises as much. (The rerun found every row unchanged and sent none.)"""
    from digest.app import App
    from digest.config import load
    from digest.deliver import confirm
    from subscribers.importing import import_csv
    from subscribers.lists import get_list

    assert run("init").exit_code == 0
    assert run("lists", "create", "news", "--from", "n@news.example.org").exit_code == 0
    people = tmp_path / "people.csv"
    people.write_text("email\n" + "".join(f"reader{i}@example.org\n" for i in range(5)))
    # What the stopped import had done: the rows imported, their mails queued, not sent.
    app = App(load(None))
    try:
        with app.sessions() as s:
            mlist = get_list(s, "news")
            import_csv(s, mlist, people, confirmed=False, now=app.clock())
            assert confirm.queue_pending(s, mlist, app.clock()) == 5
            s.commit()
    finally:
        app.close()
    r = run("subscribers", "import", str(people), "--list", "news")
    assert r.exit_code == 0, r.output
    assert "5 confirmation mails queued before (by an import that was stopped) go out " \
        "now too" in said(r), r.output
    assert "Confirmation mails: 5 sent" in said(r), r.output
    sent = list((tmp_path / "var" / "outbox" / "new").iterdir())
    assert len(sent) == 5
