"""The state folder: the files digest writes besides the database server's, and the
check, at start, that this process may write them.

`data_dir` holds secret.key and `imports/` (console uploads and their rejects); the
outbox Maildir (`[delivery] outbox_dir`) and a SQLite database (with its -wal and -shm,
which SQLite creates beside it, even to read) may live anywhere. A process that cannot
write there fails later, in the middle of a request or a send; `require_writable` says
so at start instead, with what to change.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sqlalchemy.engine import make_url

from digest.config import Settings
from digest.errors import ConfigError
from digest.files import user_name


def imports_dir(settings: Settings) -> Path:
    """Where console uploads and their rejects are kept: `<data_dir>/imports`."""
    return settings.path("data_dir") / "imports"


def outbox_dir(settings: Settings) -> Path:
    """The outbox Maildir (`[delivery] outbox_dir`), used or not: mail written there
    while the outbox was the backend stays until someone deletes it."""
    return settings.path("delivery.outbox_dir")


def folders(settings: Settings, *, send: bool = False, imports: bool = False
            ) -> list[tuple[Path, str]]:
    """The folders a process writes, each with the setting that names it: the SQLite
    database's, `data_dir`; the outbox when it sends there (`send`), the imports folder
    when it stores console imports (`imports`)."""
    found = []
    try:
        url = make_url(settings["database.url"])
    except Exception:  # digest.db.make_engine says what is wrong with it
        pass
    else:
        db = url.database
        if url.get_backend_name() == "sqlite" and db and db != ":memory:" \
                and not db.startswith("file:"):
            found.append((Path(db).parent, "[database] url"))
    found.append((settings.path("data_dir"), "data_dir"))
    if send and settings["delivery.backend"] == "outbox":
        found.append((outbox_dir(settings), "[delivery] outbox_dir"))
    if imports:
        found.append((imports_dir(settings), "data_dir (its imports folder)"))
    return found


def require_writable(settings: Settings, *, send: bool = False, imports: bool = False) -> None:
    """ConfigError naming the first of `folders` this process cannot write to (or, when
    it does not exist yet, cannot create), its owner and mode, and what to change."""
    for folder, setting in folders(settings, send=send, imports=imports):
        blocked = blocking(folder)
        if blocked is None:
            continue
        if not blocked.is_dir():
            raise ConfigError(f"cannot create {folder} ({setting}): {blocked} is not a "
                              "folder; move it away or point the setting elsewhere")
        st = blocked.stat()
        owner, me = user_name(st.st_uid), user_name(os.geteuid())
        what = "" if blocked == folder.absolute() else f" to create {folder}"
        raise ConfigError(
            f"cannot write to {blocked}{what} ({setting}; owner {owner}, mode "
            f"{stat.S_IMODE(st.st_mode):04o}, and digest runs as {me}); run digest as its "
            f"owner ({owner}), or give it to {me}: `chown -R {me} {blocked}`"
        )


def blocking(folder: Path) -> Path | None:
    """The folder, or its nearest existing parent when it does not exist yet (where it
    would be made), when this process cannot write there; None when it can.

    Asks the kernel (access(2) with the effective ids), which knows the mode, ACLs and a
    read-only mount; root passes unless the mount is read-only."""
    target = folder.absolute()
    while not target.exists() and target.parent != target:
        target = target.parent
    if not target.is_dir():
        return target
    if os.access(target, os.W_OK | os.X_OK,
                 effective_ids=os.access in os.supports_effective_ids):
        return None
    return target
