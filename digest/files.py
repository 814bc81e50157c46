"""Folders and files that only digest's own user may read: they hold people's addresses,
links that act for them, or the signing key. Modes are set exactly, whatever the umask
(022, the usual one, would make them readable by everyone on the machine)."""

from __future__ import annotations

import errno
import grp
import os
import pwd
from pathlib import Path

#: A folder of digest's state: its user's alone.
FOLDER = 0o700
#: A file holding addresses, tokens or keys: read and written by its user alone.
PRIVATE = 0o600


def private_folder(path: Path) -> None:
    """Make `path` and any missing parents, each FOLDER (0700). A folder that exists
    keeps its mode: it may be an admin's, shared on purpose (say, a Maildir another user
    reads); docs/operations.md says how to tighten one made by an earlier version."""
    missing = []
    target = path
    while not os.path.lexists(target) and target.parent != target:
        missing.append(target)
        target = target.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=FOLDER)
        except FileExistsError:  # made meanwhile, by another process
            continue
        folder.chmod(FOLDER)  # the umask may have taken bits away; this is exact
    if not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path))


def user_name(uid: int) -> str:
    """The name of user `uid`, else its number (a uid with no entry in passwd)."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def group_name(gid: int) -> str:
    """The name of group `gid`, else its number."""
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def process_alive(pid: int) -> bool:
    """Whether process `pid` of this machine still runs (ours counts as running): who
    wrote a leftover file in the outbox, or holds a sender's claims and heartbeat."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: it runs
        return True
    return True
