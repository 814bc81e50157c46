"""`digest backup PATH` (issue 17, backups): an online, consistent copy of the SQLite
database, taken by the real command in its own process while another connection writes;
a clear refusal, with the pg_dump line to run, on PostgreSQL."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from digest.cli import main

#: Rows the writer commits at once: a consistent copy holds whole transactions only.
BATCH = 10
DIGEST = str(Path(sys.executable).parent / "digest")


def run(*args: str, env: dict[str, str]) -> Result:
    """The command in this process (quick), for the cases that need no second process."""
    return CliRunner().invoke(main, list(args), env=env)


def digest(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DIGEST, *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Settings from the environment alone, in an empty folder (no config/digest.toml)."""
    monkeypatch.chdir(tmp_path)
    for name in os.environ:
        if name.startswith("DIGEST_"):
            monkeypatch.delenv(name)
    base = dict(os.environ)
    return {**base, "DIGEST_DATABASE_URL": f"sqlite:///{tmp_path}/digest.db",
            "DIGEST_DATA_DIR": str(tmp_path / "var")}


class Writer(threading.Thread):
    """Commits BATCH rows at a time into `scratch` until stopped; `committed` is how
    many rows are in the database for sure."""

    def __init__(self, db: Path) -> None:
        super().__init__(daemon=True)
        self.db = db
        self.stop = threading.Event()
        self.committed = 0

    def run(self) -> None:
        conn = sqlite3.connect(self.db, timeout=30, isolation_level=None)
        conn.execute("PRAGMA synchronous = OFF")  # quicker; what is committed is the point
        try:
            while not self.stop.is_set():
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany("INSERT INTO scratch (n, pad) VALUES (?, ?)",
                                 [(self.committed + i + 1, "x" * 200) for i in range(BATCH)])
                conn.execute("COMMIT")
                self.committed += BATCH
        finally:
            conn.close()


@pytest.fixture
def writer(tmp_path: Path, env: dict[str, str]) -> Iterator[Writer]:
    assert digest("init", env=env, cwd=tmp_path).returncode == 0
    db = tmp_path / "digest.db"
    with sqlite3.connect(db) as conn:  # a few MB, so the copy takes a while
        conn.execute("CREATE TABLE scratch (n INTEGER PRIMARY KEY, pad TEXT)")
    w = Writer(db)
    w.start()
    while w.committed < 20_000:
        time.sleep(0.01)
    yield w
    w.stop.set()
    w.join(timeout=30)


@pytest.mark.slow
def test_backup_is_consistent_while_another_connection_writes(
        tmp_path: Path, env: dict[str, str], writer: Writer) -> None:
    target = tmp_path / "backups" / "digest-copy.db"
    target.parent.mkdir()
    before = writer.committed
    old_umask = os.umask(0o022)  # the copy is private whatever the umask
    try:
        result = digest("backup", str(target), env=env, cwd=tmp_path)
    finally:
        os.umask(old_umask)
    after = writer.committed
    assert result.returncode == 0, result.stderr
    assert after > before, "the writer was held up for the whole backup"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == ["digest-copy.db"]
    out = " ".join(result.stdout.split())
    assert f"Backed up {tmp_path}/digest.db to {target}" in out
    assert f"{tmp_path}/var/secret.key" in out and "settings" in out

    copy = sqlite3.connect(f"{target.as_uri()}?mode=ro", uri=True)
    try:
        assert copy.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        count, low, high = copy.execute("SELECT count(*), min(n), max(n) FROM scratch").fetchone()
        # Whole transactions, no gaps, at least what was committed before it began.
        assert (low, high) == (1, count) and count % BATCH == 0
        assert before <= count <= after
        assert copy.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)
    finally:
        copy.close()


def test_backup_refuses_an_existing_file(tmp_path: Path, env: dict[str, str]) -> None:
    assert run("init", env=env).exit_code == 0
    target = tmp_path / "old.db"
    target.write_text("an older backup")
    result = run("backup", str(target), env=env)
    assert result.exit_code == 1
    assert f"Error: {target} exists already; name a new file" in result.output
    assert target.read_text() == "an older backup"


def test_backup_creates_no_database(tmp_path: Path, env: dict[str, str]) -> None:
    result = run("backup", str(tmp_path / "copy.db"), env=env)
    assert result.exit_code == 1
    assert "Error: there is no database at" in result.output
    assert "digest init" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_backup_on_postgresql_says_which_pg_dump_to_run(
        tmp_path: Path, env: dict[str, str]) -> None:
    # No server is reached: the command reads the URL and refuses before connecting.
    env["DIGEST_DATABASE_URL"] = "postgresql+psycopg://digest:s3cret@db.internal:5433/news"
    result = run("backup", str(tmp_path / "news.dump"), env=env)
    assert result.exit_code == 1
    message = " ".join(result.output.split())
    assert message.startswith("Error: digest backup copies SQLite databases, and "
                              "[database] url is PostgreSQL")
    assert (f"`pg_dump -Fc --file {tmp_path}/news.dump "
            "postgresql://digest@db.internal:5433/news`") in message
    assert "pg_restore" in message
    assert "s3cret" not in result.output
    assert not (tmp_path / "news.dump").exists()


def test_backup_refuses_a_password_split_by_an_unencoded_at(
        tmp_path: Path, env: dict[str, str]) -> None:
    # The same refusal as every other command: pg_dump's line would print 'dor&3Secret'.
    env["DIGEST_DATABASE_URL"] = ("postgresql+psycopg://dg2:Tr0ub@dor&3Secret@127.0.0.1:5499"
                                  "/dg")
    result = digest("backup", str(tmp_path / "pgb.db"), env=env, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith("Error: the database URL has two @ before its host"), \
        result.stderr
    for piece in ("Tr0ub", "dor&3", "3Secret", "pg_dump"):
        assert piece not in result.stdout + result.stderr
    assert not (tmp_path / "pgb.dump").exists()


def test_the_pg_dump_line_leaves_out_query_parameters_that_carry_a_secret(
        tmp_path: Path, env: dict[str, str]) -> None:
    env["DIGEST_DATABASE_URL"] = (
        "postgresql+psycopg://dg2@127.0.0.1:5499/dg?password=OtherSecretPw"
        "&sslpassword=KeySecretPw&sslmode=require")
    result = run("backup", str(tmp_path / "pgb.db"), env=env)
    message = " ".join(result.output.split())
    assert result.exit_code == 1
    assert (f"`pg_dump -Fc --file {tmp_path}/pgb.dump "
            "'postgresql://dg2@127.0.0.1:5499/dg?sslmode=require'`") in message, message
    assert "SecretPw" not in result.output and "password=" not in result.output


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://dg2:Zq7pw@127.0.0.1:notaport/dg",
    "postgresql+psycopg://dg2:Zq7pw@[::1/dg",
    "sqlite://dg2:Zq7pw@/tmp/x.db",
    "sqlite://user:Zq7pw@/tmp/x.db",
], ids=["port", "bracket", "sqlite user", "sqlite relative"])
def test_backup_of_a_malformed_url_says_which_forms_work(
        tmp_path: Path, env: dict[str, str], url: str) -> None:
    # Its own process, so the refusal is the real command's: no traceback, no
    # "Backed up tmp/x.db" from an empty relative file.
    (tmp_path / "tmp").mkdir()
    sqlite3.connect(tmp_path / "tmp" / "x.db").close()
    env["DIGEST_DATABASE_URL"] = url
    result = digest("backup", str(tmp_path / "copy.db"), env=env, cwd=tmp_path)
    message = " ".join(result.stderr.split())
    assert result.returncode == 1, result.stdout + result.stderr
    assert message.startswith("Error: the database URL"), message
    assert "sqlite:///path/to/digest.db" in message and "postgresql+psycopg://" in message
    assert "Traceback" not in result.stderr and "Zq7pw" not in result.stderr
    assert not (tmp_path / "copy.db").exists()
