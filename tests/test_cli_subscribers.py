"""The admin's commands for lists, people and suppression, end to end on SQLite (and
PostgreSQL when DIGEST_TEST_POSTGRES_URL is set)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from digest.cli import main

Run = Callable[..., Result]


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str) -> Run:
    """Runs `digest …` on a fresh, initialized database with a list "news" on it."""
    monkeypatch.chdir(tmp_path)
    for name in ("DIGEST_CONFIG", "DIGEST_DELIVERY_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DIGEST_DATABASE_URL", database_url)
    monkeypatch.setenv("DIGEST_DELIVERY_BACKEND", "outbox")  # chosen: see test_startup.py
    monkeypatch.setenv("DIGEST_PUBLIC_URL", "https://news.example.org")
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(main, list(args), input=input, catch_exceptions=False)

    assert invoke("init").exit_code == 0
    r = invoke("lists", "create", "news", "--title", "News", "--from", "News <n@example.org>")
    assert r.exit_code == 0, r.output
    return invoke


def ok(r: Result) -> str:
    assert r.exit_code == 0, r.output
    return r.output


def test_list_settings_rename_archive(run: Run) -> None:
    out = ok(run("lists", "create", "daily", "--from", "d@example.org", "--reply-to",
                 "desk@example.org", "--description", "Every day.", "--single-optin"))
    assert "Created list daily (daily)" in out
    out = ok(run("lists", "set", "daily", "--title", "The Daily", "--timezone", "Asia/Seoul",
                 "--schedule", "30 6 * * mon-fri", "--mode", "review", "--language", "ko",
                 "--double-optin", "--from", "Daily <d@example.org>", "--reply-to", ""))
    assert out.splitlines() == [
        "daily title: daily → The Daily",
        "daily from: d@example.org → Daily <d@example.org>",
        "daily reply-to: desk@example.org → ''",
        "daily schedule: 0 7 * * * → 30 6 * * mon-fri",
        "daily timezone: UTC → Asia/Seoul",
        "daily mode: auto → review",
        "daily language: en → ko",
        "daily double opt-in: off → on",
    ]
    assert "No change: daily already has those settings." in ok(
        run("lists", "set", "daily", "--mode", "review"))
    assert ok(run("lists", "set", "daily", "--private")).splitlines() == [
        "daily public: on → off"]
    ok(run("subscribers", "add", "a@example.org", "--list", "daily", "--confirmed"))
    ok(run("subscribers", "add", "b@example.org", "--list", "daily"))
    out = ok(run("lists", "show", "daily"))
    for line in ("  title         The Daily", "  description   Every day.",
                 "  reply-to      ''", "  schedule      30 6 * * mon-fri",
                 "  double opt-in on", "  members       pending 1, confirmed 1, unsubscribed 0",
                 "  recipients    1 (confirmed and not suppressed)", "  sources       0",
                 "  editions      0"):
        assert line in out.splitlines(), out

    out = ok(run("lists", "rename", "daily", "morning"))
    assert "Renamed list daily to morning. Its title stays 'The Daily'" in out
    assert "No change" in ok(run("lists", "rename", "morning", "morning"))
    assert "morning" in ok(run("lists", "ls"))

    out = ok(run("lists", "archive", "morning"))
    assert "Archived list morning: it gets no editions" in out
    assert "No change: list morning was archived" in ok(run("lists", "archive", "morning"))
    assert "morning" not in ok(run("lists", "ls"))
    out = ok(run("lists", "ls", "--all"))
    assert "morning" in out and "archived" in out
    assert "(archived " in ok(run("lists", "show", "morning"))
    assert "is active again" in ok(run("lists", "archive", "morning", "--undo"))
    assert "No change: list morning is not archived" in ok(
        run("lists", "archive", "morning", "--undo"))


def test_people_tags_attributes_and_listing(run: Run) -> None:
    for email in ("ann@example.org", "bob@example.org", "cy@example.org"):
        ok(run("subscribers", "add", email, "--list", "news", "--confirmed"))
    ok(run("subscribers", "add", "dee@example.org", "--list", "news"))
    assert ok(run("subscribers", "tag", "Ann@example.org", "VIP", "press")) == (
        "Tags of Ann@example.org: press, vip\n")
    ok(run("subscribers", "tag", "bob@example.org", "vip"))
    assert "Tags of bob@example.org: (none)" in ok(
        run("subscribers", "tag", "bob@example.org", "vip", "--remove"))
    ok(run("subscribers", "tag", "cy@example.org", "vip"))
    ok(run("subscribers", "rm", "cy@example.org", "--list", "news"))
    out = ok(run("subscribers", "set", "ann@example.org", "city=Berlin", "age=42",
                 "name=Ann Lee"))
    assert out.splitlines() == [
        "ann@example.org city: null → Berlin", "ann@example.org age: null → 42",
        "ann@example.org name: '' → Ann Lee"]

    out = ok(run("subscribers", "ls", "--list", "news"))
    assert "ann@example.org" in out and "dee@example.org" in out
    assert "news: pending 1, confirmed 2, unsubscribed 1" in out
    out = ok(run("subscribers", "ls", "--list", "news", "--tag", "vip"))
    assert "ann@example.org" in out and "cy@example.org" in out and "bob@" not in out
    assert "news with tag vip: pending 0, confirmed 1, unsubscribed 1" in out
    out = ok(run("subscribers", "ls", "--list", "news", "--status", "confirmed", "--limit", "1"))
    assert "ann@example.org" in out and "bob@" not in out
    assert "Showing 1 of 2; --limit 0 shows all." in out

    data = json.loads(ok(run("subscribers", "show", "ANN@example.org", "--json")))
    assert data["subscriber"]["attributes"] == {"city": "Berlin", "age": 42}
    assert data["subscriber"]["tags"] == ["press", "vip"]
    assert data["subscriber"]["name"] == "Ann Lee"
    assert [(m["list"], m["status"], m["origin"]) for m in data["memberships"]] == [
        ("news", "confirmed", "cli")]
    assert (data["suppression"], data["deliveries"]) == (None, {"total": 0, "by_status": {}})
    lines = ok(run("subscribers", "show", "ann@example.org")).splitlines()
    assert lines[0] == "ann@example.org"
    for line in ('  name        Ann Lee', '  tags        ["press", "vip"]',
                 '  attributes  {"city": "Berlin", "age": 42}', "  suppressed  no",
                 "  deliveries  0", "  list news (News): confirmed", "    origin             cli",
                 "    unsubscribed_at    null"):
        assert line in lines, lines


def test_forget(run: Run, tmp_path: Path) -> None:
    ok(run("subscribers", "add", "ann@example.org", "--list", "news", "--name", "Ann",
           "--confirmed"))
    r = run("subscribers", "forget", "ann@example.org", input="n\n")
    assert r.exit_code == 1 and "Erase everything stored about ann@example.org (memberships: " \
        "1, deliveries: 0)? This cannot be undone [y/N]: n\nAborted!" in r.output
    assert "Ann" in ok(run("subscribers", "show", "ann@example.org"))
    out = ok(run("subscribers", "forget", "ann@example.org", input="y\n"))
    assert "Forgot ann@example.org: the subscriber is now forgotten-1@invalid" in out
    assert "The address stays suppressed (forgotten) as a hash" in out
    lines = ok(run("subscribers", "show", "ann@example.org")).splitlines()
    assert lines[1] == "  no subscriber stored (only the suppression below)"
    assert lines[2].startswith("  suppressed  yes, forgotten since ")
    assert "Nothing but a suppression was stored" in ok(
        run("subscribers", "forget", "ann@example.org", "--yes"))
    # Neither an add nor an import brings the address back.
    out = ok(run("subscribers", "add", "Ann@example.org", "--list", "news", "--confirmed"))
    assert "Ann@example.org is suppressed" in out and "not subscribed" in out
    Path("people.csv").write_text("email\nANN@example.org\n", encoding="utf-8")
    out = ok(run("subscribers", "import", "people.csv", "--list", "news", "--confirmed"))
    assert out.splitlines()[-2].split() == ["│", "0", "│", "0", "│", "0", "│", "0", "│", "1",
                                            "│"], out
    assert "forgotten-1@invalid" in ok(run("subscribers", "ls", "--list", "news"))


def test_unsubscribe_from_all_mail(run: Run) -> None:
    ok(run("lists", "create", "daily", "--from", "d@example.org"))
    ok(run("subscribers", "add", "ann@example.org", "--list", "news", "--confirmed"))
    ok(run("subscribers", "add", "ann@example.org", "--list", "daily"))
    out = ok(run("subscribers", "rm", "Ann@example.org", "--all-lists"))
    assert "Unsubscribed Ann@example.org from daily, news. The address is suppressed " \
        "(unsubscribe_all since " in out
    data = json.loads(ok(run("subscribers", "show", "ann@example.org", "--json")))
    assert {(m["status"], m["unsubscribe_reason"]) for m in data["memberships"]} == {
        ("unsubscribed", "unsubscribe_all")}
    assert data["suppression"]["reason"] == "unsubscribe_all"
    assert "suppressed" in ok(run("subscribers", "add", "ann@example.org", "--list", "news"))
    out = ok(run("subscribers", "rm", "new@example.org", "--all-lists"))
    assert "from no list" in out and "suppressed" in out


def test_suppress_commands(run: Run) -> None:
    ok(run("subscribers", "add", "kept@example.org", "--list", "news", "--confirmed"))
    out = ok(run("suppress", "add", "Kept@example.org", "--reason", "complaint",
                 "--detail", "FBL report"))
    assert "Suppressed kept@example.org (complaint)" in out
    assert "No change: kept@example.org is suppressed already (complaint since" in ok(
        run("suppress", "add", "kept@example.org"))
    ok(run("suppress", "add", "stranger@example.org"))
    assert "Blocked spam.example" in ok(run("suppress", "domain", "SPAM.example"))
    assert "is blocked already" in ok(run("suppress", "domain", "spam.example"))
    out = ok(run("suppress", "ls"))
    assert "kept@example.org" in out and "spam.example" in out and "(hash " in out
    assert "Suppressed: admin 1, complaint 1, domain 1" in out
    out = ok(run("suppress", "ls", "--reason", "complaint"))
    assert "kept@example.org" in out and "spam.example" not in out
    assert "Showing 1 of 3" in ok(run("suppress", "ls", "--limit", "1"))
    assert "  recipients    0 (" in ok(run("lists", "show", "news"))

    out = ok(run("suppress", "rm", "kept@example.org"))
    assert "Lifted the suppression of kept@example.org (complaint since" in out
    assert "  recipients    1 (" in ok(run("lists", "show", "news"))
    assert "Unblocked spam.example" in ok(run("suppress", "domain", "spam.example", "--undo"))
    ok(run("suppress", "domain", "example.net"))
    ok(run("suppress", "add", "x@example.net"))
    assert "Its domain example.net is still blocked" in ok(run("suppress", "rm", "x@example.net"))


@pytest.mark.parametrize(("args", "expected"), [
    (["lists", "show", "nope"], "list 'nope' not found; lists are: news"),
    (["lists", "set", "news", "--timezone", "Mars/Base"], "time zone 'Mars/Base' is unknown"),
    (["lists", "set", "news", "--schedule", "daily"], "not a cron expression"),
    (["lists", "set", "news", "--from", "not an address"], "is not a valid email address"),
    (["lists", "rename", "news", "Bad Name"], "list name 'Bad Name' is not usable"),
    (["lists", "rename", "nope", "new"], "list 'nope' not found"),
    (["lists", "archive", "nope"], "list 'nope' not found"),
    (["subscribers", "show", "nobody@example.org"], "nothing is stored about"),
    (["subscribers", "show", "not-an-address"], "not a valid email address"),
    (["subscribers", "forget", "nobody@example.org", "--yes"], "nothing is stored about"),
    (["subscribers", "tag", "nobody@example.org", "vip"], "no subscriber has the address"),
    (["subscribers", "tag", "a@example.org", "two words"], "tag 'two words' is not usable"),
    (["subscribers", "set", "a@example.org", "city"], "'city' is not key=value"),
    (["subscribers", "set", "a@example.org", "email=b@example.org"], "cannot be changed"),
    (["subscribers", "set", "nobody@example.org", "a=1"], "no subscriber has the address"),
    (["subscribers", "ls", "--list", "nope"], "list 'nope' not found"),
    (["subscribers", "ls", "--list", "news", "--tag", "a,b"], "tag 'a,b' is not usable"),
    (["subscribers", "rm", "nobody@example.org", "--list", "news"], "is not on list 'news'"),
    (["subscribers", "rm", "bad@", "--all-lists"], "not a valid email address"),
    (["suppress", "add", "bad@"], "not a valid email address"),
    (["suppress", "rm", "nobody@example.org"], "nobody@example.org is not suppressed"),
    (["suppress", "domain", "not a domain"], "not a valid domain"),
    (["suppress", "domain", "example.com", "--undo"], "'example.com' is not blocked"),
])
def test_wrong_input_says_what_to_do(run: Run, args: list[str], expected: str) -> None:
    ok(run("subscribers", "add", "a@example.org", "--list", "news"))
    r = run(*args)
    assert r.exit_code == 1, r.output
    assert r.output.startswith("Error: ") and expected in r.output, r.output


@pytest.mark.parametrize(("args", "expected"), [
    (["lists", "set", "news"], "nothing to change; give at least one of --title"),
    (["lists", "set", "news", "--mode", "manual"], "'manual' is not one of 'auto', 'review'"),
    (["subscribers", "ls", "--list", "news", "--status", "active"],
     "Invalid value for '--status': 'active' is not one of"),
    (["subscribers", "export", "--list", "news", "--status", "active"],
     "Invalid value for '--status': 'active' is not one of"),
    (["subscribers", "ls", "--list", "news", "--limit", "-1"], "-1 is not in the range x>=0"),
    (["subscribers", "rm", "a@example.org"], "give either --list NAME or --all-lists"),
    (["subscribers", "rm", "a@example.org", "--list", "news", "--all-lists"], "either"),
    (["subscribers", "tag", "a@example.org"], "Missing argument 'TAGS...'"),
    (["suppress", "add", "a@example.org", "--reason", "forgotten"], "is not one of 'admin'"),
])
def test_bad_usage_exits_2(run: Run, args: list[str], expected: str) -> None:
    r = run(*args)
    assert r.exit_code == 2 and expected in r.output, r.output
