"""What digest checks before it starts (issue 17, defects 4, 5, 7 and 8): a sender on
PostgreSQL with no delivery backend chosen, a database URL's password in output, a state
folder it cannot write, a schema older than the code. Each is an `Error:` that says what
to do, from the real command line."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy.engine import make_url

from digest import db
from digest.cli import main
from digest.config import defaults, load
from digest.migrations import upgrade
from tests.conftest import POSTGRES_URL, ROOT
from tests.test_serve import environment, free_port

needs_postgres = pytest.mark.skipif(not POSTGRES_URL, reason="DIGEST_TEST_POSTGRES_URL unset")
PASSWORD = "hunter2-s3cret"


def cli(tmp_path: Path, env: dict[str, str], *args: str) -> Result:
    """`digest …` in `tmp_path` (no config/digest.toml there) with exactly `env`."""
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        return CliRunner().invoke(main, list(args), env={
            **{k: None for k in os.environ if k.startswith("DIGEST_")}, **env})
    finally:
        os.chdir(old)


def digest(tmp_path: Path, env: dict[str, str], *args: str,
           timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`digest …` as its own process, for what runs until stopped (serve, worker)."""
    return subprocess.run([sys.executable, "-m", "digest", *args], cwd=tmp_path,
                          env=environment(tmp_path, **env), capture_output=True, text=True,
                          timeout=timeout)


# -- defect 4: no silent outbox on PostgreSQL --------------------------------------------


def test_settings_say_where_each_value_came_from(tmp_path: Path) -> None:
    cfg = tmp_path / "digest.toml"
    cfg.write_text('[smtp]\nhost = "mail.example.org"\n')
    settings = load(cfg, env={"DIGEST_DELIVERY_BACKEND": "outbox"})
    assert settings.origin("smtp.host") == str(cfg)
    assert settings.origin("delivery.backend") == "DIGEST_DELIVERY_BACKEND"
    assert settings.origin("smtp.port") is None  # the built-in default
    assert defaults().with_overrides(smtp__port=25).origin("smtp.port") == "override"
    assert load(None, env={"DIGEST_CONFIG": str(cfg)}).origin("delivery.backend") is None


@needs_postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("command", [["worker", "--once"], ["edition", "send", "--list", "x"],
                                     ["serve", "--port", "0"]],
                         ids=["worker", "edition send", "serve"])
def test_a_sender_on_postgresql_refuses_the_default_outbox(
        tmp_path: Path, pg_url: str, command: list[str]) -> None:
    env = environment(tmp_path, DIGEST_DATABASE_URL=pg_url)
    del env["DIGEST_DELIVERY_BACKEND"]
    assert cli(tmp_path, env, "init").exit_code == 0
    # Its own process: without the check, serve would run until the timeout.
    r = subprocess.run([sys.executable, "-m", "digest", *command], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stderr
    assert r.stderr.startswith("Error: [delivery] backend is not set"), r.stderr
    assert "no settings file was found" in r.stderr
    assert "DIGEST_DELIVERY_BACKEND=smtp" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "outbox").exists()


@needs_postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_an_outbox_chosen_on_purpose_is_fine_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    env = environment(tmp_path, DIGEST_DATABASE_URL=pg_url)
    del env["DIGEST_DELIVERY_BACKEND"]
    assert cli(tmp_path, env, "init").exit_code == 0
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "digest.toml").write_text('[delivery]\nbackend = "smtp"\n')
    # A file that does not name the backend does not choose it either.
    (tmp_path / "other.toml").write_text('[smtp]\nhost = "mail.example.org"\n')
    r = cli(tmp_path, {**env, "DIGEST_CONFIG": "other.toml"}, "worker", "--once")
    assert r.exit_code == 1 and "other.toml does not set it" in r.output, r.output
    (tmp_path / "config" / "digest.toml").write_text('[delivery]\nbackend = "outbox"\n')
    assert cli(tmp_path, env, "worker", "--once").exit_code == 0  # chosen in the file
    r = cli(tmp_path, {**env, "DIGEST_CONFIG": "other.toml",
                       "DIGEST_DELIVERY_BACKEND": "outbox"}, "worker", "--once")
    assert r.exit_code == 0, r.output  # chosen in the environment


def test_sqlite_keeps_the_default_outbox(tmp_path: Path) -> None:
    env = environment(tmp_path)
    del env["DIGEST_DELIVERY_BACKEND"]
    assert cli(tmp_path, env, "init").exit_code == 0
    r = cli(tmp_path, env, "worker", "--once")
    assert r.exit_code == 0, r.output


# -- defect 5: no password in output --------------------------------------------------------


def test_a_database_url_is_shown_without_its_password() -> None:
    assert db.shown_url(f"postgresql+psycopg://digest:{PASSWORD}@db/digest") == \
        "postgresql+psycopg://digest:***@db/digest"
    assert db.shown_url("sqlite:///var/digest.db") == "sqlite:///var/digest.db"
    # Not a URL SQLAlchemy reads: what looks like a password goes all the same.
    assert PASSWORD not in db.shown_url(f"post gres://digest:{PASSWORD}@x@db/digest")


@pytest.mark.parametrize("command", [["init"], ["backup", "copy.db"]])
def test_a_broken_database_url_is_refused_without_its_password(
        tmp_path: Path, command: list[str]) -> None:
    env = environment(tmp_path, DIGEST_DATABASE_URL=f"postgres ql://digest:{PASSWORD}@db/x")
    r = cli(tmp_path, env, *command)
    # backup says it as every other command does (`digest.db.checked_url`).
    assert r.exit_code == 1 and "is not a SQLAlchemy URL" in r.output, r.output
    assert PASSWORD not in r.output


@needs_postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_init_and_worker_do_not_print_the_database_password(
        tmp_path: Path, pg_url: str) -> None:
    # The test server trusts local connections: any password is accepted, and shown.
    url = make_url(pg_url).set(password=PASSWORD).render_as_string(hide_password=False)
    env = environment(tmp_path, DIGEST_DATABASE_URL=url)
    r = cli(tmp_path, env, "init")
    assert r.exit_code == 0, r.output
    assert PASSWORD not in r.output and ":***@" in r.output
    worker = digest(tmp_path, {"DIGEST_DATABASE_URL": url}, "worker", "--once")
    assert worker.returncode == 0, worker.stderr
    assert "sender worker started" in worker.stderr and ":***@" in worker.stderr
    assert PASSWORD not in worker.stdout + worker.stderr


# -- defect 7: a state folder this user cannot write -----------------------------------------


def as_someone_else(cwd: Path, env: dict[str, str], *args: str
                    ) -> subprocess.CompletedProcess[str]:
    """`digest …` run by a user who does not own `cwd`'s var/: as `nobody` when we are
    root (root would bypass every permission), else as ourselves. This interpreter may
    sit in a folder `nobody` cannot enter (/root/.pyenv), so `nobody` runs the system's
    Python of the same version on this environment's packages."""
    python, user = sys.executable, {}
    if os.geteuid() == 0:
        python = shutil.which(f"python{sys.version_info.major}.{sys.version_info.minor}",
                              path="/usr/bin:/usr/local/bin") or ""
        try:
            pwd.getpwnam("nobody")
        except KeyError:
            pytest.skip("no user `nobody` to run digest as")
        if not python:
            pytest.skip("no system Python of this version for `nobody` to run")
        user = {"user": "nobody", "group": "nogroup"}
    packages = [p for p in sys.path if p.endswith("site-packages")]
    env = {**env, "HOME": str(cwd), "PYTHONPATH": os.pathsep.join([str(ROOT), *packages])}
    return subprocess.run([python, "-m", "digest", *args], cwd=cwd, env=env,  # type: ignore[call-overload, no-any-return]
                          capture_output=True, text=True, timeout=60, **user)


@pytest.mark.parametrize("command", [["init"], ["worker", "--once"], ["serve", "--port", "0"],
                                     ["subscribers", "forget", "a@example.org", "--yes"]],
                         ids=["init", "worker", "serve", "forget"])
def test_a_state_folder_it_cannot_write_is_refused_at_start(
        shared_tmp: Path, command: list[str]) -> None:
    env = environment(shared_tmp)
    env["DIGEST_DATABASE_URL"] = f"sqlite:///{shared_tmp}/db/digest.db"
    assert cli(shared_tmp, env, "init").exit_code == 0  # as the owner
    os.chmod(shared_tmp / "db", 0o777)
    os.chmod(shared_tmp / "db" / "digest.db", 0o666)
    for name in ("digest.db-wal", "digest.db-shm"):
        if (shared_tmp / "db" / name).exists():
            os.chmod(shared_tmp / "db" / name, 0o666)
    var = shared_tmp / "var"
    var.mkdir(exist_ok=True)
    var.chmod(0o755)
    if os.geteuid() != 0:
        var.chmod(0o555)
    r = as_someone_else(shared_tmp, env, *command)
    assert r.returncode == 1, r.stdout + r.stderr
    owner = pwd.getpwuid(os.geteuid()).pw_name
    assert r.stderr.startswith(f"Error: cannot write to {var} (data_dir; owner {owner}, mode "), \
        r.stderr
    assert "run digest as its owner" in r.stderr and "chown -R " in r.stderr
    assert "Traceback" not in r.stderr


# -- defect 8: a schema older than the code -------------------------------------------------


def test_an_outdated_schema_says_to_upgrade_with_init(tmp_path: Path,
                                                      database_url: str) -> None:
    head = max(p.name[:4] for p in (ROOT / "digest" / "migrations" / "versions").glob("0*.py"))
    engine = db.make_engine(database_url)
    upgrade(engine, "0007")
    engine.dispose()
    env = environment(tmp_path, DIGEST_DATABASE_URL=database_url)
    r = cli(tmp_path, env, "lists", "ls")
    assert r.exit_code == 1
    assert (f"Error: the database needs an upgrade from revision 0007 to {head}: run "
            "`digest init`") in r.output, r.output
    served = digest(tmp_path, {"DIGEST_DATABASE_URL": database_url},
                    "serve", "--port", str(free_port()))
    assert served.returncode == 1 and "from revision 0007 to" in served.stderr, served.stderr
    assert cli(tmp_path, env, "init").exit_code == 0
    assert cli(tmp_path, env, "lists", "ls").exit_code == 0


def test_a_database_without_tables_says_to_run_init(tmp_path: Path) -> None:
    env = environment(tmp_path)
    (tmp_path / "digest.db").touch()  # there, empty
    r = cli(tmp_path, env, "status")
    assert r.exit_code == 1
    assert "Error: the database has no tables yet; run `digest init` first" in r.output


def test_a_database_file_that_is_not_there_is_named_and_not_made(tmp_path: Path) -> None:
    """A mistyped path, or a folder where `digest init` never ran: the command says which
    file it looked for, and leaves no empty database there."""
    for name in ("digest.db", "digset.db"):
        expected = tmp_path / name
        env = environment(tmp_path, DIGEST_DATABASE_URL=f"sqlite:///{expected}")
        r = cli(tmp_path, env, "lists", "ls")
        assert r.exit_code == 1
        assert " ".join(r.output.split()) == (
            f"Error: the database file {expected} does not exist: run `digest init` to "
            "create it, or point [database] url / DIGEST_DATABASE_URL at the one you have")
        assert not expected.exists()


def test_a_database_server_that_does_not_answer_is_one_error_line(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens there once closed
    env = environment(tmp_path, DIGEST_DATABASE_URL=(
        f"postgresql+psycopg://digest:sekrit-pass@127.0.0.1:{port}/digest"))
    r = cli(tmp_path, env, "status")
    assert r.exit_code == 1
    lines = r.output.strip().splitlines()
    assert len(lines) == 1, r.output  # libpq's own message has a second, indented line
    assert lines[0].startswith("Error: database error: connection failed:"), r.output
    assert "Connection refused" in lines[0] and "sekrit-pass" not in r.output


def test_a_file_that_is_not_a_sqlite_database_is_named_without_a_traceback(
    tmp_path: Path,
) -> None:
    other = tmp_path / "notes.db"
    other.write_text("hello, not a database\n")
    env = environment(tmp_path, DIGEST_DATABASE_URL=f"sqlite:///{other}")
    for command in (["init"], ["status"], ["lists", "ls"]):
        r = cli(tmp_path, env, *command)
        assert r.exit_code == 1, r.output
        assert " ".join(r.output.split()) == (
            f"Error: sqlite:///{other} is not a SQLite database (another kind of file, or "
            "damaged): point [database] url / DIGEST_DATABASE_URL at digest's own "
            "database, or at a new file for `digest init` to make"), r.output
    assert other.read_text() == "hello, not a database\n"
