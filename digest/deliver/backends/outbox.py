"""The outbox backend: every message becomes a file in a Maildir, nothing leaves the machine."""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from digest.deliver.backends.base import ClaimLost, SendEvents, SendResult
from digest.deliver.message import Outgoing
from digest.errors import DeliveryError

_counter = itertools.count()


class OutboxBackend:
    """Writes each message to <path>/tmp, then renames it into <path>/new (Maildir).

    Any mail reader or `mailbox.Maildir` can open the folder; the rename is atomic, so
    a reader never sees half a message.
    """

    name = "outbox"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            for sub in ("tmp", "new", "cur"):
                (self.path / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DeliveryError(
                f"cannot create the outbox {self.path}: {exc.strerror}; "
                "set [delivery] outbox_dir to a writable folder"
            ) from None
        # Maildir names: time, then pid and a counter, then host ("/" and ":" are
        # not allowed in a name).
        host = socket.gethostname().replace("/", r"\057").replace(":", r"\072")
        self._suffix = f"P{os.getpid()}Q{{}}.{host}"

    def send(self, batch: Sequence[Outgoing], events: SendEvents,
             stop: threading.Event | None = None) -> list[SendResult]:
        results = []
        for msg in batch:
            if stop is not None and stop.is_set():
                break  # the rest stays claimed; the caller gives it back
            now = time.time()
            name = f"{int(now)}.M{int(now % 1 * 1e6)}{self._suffix.format(next(_counter))}"
            tmp = self.path / "tmp" / name
            try:
                with open(tmp, "xb") as f:
                    f.write(msg.data)
                events.handing_over(msg)
                os.rename(tmp, self.path / "new" / name)
            except ClaimLost as exc:
                tmp.unlink(missing_ok=True)
                result = SendResult(msg.delivery_id, "deferred", f"abandoned: {exc}")
                events.done(result)
                results.append(result)
                continue
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                events.done(SendResult(msg.delivery_id, "deferred", f"outbox: {exc}"))
                # A full disk or a vanished folder fails every message alike.
                raise DeliveryError(
                    f"cannot write to the outbox {self.path}: {exc.strerror}; "
                    "check [delivery] outbox_dir"
                ) from None
            result = SendResult(msg.delivery_id, "sent", "")
            events.done(result)
            results.append(result)
        return results

    def close(self) -> None:
        pass
