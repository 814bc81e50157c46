"""What an admin met following docs/operations.md on a clean Debian machine (issue 17,
the second walk): a rejects file or a settings file this user cannot touch, links to
localhost from a PostgreSQL deployment, passwords and tracebacks from database URLs, a
stopped SMTP server. Each is an `Error:` that says what to do, from the real command
line; the permission cases run digest as another user (`tests.test_startup`)."""

from __future__ import annotations

import csv
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from digest import db
from tests.conftest import DATA
from tests.deliver.conftest import SmtpSink
from tests.test_serve import environment, free_port
from tests.test_startup import as_someone_else, cli, needs_postgres

NOT_ROOT = os.geteuid() != 0


def shared_database(folder: Path) -> dict[str, str]:
    """Settings whose SQLite database another user may write, the schema made."""
    env = environment(folder, DIGEST_DATABASE_URL=f"sqlite:///{folder}/db/digest.db")
    assert cli(folder, env, "init").exit_code == 0
    os.chmod(folder / "db", 0o777)
    for path in (folder / "db").iterdir():
        path.chmod(0o666)
    return env


# -- a rejects file it cannot write ---------------------------------------------------


def test_an_import_whose_rejects_file_cannot_be_written_stops_before_importing(
        shared_tmp: Path) -> None:
    env = shared_database(shared_tmp)
    assert cli(shared_tmp, env, "lists", "create", "news", "--from",
               "news@news.example.org").exit_code == 0
    inbox = shared_tmp / "in"  # root's 0755 folder: the CSV readable, nothing writable
    inbox.mkdir()
    people = inbox / "people.csv"
    people.write_text("email,name\nada@example.org,Ada\nnot an address,Bob\n")
    people.chmod(0o644)
    inbox.chmod(0o555 if NOT_ROOT else 0o755)
    r = as_someone_else(shared_tmp, env, "subscribers", "import", str(people),
                        "--list", "news", "--confirmed")
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stderr.startswith(
        f"Error: cannot write the rejects file {inbox}/people.rejects.csv (Permission "
        "denied); pass --rejects PATH in a folder digest can write; nothing was imported"), \
        r.stderr
    assert "Traceback" not in r.stderr
    assert "ada@example.org" not in cli(shared_tmp, env, "subscribers", "ls",
                                        "--list", "news").output
    # Where it may write, the same import goes through, its rejects the user's alone.
    out = shared_tmp / "out"
    out.mkdir(mode=0o777)
    out.chmod(0o777)
    r = as_someone_else(shared_tmp, env, "subscribers", "import", str(people), "--list",
                        "news", "--confirmed", "--rejects", str(out / "people.rejects.csv"))
    assert r.returncode == 0, r.stdout + r.stderr
    with (out / "people.rejects.csv").open() as f:
        rows = list(csv.reader(f))
    assert len(rows) == 2 and rows[1][0] == "3"
    assert stat.S_IMODE((out / "people.rejects.csv").stat().st_mode) == 0o600
    assert "ada@example.org" in cli(shared_tmp, env, "subscribers", "ls",
                                    "--list", "news").output


@pytest.mark.skipif(NOT_ROOT, reason="needs a file of another user's: run as root")
def test_a_rejects_file_of_another_users_is_an_error_not_a_traceback(
        shared_tmp: Path) -> None:
    env = shared_database(shared_tmp)
    assert cli(shared_tmp, env, "lists", "create", "news", "--from",
               "news@news.example.org").exit_code == 0
    inbox = shared_tmp / "in"  # root's 0755 folder, root's 0666 rejects file in it
    inbox.mkdir()
    inbox.chmod(0o755)
    people = inbox / "X.csv"
    people.write_text("email,name\nada@example.org,Ada\nnot an address,Bob\n")
    people.chmod(0o644)
    rejects = inbox / "X.rejects.csv"
    rejects.write_text("an older file\n")
    rejects.chmod(0o666)
    r = as_someone_else(shared_tmp, env, "subscribers", "import", str(people),
                        "--list", "news", "--confirmed")
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stderr.startswith(
        f"Error: cannot make the rejects file {rejects} private (mode 0600: Operation not "
        "permitted; it belongs to another user), and the refused rows hold addresses; "
        "delete it, or pass --rejects PATH"), r.stderr
    assert "Traceback" not in r.stderr
    assert rejects.read_text() == "an older file\n"
    assert "ada@example.org" not in cli(shared_tmp, env, "subscribers", "ls",
                                        "--list", "news").output


@pytest.mark.parametrize("how", ["same path", "symlink", "hard link"])
def test_rejects_cannot_be_the_file_being_imported(tmp_path: Path, how: str) -> None:
    env = environment(tmp_path)
    assert cli(tmp_path, env, "init").exit_code == 0
    assert cli(tmp_path, env, "lists", "create", "news", "--from",
               "news@news.example.org").exit_code == 0
    people = tmp_path / "people.csv"
    text = "email,name\nada@example.org,Ada\nnot an address,Bob\n"
    people.write_text(text)
    rejects = {"same path": people, "symlink": tmp_path / "link.csv",
               "hard link": tmp_path / "hard.csv"}[how]
    if how == "symlink":
        rejects.symlink_to(people)
    elif how == "hard link":
        rejects.hardlink_to(people)
    r = cli(tmp_path, env, "subscribers", "import", str(people), "--list", "news",
            "--rejects", str(rejects))
    message = " ".join(r.output.split())
    assert r.exit_code == 1, r.output
    assert message.startswith(f"Error: the rejects file {rejects} is the file being "
                              "imported, which would be written over"), message
    assert people.read_text() == text
    assert "ada@example.org" not in cli(tmp_path, env, "subscribers", "ls",
                                        "--list", "news").output


def test_a_list_name_in_capitals_is_answered_with_a_name_lists_create_takes(
        tmp_path: Path) -> None:
    env = environment(tmp_path)
    assert cli(tmp_path, env, "init").exit_code == 0
    (tmp_path / "people.csv").write_text("email\nada@example.org\n")
    r = cli(tmp_path, env, "subscribers", "import", "people.csv", "--list", "L")
    message = " ".join(r.output.split())
    assert r.exit_code == 1
    assert ("create it with `digest lists create l --from \"Name <addr>\"` (list names "
            "are lowercase)") in message, message
    assert cli(tmp_path, env, "lists", "create", "l", "--from",
               "news@news.example.org").exit_code == 0
    r = cli(tmp_path, env, "subscribers", "import", "people.csv", "--list", "L")
    assert "list names are lowercase: did you mean 'l'?" in r.output, r.output
    r = cli(tmp_path, env, "subscribers", "import", "people.csv", "--list", "Weekly News")
    message = " ".join(r.output.split())
    assert "`digest lists create NAME --from" in message
    assert "NAME being 1-64 lowercase letters" in message, message


def test_a_clean_import_leaves_no_rejects_file(tmp_path: Path) -> None:
    env = environment(tmp_path)
    assert cli(tmp_path, env, "init").exit_code == 0
    assert cli(tmp_path, env, "lists", "create", "news", "--from",
               "news@news.example.org").exit_code == 0
    (tmp_path / "people.csv").write_text("email\nada@example.org\n")
    r = cli(tmp_path, env, "subscribers", "import", "people.csv", "--list", "news",
            "--confirmed")
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "people.rejects.csv").exists()


# -- a settings file it cannot read -----------------------------------------------------


def test_a_settings_file_it_cannot_read_is_an_error(shared_tmp: Path) -> None:
    etc = shared_tmp / "etc"
    etc.mkdir(mode=0o755)
    etc.chmod(0o755)
    config = etc / "digest.toml"
    config.write_text('public_url = "https://news.example.org"\n')
    config.chmod(0o640 if not NOT_ROOT else 0o200)  # root's 0640: not nobody's to read
    env = {**environment(shared_tmp), "DIGEST_CONFIG": str(config)}
    r = as_someone_else(shared_tmp, env, "status")
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stderr.startswith(f"Error: cannot read {config} (Permission denied; owner "), \
        r.stderr
    assert "chmod 0640" in r.stderr and "Traceback" not in r.stderr


# -- public_url on PostgreSQL ------------------------------------------------------------


def _news_with_pat(tmp_path: Path, env: dict[str, str]) -> None:
    """A double opt-in list with pat pending, queued while public_url was set."""
    assert cli(tmp_path, env, "init").exit_code == 0
    assert cli(tmp_path, env, "lists", "create", "news", "--from",
               "news@news.example.org").exit_code == 0
    r = cli(tmp_path, env, "subscribers", "add", "pat@example.org", "--list", "news")
    assert r.exit_code == 0 and "pending" in r.output, r.output


@needs_postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("command", [
    ["worker", "--once"], ["edition", "send", "--list", "news"], ["serve", "--port", "0"],
    ["subscribers", "add", "ada@example.org", "--list", "news"],
    ["subscribers", "confirm-again", "pat@example.org", "--list", "news"],
    ["subscribers", "import", "people.csv", "--list", "news"],
], ids=["worker", "edition send", "serve", "add", "confirm-again", "import"])
def test_mail_on_postgresql_refuses_the_default_public_url(
        tmp_path: Path, pg_url: str, command: list[str]) -> None:
    env = environment(tmp_path, DIGEST_DATABASE_URL=pg_url)
    _news_with_pat(tmp_path, env)
    (tmp_path / "outbox").mkdir(exist_ok=True)
    before = sorted(p.name for p in (tmp_path / "outbox").rglob("*"))
    (tmp_path / "people.csv").write_text("email\nbob@example.org\n")
    del env["DIGEST_PUBLIC_URL"]
    # Its own process: without the check, serve would run until the timeout.
    r = subprocess.run([sys.executable, "-m", "digest", *command], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stderr.startswith("Error: public_url is not set (no settings file was found"), \
        r.stderr
    assert "http://localhost:8000" in r.stderr and "DIGEST_PUBLIC_URL" in r.stderr
    assert "Traceback" not in r.stderr
    assert sorted(p.name for p in (tmp_path / "outbox").rglob("*")) == before
    listed = cli(tmp_path, {**env, "DIGEST_PUBLIC_URL": "https://x.example"},
                 "subscribers", "ls", "--list", "news").output
    assert "ada@example.org" not in listed and "bob@example.org" not in listed


@needs_postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_public_url_from_the_file_is_fine_on_postgresql(tmp_path: Path,
                                                          pg_url: str) -> None:
    env = environment(tmp_path, DIGEST_DATABASE_URL=pg_url)
    _news_with_pat(tmp_path, env)
    del env["DIGEST_PUBLIC_URL"]
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "digest.toml").write_text(
        'public_url = "https://news.example.org"\n')
    r = cli(tmp_path, env, "subscribers", "add", "ada@example.org", "--list", "news",
            "--confirmed")
    assert r.exit_code == 0, r.output  # no mail: nothing to refuse either way
    assert cli(tmp_path, env, "worker", "--once").exit_code == 0


def test_sqlite_keeps_the_default_public_url(tmp_path: Path) -> None:
    env = environment(tmp_path)
    del env["DIGEST_PUBLIC_URL"]
    _news_with_pat(tmp_path, env)
    assert cli(tmp_path, env, "worker", "--once").exit_code == 0


@pytest.mark.parametrize("public_url", [
    "", "news.example.org", "//news.example.org", "ftp://news.example.org", "https://",
    "https://news.example.org:notaport",
], ids=["empty", "no scheme", "no scheme but //", "ftp", "no host", "port"])
@pytest.mark.parametrize("command", [["status"], ["worker", "--once"],
                                     ["subscribers", "add", "pat@example.org", "--list",
                                      "news"]])
def test_a_public_url_links_cannot_start_with_is_an_error_on_any_database(
        tmp_path: Path, public_url: str, command: list[str]) -> None:
    env = environment(tmp_path)
    _news_with_pat(tmp_path, env)
    (tmp_path / "outbox").mkdir(exist_ok=True)
    before = sorted(p.name for p in (tmp_path / "outbox").rglob("*"))
    r = cli(tmp_path, {**env, "DIGEST_PUBLIC_URL": public_url}, *command)
    message = " ".join(r.output.split())
    assert r.exit_code == 1, r.output
    assert message.startswith(f"Error: public_url = {public_url!r} (from DIGEST_PUBLIC_URL) "
                              "is not an absolute http or https URL with a host"), message
    assert 'e.g. public_url = "https://news.example.org"' in message
    assert sorted(p.name for p in (tmp_path / "outbox").rglob("*")) == before


def test_a_public_url_from_the_file_is_checked_too(tmp_path: Path) -> None:
    env = environment(tmp_path)
    del env["DIGEST_PUBLIC_URL"]
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "digest.toml").write_text('public_url = "news.example.org"\n')
    r = cli(tmp_path, env, "status")
    assert r.exit_code == 1
    assert r.output.startswith("Error: public_url = 'news.example.org' (from config/digest"
                               ".toml) is not an absolute http or https URL"), r.output


# -- database URLs ----------------------------------------------------------------------


@pytest.mark.parametrize(("url", "says"), [
    ("postgresql+psycopg://digest:Zq7pw@Secret@127.0.0.1:55999/digest",
     "has two @ before its host: a password holding @ must have it percent-encoded as %40"),
    ("Zq7pw%40Secret", "is not a SQLAlchemy URL; it is not shown"),
    ("postgres://digest:Zq7pw@127.0.0.1/digest", "starts postgres://, which digest does not"),
    ("postgresql+psycopg2://digest:Zq7pw@127.0.0.1/digest", "starts postgresql+psycopg2://"),
    ("mysql://digest:Zq7pw@127.0.0.1/digest", "starts mysql://, which digest does not"),
    ("sqlite://dg2:Zq7pw@/tmp/x.db", "is SQLite with a user, password or host"),
    ("postgresql+psycopg://dg2:Zq7pw@127.0.0.1:notaport/dg", "is not a SQLAlchemy URL"),
    ("postgresql+psycopg://dg2:Zq7pw@[::1/dg", "is not a SQLAlchemy URL"),
], ids=["split password", "no URL", "postgres", "psycopg2", "mysql", "sqlite user", "port",
        "bracket"])
@pytest.mark.parametrize("command", [["status"], ["init"], ["worker", "--once"],
                                     ["backup", "copy.db"]])
def test_a_database_url_digest_cannot_use_says_which_forms_it_can(
        tmp_path: Path, url: str, says: str, command: list[str]) -> None:
    r = cli(tmp_path, environment(tmp_path, DIGEST_DATABASE_URL=url), *command)
    message = " ".join(r.output.split())
    assert r.exit_code == 1 and message.startswith("Error: the database URL"), r.output
    assert says in message
    assert ("sqlite:///path/to/digest.db" in message
            and "postgresql+psycopg://user:password@host:port/database" in message
            and "pip install '.[postgres]'" in message), message
    assert "Zq7pw" not in r.output and "Secret" not in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no tmp/x.db, no copy


def test_driver_messages_are_shown_without_the_password() -> None:
    url = "postgresql+psycopg://digest:Zq7pw%40Secret@db.invalid:5432/digest"
    db.make_engine(url).dispose()  # never connects: a pool made, the URL's secrets noted
    shown = db.scrubbed("password authentication failed: Zq7pw@Secret, Zq7pw%40Secret")
    assert "Zq7pw" not in shown and "Secret" not in shown, shown
    assert db.secrets_of("postgresql+psycopg://digest:Zq7pw@Secret@db/digest") >= {
        "Zq7pw", "Secret", "Zq7pw@Secret"}
    assert db.shown_url("Zq7pw%40Secret") == "(a database URL that cannot be read; not shown)"


@needs_postgres
def test_postgresql_without_a_driver_name_is_psycopg(tmp_path: Path) -> None:
    from tests.conftest import POSTGRES_URL

    plain = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    engine = db.make_engine(plain)
    try:
        assert engine.dialect.driver == "psycopg"
    finally:
        engine.dispose()


def test_backup_on_postgresql_names_a_dump_and_restores_without_owners(
        tmp_path: Path) -> None:
    env = environment(tmp_path, DIGEST_DATABASE_URL="postgresql+psycopg://digest@/digest")
    r = cli(tmp_path, env, "backup", str(tmp_path / "digest-2026-12-05.db"))
    message = " ".join(r.output.split())
    assert r.exit_code == 1
    assert f"--file {tmp_path}/digest-2026-12-05.dump" in message, message
    assert (f"`pg_restore --clean --if-exists --no-owner --dbname digest "
            f"{tmp_path}/digest-2026-12-05.dump`") in message, message


# -- a stopped SMTP server ---------------------------------------------------------------


def test_a_stopped_smtp_server_says_nothing_was_lost_and_to_run_again(
        tmp_path: Path) -> None:
    port = free_port()  # nothing listens there: the server is down
    env = environment(tmp_path, DIGEST_DELIVERY_BACKEND="smtp", DIGEST_SMTP_HOST="127.0.0.1",
                      DIGEST_SMTP_PORT=str(port), DIGEST_SMTP_TLS="none",
                      DIGEST_EDITION_WINDOW_HOURS=str(24 * 365 * 30))
    for args in (["init"], ["lists", "create", "news", "--from", "news@news.example.org"],
                 ["sources", "add", str(DATA / "flow" / "news.xml"), "--list", "news"],
                 ["subscribers", "add", "ada@example.org", "--list", "news", "--confirmed"],
                 ["fetch"]):
        assert cli(tmp_path, env, *args).exit_code == 0
    r = cli(tmp_path, env, "edition", "send", "--list", "news")
    message = " ".join(r.output.split())
    assert r.exit_code == 1, r.output
    assert (f"Error: the SMTP server 127.0.0.1:{port} did not answer "
            "(cannot connect: connection refused)") in message, message
    assert "Nothing was lost" in message and "run the command again" in message
    assert "port 465 usually" not in message
    sink = SmtpSink(port=port).start()
    try:
        r = cli(tmp_path, env, "edition", "send", "--list", "news")
        assert r.exit_code == 0 and "is sent" in r.output, r.output
        assert [m.rcpt_tos for m in sink.messages] == [("ada@example.org",)]
    finally:
        sink.stop()


