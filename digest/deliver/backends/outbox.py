"""The outbox backend: every message becomes a file in a Maildir, nothing leaves the machine.

The messages hold their reader's address and live confirm and unsubscribe links, so the
Maildir is its owner's alone: folders 0700 and files 0600 whatever the umask; and
`erase_to` takes a person's messages out (`digest.privacy.forget`).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import socket
import threading
import time
from collections.abc import Sequence
from email.parser import BytesHeaderParser
from email.policy import default as email_policy
from pathlib import Path

from digest.deliver.backends.base import SendEvents, SendResult
from digest.deliver.message import Outgoing
from digest.deliver.verp import ReturnPath
from digest.errors import DeliveryError
from digest.files import PRIVATE, private_folder, process_alive

_counter = itertools.count()
#: The headers naming whom a message is for.
RECIPIENTS = ("To", "Cc", "Bcc", "Delivered-To", "X-Original-To")
#: The most messages handed over in one commit and then renamed into new/ together.
GROUP = 64
#: The most of a message's head read to find its recipients.
HEAD_BYTES = 64 * 1024


class OutboxBackend:
    """Writes each message to <path>/tmp, then renames it into <path>/new (Maildir).

    Any mail reader or `mailbox.Maildir` can open the folder; the rename is atomic, so
    a reader never sees half a message.
    """

    name = "outbox"

    def __init__(self, path: str | Path, return_path: ReturnPath | None = None, *,
                 group: int = GROUP) -> None:
        self.path = Path(path)
        self.group = group
        # VERP: each file starts with the Return-Path its delivery would have had.
        self.return_path = return_path
        try:
            for sub in ("tmp", "new", "cur"):
                private_folder(self.path / sub)
        except OSError as exc:
            raise DeliveryError(
                f"cannot create the outbox {self.path}: {exc.strerror}; "
                "set [delivery] outbox_dir to a writable folder"
            ) from None
        # Maildir names: time, then pid and a counter, then host ("/" and ":" are
        # not allowed in a name).
        host = socket.gethostname().replace("/", r"\057").replace(":", r"\072")
        self._suffix = f"P{os.getpid()}Q{{}}.{host}"
        _sweep(self.path / "tmp", host)

    def send(self, batch: Sequence[Outgoing], events: SendEvents,
             stop: threading.Event | None = None) -> list[SendResult]:
        """Up to `group` messages at a time are written to tmp/, handed over in one commit
        and renamed into new/ together, so a kill leaves at most one group uncertain."""
        results: list[SendResult] = []
        for start in range(0, len(batch), self.group):
            if stop is not None and stop.is_set():
                break  # the rest stays claimed; the caller gives it back
            written = self._write(batch[start:start + self.group], events, stop)
            if not written:
                break
            lost = events.hand_over([msg for msg, _ in written])
            failure = None
            for msg, name in written:
                tmp = self.path / "tmp" / name
                if msg.delivery_id in lost:
                    tmp.unlink(missing_ok=True)
                    result = SendResult(msg.delivery_id, "deferred",
                                        f"abandoned: {lost[msg.delivery_id]}")
                else:
                    try:
                        os.rename(tmp, self.path / "new" / name)
                        result = SendResult(msg.delivery_id, "sent", "")
                    except FileNotFoundError:  # erased meanwhile (forget): not a fault
                        result = SendResult(msg.delivery_id, "deferred",
                                            "outbox: the file was erased before delivery")
                    except OSError as exc:
                        tmp.unlink(missing_ok=True)
                        failure = failure or exc
                        result = SendResult(msg.delivery_id, "deferred", f"outbox: {exc}")
                events.done(result)
                results.append(result)
            if failure is not None:
                raise self._unwritable(failure)
        return results

    def _write(self, msgs: Sequence[Outgoing], events: SendEvents,
               stop: threading.Event | None) -> list[tuple[Outgoing, str]]:
        """Each message into a file of tmp/: (message, file name). A message that cannot
        be written is deferred and DeliveryError raised, the files already written
        removed (those messages stay claimed, not attempted)."""
        written: list[tuple[Outgoing, str]] = []
        for msg in msgs:
            if stop is not None and stop.is_set():
                break
            now = time.time()
            name = f"{int(now)}.M{int(now % 1 * 1e6)}{self._suffix.format(next(_counter))}"
            tmp = self.path / "tmp" / name
            try:
                with open(tmp, "xb", opener=_private) as f:
                    if self.return_path is not None:
                        sender = self.return_path.address(msg.delivery_id)
                        f.write(f"Return-Path: <{sender}>\r\n".encode("ascii"))
                    f.write(msg.data)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                for _, earlier in written:
                    (self.path / "tmp" / earlier).unlink(missing_ok=True)
                events.done(SendResult(msg.delivery_id, "deferred", f"outbox: {exc}"))
                raise self._unwritable(exc) from None
            written.append((msg, name))
        return written

    def _unwritable(self, exc: OSError) -> DeliveryError:
        # A full disk or a vanished folder fails every message alike.
        return DeliveryError(f"cannot write to the outbox {self.path}: {exc.strerror}; "
                             "check [delivery] outbox_dir")

    def close(self) -> None:
        pass


def _private(path: str, flags: int) -> int:
    """`open`'s opener: the file 0600, exact whatever the umask."""
    fd = os.open(path, flags, PRIVATE)
    try:
        os.fchmod(fd, PRIVATE)
    except BaseException:
        os.close(fd)
        raise
    return fd


_TMP_NAME = re.compile(r"^\d+\.M\d+P(\d+)Q\d+\.(.+)$")


def _sweep(tmp: Path, host: str) -> None:
    """Remove what senders of this host that are gone left in tmp/ (a kill between the
    write and the rename): never renamed by anyone, and holding a reader's links."""
    for leftover in tmp.iterdir():
        if (found := _TMP_NAME.match(leftover.name)) and found[2] == host:
            pid = int(found[1])
            if not process_alive(pid):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()


def erase_to(path: Path, naming: re.Pattern[str]) -> int:
    """Delete the messages of the Maildir `path` (in new/ and cur/, and in tmp/ what a
    sender left there or is writing) whose recipient headers match `naming`; how many
    went. A message to someone else that quotes the address stays: it is that reader's
    mail."""
    erased = 0
    for sub in ("new", "cur", "tmp"):
        folder = path / sub
        if not folder.is_dir():
            continue
        for message in sorted(folder.iterdir()):
            if message.is_file() and not message.is_symlink() and _to(message, naming):
                with contextlib.suppress(FileNotFoundError):  # read or moved meanwhile
                    message.unlink()
                    erased += 1
    return erased


def _to(message: Path, naming: re.Pattern[str]) -> bool:
    try:
        with message.open("rb") as f:
            head = f.read(HEAD_BYTES).split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    except FileNotFoundError:
        return False
    headers = BytesHeaderParser(policy=email_policy).parsebytes(head)
    return any(naming.search(str(value)) for name in RECIPIENTS
               for value in headers.get_all(name, []))
