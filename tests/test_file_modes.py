"""Files holding addresses are the owner's alone (issue 9, finding 12): a new SQLite
database and its -wal and -shm, and the rejects of `digest subscribers import`, are 0600
under umask 022, which would leave them readable by anyone on the machine."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from digest.app import App
from digest.cli import main
from digest.config import load


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIGEST_CONFIG", raising=False)
    return {"DIGEST_DATABASE_URL": f"sqlite:///{tmp_path}/db/digest.db",
            "DIGEST_DATA_DIR": str(tmp_path / "var")}


def test_a_new_sqlite_database_its_wal_and_shm_are_private(
        tmp_path: Path, env: dict[str, str], umask_022: None) -> None:
    result = CliRunner().invoke(main, ["init"], env=env)
    assert result.exit_code == 0, result.output
    db = tmp_path / "db" / "digest.db"
    assert mode(db) == oct(0o600)
    # SQLite makes the -wal and -shm with the database file's permissions (unix VFS);
    # they exist while a connection is open, so look at them through one.
    app = App(load(env=env))
    try:
        with app.engine.connect() as conn:
            conn.execute(text("CREATE TABLE scratch (x INTEGER)"))
            conn.commit()
            wal, shm = db.with_name("digest.db-wal"), db.with_name("digest.db-shm")
            assert wal.exists() and shm.exists()
            assert (mode(db), mode(wal), mode(shm)) == (oct(0o600),) * 3
    finally:
        app.close()


def test_the_rejects_of_a_cli_import_are_private(
        tmp_path: Path, env: dict[str, str], umask_022: None) -> None:
    runner = CliRunner()
    for args in (["init"], ["lists", "create", "news", "--from", "News <n@example.org>"]):
        result = runner.invoke(main, args, env=env)
        assert result.exit_code == 0, result.output
    people = tmp_path / "people.csv"
    people.write_text("email\ndana@example.org\nnot-an-address\n")
    result = runner.invoke(main, ["subscribers", "import", str(people), "--list", "news",
                                  "--confirmed"], env=env)
    assert result.exit_code == 0, result.output
    rejects = tmp_path / "people.rejects.csv"
    assert "not-an-address" in rejects.read_text()
    assert mode(rejects) == oct(0o600)
    assert people.exists()  # the operator's own file: theirs to keep or delete


def test_the_outbox_and_data_dir_are_private(
        tmp_path: Path, env: dict[str, str], umask_022: None) -> None:
    """The outbox's messages hold their reader's address and live confirm and
    unsubscribe links; data_dir holds secret.key and the imports."""
    runner = CliRunner()
    for args in (["init"], ["lists", "create", "news", "--from", "News <n@example.org>"],
                 ["subscribers", "add", "ann@example.org", "--list", "news"]):
        result = runner.invoke(main, args, env=env)
        assert result.exit_code == 0, result.output
    assert "1 sent" in result.output  # the confirmation mail, into the outbox
    var, db = tmp_path / "var", tmp_path / "db"
    assert (mode(var), mode(db)) == (oct(0o700),) * 2
    outbox = var / "outbox"  # [delivery] outbox_dir's default, under the working folder
    folders = [outbox, *(outbox / sub for sub in ("tmp", "new", "cur"))]
    assert [mode(f) for f in folders] == [oct(0o700)] * 4
    messages = list((outbox / "new").iterdir())
    assert len(messages) == 1 and "ann@example.org" in messages[0].read_text()
    assert mode(messages[0]) == oct(0o600)
