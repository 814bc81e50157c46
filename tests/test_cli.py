"""The CLI contract: commands work end to end, and every wrong input gets `Error: …`
with what to do, exit status 1 (2 for bad usage)."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from digest.app import App
from digest.cli import main
from digest.models import Edition, EditionStatus
from tests.conftest import DATA, Clock
from tests.test_schedule import add_articles, at, deliveries, drop_every_article, hourly, make_list


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Runs `digest …` in an empty folder with its own database and outbox."""
    monkeypatch.chdir(tmp_path)
    for name in ("DIGEST_CONFIG", "DIGEST_DATABASE_URL", "DIGEST_DELIVERY_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DIGEST_PUBLIC_URL", "https://news.example.org")
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(main, list(args), catch_exceptions=False)

    return invoke


def test_whole_flow_from_the_command_line(  # type: ignore[no-untyped-def]
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run("init").exit_code == 0
    r = run("lists", "create", "morning", "--title", "Morning", "--from",
            "Morning <m@news.example.org>", "--timezone", "Asia/Seoul")
    assert r.exit_code == 0, r.output
    feed = DATA / "flow" / "news.xml"
    assert run("sources", "add", str(feed), "--list", "morning").exit_code == 0
    assert run("subscribers", "add", "Ada@Example.org", "--list", "morning", "--name", "Ada",
               "--confirmed").exit_code == 0
    r = run("subscribers", "add", "pat@example.org", "--list", "morning")
    assert r.exit_code == 0 and "pending" in r.output and "1 sent" in r.output, r.output
    r = run("subscribers", "confirm-again", "pat@example.org", "--list", "morning")
    assert r.exit_code == 0 and "try again in 10 minutes" in r.output
    r = run("subscribers", "confirm-again", "ada@example.org", "--list", "morning")
    assert r.exit_code == 1 and "not pending" in r.output
    r = run("fetch")
    assert r.exit_code == 0 and "3 new articles from 1 source, 0 failed" in r.output
    r = run("sources", "ls")
    assert "Harbour" in r.output and "never" not in r.output
    r = run("lists", "ls")
    assert "morning" in r.output
    preview = tmp_path / "p.html"
    # The test feed is dated 2026-11-27: reach back far enough whenever this runs.
    monkeypatch.setenv("DIGEST_EDITION_WINDOW_HOURS", str(24 * 365 * 30))
    r = run("edition", "build", "--list", "morning")
    assert r.exit_code == 0 and "Built edition #1 of morning, status draft: 3 articles: " \
        "3 in full, 0 in brief" in " ".join(r.output.split())
    r = run("edition", "preview", "--list", "morning", "-o", str(preview))
    assert r.exit_code == 0 and "항구 축제" in preview.read_text(encoding="utf-8")
    r = run("edition", "send", "--list", "morning")
    assert r.exit_code == 0 and "Edition #1 is sent" in r.output, r.output
    # The list has no postal address: said once as the edition starts, with the fix,
    # naming the edition by its number (#1; its row id is 2, after the confirmations').
    assert r.output.count("has no postal address") == 1, r.output
    [warning] = [line for line in r.output.splitlines() if "no postal address" in line]
    assert "edition #1 of morning: list morning has no postal address" in warning, warning
    assert "digest lists set morning --postal-address" in r.output
    r = run("edition", "send", "--list", "morning")
    assert r.exit_code == 0 and "Edition #1 of morning is already sent, and there is " \
        "nothing new to send: its 3 articles went out in edition #1 or before it; run " \
        "`digest fetch`" in " ".join(r.output.split()), r.output
    assert "Warning" not in r.output
    sent = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
            for p in (tmp_path / "var" / "outbox" / "new").iterdir()]
    by_rcpt = {m["To"].addresses[0].addr_spec: m for m in sent}
    assert len(sent) == 2 and set(by_rcpt) == {"ada@example.org", "pat@example.org"}
    # Pat is pending: a confirmation mail, not the digest; Ada gets the digest.
    assert by_rcpt["pat@example.org"]["Subject"] == "Confirm your subscription to Morning"
    assert by_rcpt["ada@example.org"]["To"] == "Ada <ada@example.org>"
    assert by_rcpt["ada@example.org"]["Subject"].startswith("Morning: ")
    r = run("subscribers", "export", "--list", "morning")
    assert r.output.splitlines()[0].startswith("email,name,status")
    assert "ada@example.org,Ada,confirmed" in r.output


@pytest.mark.parametrize(("args", "expected"), [
    (["lists", "create", "x", "--from", "x@news.example.org", "--timezone", "Mars/Base"],
     "time zone 'Mars/Base' is unknown"),
    (["lists", "create", "Bad Name!", "--from", "x@news.example.org"], "name"),
    (["lists", "create", "x", "--from", "not an address"], "address"),
    (["sources", "add", "https://example.org/feed", "--list", "nope"], "list 'nope' not found"),
    (["sources", "add", "/no/such/feed.xml", "--list", "daily"], "does not exist"),
    (["sources", "add", "ftp://example.org/feed", "--list", "daily"], "not an http(s) URL"),
    (["subscribers", "add", "not-an-address", "--list", "daily"], "not a valid email"),
    (["subscribers", "rm", "nobody@example.org", "--list", "daily"], "nobody@example.org"),
    (["fetch", "--source", "99"], "source 99 not found"),
    (["edition", "send", "--list", "nope"], "list 'nope' not found"),
    (["--help"], None),
])
def test_wrong_input_says_what_to_do(run, args: list[str], expected: str | None) -> None:  # type: ignore[no-untyped-def]
    run("init")
    run("lists", "create", "daily", "--from", "Daily <d@news.example.org>")
    r = run(*args)
    if expected is None:
        assert r.exit_code == 0
        return
    assert r.exit_code == 1, r.output
    assert r.output.startswith("Error: ") and expected in r.output, r.output


def test_database_not_initialized_and_missing_config(run) -> None:  # type: ignore[no-untyped-def]
    r = run("lists", "ls")
    assert r.exit_code == 1 and "run `digest init`" in r.output
    r = run("lists", "ls", "--config", "missing.toml")
    assert r.exit_code == 1 and "config file missing.toml not found" in r.output
    assert run("lists", "bogus").exit_code == 2


def test_double_opt_in_from_the_command_line(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run("init")
    run("lists", "create", "optin", "--from", "O <o@news.example.org>")
    run("lists", "create", "open", "--from", "O <o@news.example.org>", "--single-optin")
    csv = tmp_path / "people.csv"
    csv.write_text("email,name\na@example.org,A\nb@example.org,B\nnot-an-address,C\n")
    r = run("subscribers", "import", str(csv), "--list", "optin")
    assert r.exit_code == 0 and "2 pending subscribers get a confirmation mail" in r.output
    r = run("subscribers", "import", str(csv), "--list", "optin")  # again: nothing new
    assert "confirmation mail" not in r.output
    r = run("subscribers", "add", "c@example.org", "--list", "open")
    assert r.exit_code == 0 and "(confirmed)" in r.output and "Confirmation" not in r.output
    mails = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
             for p in (tmp_path / "var" / "outbox" / "new").iterdir()]
    assert sorted(m["To"].addresses[0].addr_spec for m in mails) == [
        "a@example.org", "b@example.org"]
    assert all("/confirm/" in m.get_body(("plain",)).get_content() for m in mails)


def test_export_formats_and_status_filter(run) -> None:  # type: ignore[no-untyped-def]
    import json

    run("init")
    run("lists", "create", "daily", "--from", "D <d@news.example.org>")
    run("subscribers", "add", "a@example.org", "--list", "daily", "--confirmed")
    run("subscribers", "add", "b@example.org", "--list", "daily")  # pending
    r = run("subscribers", "export", "--list", "daily", "--format", "jsonl",
            "--status", "confirmed")
    rows = [json.loads(line) for line in r.output.splitlines() if line.strip()]
    assert [(x["email"], x["status"], x["origin"]) for x in rows] == [
        ("a@example.org", "confirmed", "cli")]
    assert rows[0]["confirmed_at"]
    r = run("subscribers", "export", "--list", "daily", "--status", "nope")
    assert r.exit_code == 2 and "Error: Invalid value for '--status'" in r.output, r.output
    assert "'nope' is not one of" in r.output and "'confirmed'" in r.output
    r = run("subscribers", "export", "--list", "daily", "--status", "CONFIRMED")
    assert r.exit_code == 0 and "a@example.org" in r.output, r.output


def test_local_time_is_a_list_setting(run) -> None:  # type: ignore[no-untyped-def]
    run("init")
    run("lists", "create", "daily", "--from", "D <d@news.example.org>")
    r = run("lists", "set", "daily", "--local-time")
    assert r.exit_code == 0 and "daily local time: off → on" in r.output, r.output


def test_keep_tracking_is_a_list_setting(run) -> None:  # type: ignore[no-untyped-def]
    run("init")
    r = run("lists", "create", "daily", "--from", "D <d@news.example.org>", "--keep-tracking")
    assert r.exit_code == 0, r.output
    assert "  keep tracking on\n" in run("lists", "show", "daily").output
    r = run("lists", "set", "daily", "--clean-links")
    assert r.exit_code == 0 and "daily keep tracking: on → off" in r.output, r.output
    r = run("lists", "create", "other", "--from", "O <o@news.example.org>")
    assert "  keep tracking off\n" in run("lists", "show", "other").output


def test_sending_a_draft_without_articles_says_what_to_do(
    app: App, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_list(app, clock, members=3)
    add_articles(app, "news", hourly(at("2026-11-27 00:00"), 6))
    edition_id = drop_every_article(app, clock)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIGEST_CONFIG", raising=False)
    monkeypatch.setenv("DIGEST_DATABASE_URL", app.settings["database.url"])
    monkeypatch.setenv("DIGEST_DELIVERY_BACKEND", "outbox")  # chosen: see test_startup.py
    monkeypatch.setenv("DIGEST_PUBLIC_URL", "https://news.example.org")  # test_admin_path
    r = CliRunner().invoke(main, ["edition", "send", "--list", "news"])
    assert deliveries(app) == 0
    assert r.exit_code == 1, r.output
    assert r.output.startswith("Error: edition #1 of 'news' has no articles; add one"), r.output
    with app.sessions() as s:
        assert s.get_one(Edition, edition_id).status == EditionStatus.DRAFT


def test_a_weak_secret_key_is_an_error_that_says_how_to_make_one(  # type: ignore[no-untyped-def]
    run, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run("init").exit_code == 0
    assert run("lists", "create", "news", "--from", "n@news.example.org").exit_code == 0
    monkeypatch.setenv("DIGEST_SECRET_KEY", "a")
    r = run("subscribers", "add", "ada@example.org", "--list", "news")
    assert r.exit_code == 1, r.output
    assert r.output.startswith("Error: the signing key in DIGEST_SECRET_KEY is 1 bytes long")
    assert "secrets.token_urlsafe(48)" in r.output and "Traceback" not in r.output
    monkeypatch.delenv("DIGEST_SECRET_KEY")
    assert "no subscriber" in run("subscribers", "show", "ada@example.org").output  # not added


def _three_news_room_for_two(run, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """A list fed the flow's three articles, with room for one in full and one in brief."""
    assert run("init").exit_code == 0
    assert run("lists", "create", "morning", "--title", "Morning", "--from",
               "m@news.example.org", "--postal-address", "1 Harbour Road, Busan").exit_code == 0
    assert run("sources", "add", str(DATA / "flow" / "news.xml"), "--list",
               "morning").exit_code == 0
    assert run("fetch").exit_code == 0
    monkeypatch.setenv("DIGEST_EDITION_WINDOW_HOURS", str(24 * 365 * 30))
    monkeypatch.setenv("DIGEST_EDITION_MAX_ITEMS", "1")
    monkeypatch.setenv("DIGEST_EDITION_BRIEF_MAX", "1")


def test_build_names_the_setting_that_left_stories_out(  # type: ignore[no-untyped-def]
        run, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three new articles, one told in full and one in brief: the third is not in the
    edition, and the command says how many and which setting to change."""
    _three_news_room_for_two(run, monkeypatch)
    r = run("edition", "build", "--list", "morning")
    said = " ".join(r.output.split())
    assert r.exit_code == 0, r.output
    assert ("2 articles: 1 in full, 1 in brief; 1 more new article held over for the "
            "next edition (no room: [edition] brief_max, html_max_kb)") in said, said


def test_send_in_one_step_says_what_it_held_over(  # type: ignore[no-untyped-def]
        run, monkeypatch: pytest.MonkeyPatch) -> None:
    """`digest edition send` builds and sends at once: it says how many stories went in
    full and in brief and how many wait for the next edition, which then has them."""
    _three_news_room_for_two(run, monkeypatch)
    assert run("subscribers", "add", "reader@example.org", "--list", "morning",
               "--confirmed").exit_code == 0
    r = run("edition", "send", "--list", "morning")
    said = " ".join(r.output.split())
    assert r.exit_code == 0, r.output
    assert ("2 articles: 1 in full, 1 in brief; 1 more new article held over for the "
            "next edition") in said, said
    r = run("edition", "build", "--list", "morning")
    said = " ".join(r.output.split())
    assert r.exit_code == 0, r.output
    assert "1 article: 1 in full, 0 in brief" in said, said


def test_mail_settings_of_issue_11_are_list_settings(run) -> None:  # type: ignore[no-untyped-def]
    """The postal address, layout, table of contents, accent colour and logo: set at
    create, shown, changed, and bad values refused with what to give instead."""
    run("init")
    r = run("lists", "create", "daily", "--from", "D <d@news.example.org>",
            "--postal-address", "1 Harbour Road\nPortsmouth PO1 2AB, UK", "--layout", "compact",
            "--toc", "--accent-color", "#C00", "--logo-url", "https://news.example.org/logo.png")
    assert r.exit_code == 0, r.output
    assert "Warning" not in r.output
    shown = run("lists", "show", "daily").output.splitlines()
    for line in ("  postal address 1 Harbour Road, Portsmouth PO1 2AB, UK",
                 "  layout        compact", "  toc           on", "  accent color  #cc0000",
                 "  logo url      https://news.example.org/logo.png"):
        assert line in shown, shown
    r = run("lists", "set", "daily", "--layout", "hero", "--no-toc", "--accent-color", "")
    assert r.output.splitlines() == ["daily layout: compact → hero", "daily toc: on → off",
                                     "daily accent color: #cc0000 → ''"], r.output
    for args, expected in (
        (["--accent-color", "red"], "Error: accent colour 'red' is not a colour like #1a73e8"),
        # Links and labels in the accent would not be read on the mail's white paper.
        (["--accent-color", "#fff"], "Error: accent colour '#ffffff' is too light on the "
                                     "mail's white paper (contrast 1.0:1"),
        (["--accent-color", "#ffcc00"], "contrast 1.5:1; its links and labels need at least "
                                        "3:1 to be read"),
        (["--logo-url", "logo.png"], "Error: logo URL 'logo.png' is not an absolute https://"),
        (["--postal-address", "x" * 301], "Error: postal address is 301 characters long"),
    ):
        r = run("lists", "set", "daily", *args)
        assert r.exit_code == 1 and expected in r.output, r.output


def test_a_postal_address_is_a_few_lines_of_plain_text(run) -> None:  # type: ignore[no-untyped-def]
    """An address is at most six lines and holds no invisible character that hides or
    reorders what the footer shows (a right-to-left override turns "Road 12" into "21
    daoR"); each refusal says what to give instead and changes nothing."""
    run("init")
    address = "Morning News Ltd\n1 Harbour Road\nPortsmouth PO1 2AB, UK"
    assert run("lists", "create", "daily", "--from", "D <d@news.example.org>",
               "--postal-address", address).exit_code == 0
    for value, expected in (
        ("\n".join("x" * 50), "Error: postal address has 50 lines; at most 6 fit"),
        ("1 Harbour \u202eRoad 12", "Error: postal address line 1 holds U+202E "
                                    "(RIGHT-TO-LEFT OVERRIDE), an invisible character"),
        ("Ltd\n1 Har\u200bbour Road", "line 2 holds U+200B (ZERO WIDTH SPACE)"),
        ("1 Harbour Road\u2066, Portsmouth", "U+2066 (LEFT-TO-RIGHT ISOLATE)"),
        ("1 Harbour Road\x07", "U+0007 (a control character)"),
    ):
        r = run("lists", "set", "daily", "--postal-address", value)
        assert r.exit_code == 1 and expected in r.output, r.output
        assert "type the address as plain text" in r.output or "lines" in r.output
        r = run("lists", "create", "other", "--from", "O <o@news.example.org>",
                "--postal-address", value)
        assert r.exit_code == 1 and expected in r.output, r.output
    shown = run("lists", "show", "daily").output
    assert "Morning News Ltd, 1 Harbour Road, Portsmouth PO1 2AB, UK" in shown
    assert "other" not in run("lists", "ls").output
    # Six lines, and a Persian address with its zero-width non-joiner, are fine.
    six = "\n".join(["Morning News Ltd", "Unit 4", "1 Harbour Road", "Old Town",
                     "Portsmouth PO1 2AB", "UK"])
    assert run("lists", "set", "daily", "--postal-address", six).exit_code == 0
    persian = "خیابان می\u200cرداماد، تهران"
    r = run("lists", "set", "daily", "--postal-address", persian)
    assert r.exit_code == 0, r.output


def test_a_list_without_a_postal_address_is_created_with_a_warning(run) -> None:  # type: ignore[no-untyped-def]
    run("init")
    r = run("lists", "create", "daily", "--from", "D <d@news.example.org>")
    assert r.exit_code == 0, r.output
    assert "Created list daily" in r.output
    assert "Warning: list daily has no postal address" in r.output
    assert "digest lists set daily --postal-address" in r.output


@pytest.mark.parametrize("blank", ["", "\n\n\n", "   "])
def test_clearing_a_postal_address_warns_as_creating_without_one(  # type: ignore[no-untyped-def]
        run, blank: str) -> None:
    """Blank lines are no address: the footer loses it, so say so as `create` does."""
    run("init")
    assert run("lists", "create", "daily", "--from", "D <d@news.example.org>",
               "--postal-address", "1 Harbour Road, Portsmouth").exit_code == 0
    r = run("lists", "set", "daily", "--postal-address", blank)
    assert r.exit_code == 0, r.output
    assert "postal address: 1 Harbour Road, Portsmouth → " in r.output
    assert "Warning: list daily has no postal address" in r.output
    assert "digest lists set daily --postal-address" in r.output
    # Changing something else on a list without an address does not nag each time.
    assert "Warning" not in run("lists", "set", "daily", "--title", "Daily").output
    # Asking again for no address is no change, and still no address: say so.
    again = run("lists", "set", "daily", "--postal-address", blank)
    assert "No change" in again.output and "Warning: list daily has no postal" in again.output


def test_fetch_says_which_new_articles_are_undated_backlog(  # type: ignore[no-untyped-def]
        run, tmp_path: Path) -> None:
    """A new source's undated items are old news of unknown age, never offered: `digest
    fetch` says so, so "3 new articles" then "No new articles" is no surprise."""
    items = "".join(f"<item><title>Harbour notice {n}</title><link>https://harbour.example"
                    f".org/notice/{n}</link><description>Notice {n}.</description></item>"
                    for n in range(3))
    feed = tmp_path / "notices.xml"
    feed.write_text(f"<?xml version='1.0'?><rss version='2.0'><channel><title>Notices"
                    f"</title><link>https://harbour.example.org/</link>{items}</channel></rss>")
    assert run("init").exit_code == 0
    assert run("lists", "create", "morning", "--title", "Morning", "--from",
               "m@news.example.org").exit_code == 0
    assert run("sources", "add", str(feed), "--list", "morning").exit_code == 0
    r = run("fetch")
    said = " ".join(r.output.split())
    assert r.exit_code == 0, r.output
    assert "3 new articles from 1 source (3 undated on a first fetch: not offered)" in said, said
    r = run("edition", "build", "--list", "morning")
    assert "No new articles for morning" in r.output, r.output
