"""A consistent copy of a SQLite database while digest runs (`digest backup`).

SQLite's online backup API copies the database page by page from one read transaction:
in WAL mode writers go on meanwhile, and the copy is the database as it was when the
copy began. PostgreSQL has its own tool, pg_dump; `backup_sqlite` says how to call it.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL

from digest.db import checked_url
from digest.errors import DigestError


@dataclass(frozen=True)
class Backup:
    """A finished copy: where from, where to, its size in bytes."""

    source: Path
    target: Path
    size: int


#: Words in the name of a URL query parameter that carries a secret (libpq's password
#: and sslpassword, a token in a proxy's URL): left out of any line shown.
SECRET_PARAMETERS = ("password", "secret", "token")


def pg_dump_command(given: URL, target: Path) -> str:
    """The pg_dump line that backs up the PostgreSQL database at `given` into `target`,
    in pg_dump's custom format (`pg_restore` reads it). The password is left out, in the
    URL's user part or its query (`SECRET_PARAMETERS`): pg_dump takes it from PGPASSWORD
    or ~/.pgpass."""
    query = {key: value for key, value in given.query.items()
             if not any(word in key.lower() for word in SECRET_PARAMETERS)}
    libpq = URL.create("postgresql", username=given.username, host=given.host,
                       port=given.port, database=given.database, query=query)
    return shlex.join(["pg_dump", "-Fc", "--file", str(target),
                       libpq.render_as_string(hide_password=False)])


def backup_sqlite(url: str, target: Path) -> Backup:
    """Copy the SQLite database at `url` into the new file `target` (0600), online and
    consistent; DigestError, saying what to do, for another database or a bad target."""
    parsed = checked_url(url)  # the same refusals as every other command's
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        # pg_dump's custom format is no SQLite file: a name ending .db (as in the daily
        # line of docs/operations.md) becomes .dump, the name the docs restore from.
        dump = target.with_suffix(".dump") if target.suffix == ".db" else target
        restore = shlex.join(["pg_restore", "--clean", "--if-exists", "--no-owner",
                              "--dbname", parsed.database or "DATABASE", str(dump)])
        raise DigestError(
            f"digest backup copies SQLite databases, and [database] url is PostgreSQL: "
            f"back it up with `{pg_dump_command(parsed, dump)}` (the password from "
            f"PGPASSWORD or ~/.pgpass); restore, with digest stopped, with `{restore}`")
    if not parsed.database or parsed.database == ":memory:":
        raise DigestError(f"[database] url {url!r} names no database file to back up")
    source = Path(parsed.database)
    if not source.is_file():
        raise DigestError(f"there is no database at {source}; check [database] url, or run "
                          "`digest init` to create one")
    if target.exists() or target.is_symlink():
        raise DigestError(f"{target} exists already; name a new file, or delete that one")
    if not target.parent.is_dir():
        raise DigestError(f"the folder {target.parent} does not exist; create it first")
    _copy(source, target)
    return Backup(source, target, target.stat().st_size)


def _copy(source: Path, target: Path) -> None:
    """Copy into a 0600 temporary file beside `target`, check it, then rename it: a copy
    that failed halfway is never found under the backup's name."""
    partial = target.with_name(f".{target.name}.partial")
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()  # left by a copy that was killed
    # Created 0600 before SQLite opens it, whatever the umask: it holds every address.
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        check = _backup_and_check(source, partial)
        if check != "ok":
            raise DigestError(f"the copy of {source} fails SQLite's integrity check "
                              f"({check}); check the database itself with "
                              f"`sqlite3 {source} 'PRAGMA integrity_check'`")
        with open(partial, "rb") as f:
            os.fsync(f.fileno())
        os.replace(partial, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
        raise


def _backup_and_check(source: Path, partial: Path) -> str:
    """SQLite's backup of `source` into `partial`, and the copy's integrity check."""
    try:
        # Read-only: a wrong path must not leave an empty database behind.
        src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
        dst = sqlite3.connect(partial)
        try:
            # All pages in one step: with steps, a write between two of them through
            # another connection restarts the copy, which may then never finish.
            src.backup(dst)
            # One file to keep: the copy leaves WAL mode (no -wal or -shm beside it).
            dst.execute("PRAGMA journal_mode = DELETE")
            return str(dst.execute("PRAGMA integrity_check").fetchone()[0])
        finally:
            dst.close()
            src.close()
    except sqlite3.Error as exc:
        raise DigestError(f"could not copy {source}: {exc}") from None
