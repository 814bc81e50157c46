"""`digest users …`: accounts for the web app and tokens for the API."""

from __future__ import annotations

import os

from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from digest.db import utcnow
from digest.models import ApiToken
from digest.users import token_user
from tests.test_cli_subscribers import Run, ok, run  # noqa: F401  (the fixture)


def test_add_list_change_and_remove_a_user(run: Run) -> None:  # noqa: F811
    out = ok(run("users", "add", "Ed@Example.org", "--role", "editor", "--name", "Ed",
                 "--password-stdin", input="a long enough password\n"))
    assert "Added ed@example.org as editor" in out
    assert "https://news.example.org/login" in out
    listing = ok(run("users", "ls"))
    assert "ed@example.org" in listing and "editor" in listing
    assert "admin" in ok(run("users", "set", "ed@example.org", "--role", "admin"))
    assert "disabled" in ok(run("users", "set", "ed@example.org", "--disable"))
    ok(run("users", "passwd", "ed@example.org", "--password-stdin",
           input="another long password\n"))
    ok(run("users", "rm", "ed@example.org"))
    assert "ed@example.org" not in ok(run("users", "ls"))


def test_refusals_say_what_to_do(run: Run) -> None:  # noqa: F811
    r = run("users", "add", "ed@example.org", "--password-stdin", input="short\n")
    assert r.exit_code == 1 and "at least 10 characters" in r.output
    ok(run("users", "add", "ed@example.org", "--password-stdin", input="long enough pw\n"))
    again = run("users", "add", "ED@example.org", "--password-stdin", input="long enough pw\n")
    assert again.exit_code == 1 and "already exists" in again.output
    missing = run("users", "passwd", "who@example.org", "--password-stdin", input="x" * 12)
    assert missing.exit_code == 1 and "digest users ls" in missing.output
    assert run("users", "set", "ed@example.org").exit_code == 2
    no_tty = run("users", "add", "x@example.org", input="")
    assert no_tty.exit_code == 1 and "--password-stdin" in no_tty.output


def test_a_token_is_printed_once_and_revocable(run: Run) -> None:  # noqa: F811
    ok(run("users", "add", "bot@example.org", "--password-stdin", input="long enough pw\n"))
    out = ok(run("users", "token", "add", "bot@example.org", "--name", "zapier"))
    raw = out.strip().splitlines()[-1]
    assert raw.startswith("dg_")
    listing = ok(run("users", "token", "ls"))
    assert "zapier" in listing and raw[:8] in listing and raw not in listing
    engine = create_engine(os.environ["DIGEST_DATABASE_URL"])
    try:
        with Session(engine) as s:
            user = token_user(s, raw, now=utcnow())
            assert user is not None and user.email == "bot@example.org"
            token_id = s.scalar(select(ApiToken.id))
        ok(run("users", "token", "revoke", str(token_id)))
        with Session(engine) as s:
            assert token_user(s, raw, now=utcnow()) is None
        assert "revoked" in ok(run("users", "token", "ls", "bot@example.org"))
    finally:
        engine.dispose()
