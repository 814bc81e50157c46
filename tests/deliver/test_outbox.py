"""The outbox backend writes a Maildir any mail reader can open."""

from __future__ import annotations

import email
import email.policy
import mailbox
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from digest.deliver.backends import OutboxBackend
from digest.deliver.backends.outbox import erase_to
from digest.deliver.message import Outgoing
from digest.errors import DeliveryError
from tests.deliver.conftest import EventLog, make_messages


class Recorder(EventLog):
    """Also notes how many files new/ held at each handing_over."""

    def __init__(self, new: Path | None = None) -> None:
        super().__init__()
        self.new = new
        self.in_new_at_handover: list[int] = []

    def handing_over(self, msg: Outgoing) -> None:
        super().handing_over(msg)
        if self.new is not None:
            self.in_new_at_handover.append(len(list(self.new.iterdir())))


def test_each_message_lands_in_new_as_one_parseable_file(tmp_path: Path) -> None:
    batch = make_messages(3, first_id=0)
    outbox = OutboxBackend(tmp_path / "outbox")
    events = Recorder(new=tmp_path / "outbox" / "new")
    results = outbox.send(batch, events)

    assert [(r.delivery_id, r.status, r.detail) for r in results] == [
        (0, "sent", ""), (1, "sent", ""), (2, "sent", ""),
    ]
    assert events.results == results
    # The three are handed over in one commit, before any is renamed into new/.
    assert events.calls == [("handing_over", i) for i in range(3)] + [
        ("done", i) for i in range(3)]
    assert events.in_new_at_handover == [0, 0, 0]
    files = sorted((tmp_path / "outbox" / "new").iterdir())
    assert len(files) == 3
    assert list((tmp_path / "outbox" / "tmp").iterdir()) == []
    assert sorted(f.read_bytes() for f in files) == sorted(m.data for m in batch)
    for f in files:
        msg = email.message_from_bytes(f.read_bytes(), policy=email.policy.default)
        assert msg.get_content_type() == "multipart/alternative"
    box = mailbox.Maildir(tmp_path / "outbox", create=False)
    assert sorted(str(m["To"]) for m in box) == [
        f"Reader {i} <r{i}@example.com>" for i in range(3)
    ]


def test_names_stay_unique_across_calls(tmp_path: Path) -> None:
    outbox = OutboxBackend(tmp_path)
    for _ in range(3):
        outbox.send(make_messages(5), Recorder())
    outbox.close()
    assert len(list((tmp_path / "new").iterdir())) == 15


def test_unusable_folder_is_a_delivery_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(DeliveryError, match=r"\[delivery\] outbox_dir"):
        OutboxBackend(blocker)


def _leftover(tmp: Path, pid: int, msg: Outgoing) -> Path:
    """A file as a sender with `pid` on this host leaves it in tmp/ when killed between
    its write and its rename."""
    host = socket.gethostname().replace("/", r"\057").replace(":", r"\072")
    path = tmp / f"1796593603.M476687P{pid}Q64.{host}"
    path.write_bytes(msg.data)
    return path


def test_what_a_killed_sender_left_in_tmp_is_swept_and_forgotten(tmp_path: Path) -> None:
    """A sender killed between writing a message to tmp/ and renaming it leaves a file
    with a reader's address and links that no one will ever deliver: the next outbox
    sender removes it, and forgetting the reader erases it there too."""
    box = tmp_path / "outbox"
    OutboxBackend(box)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    first, second = make_messages(2)
    orphan = _leftover(box / "tmp", dead.pid, first)
    mine = _leftover(box / "tmp", os.getpid(), second)  # a live sender's, mid-write
    OutboxBackend(box)
    assert not orphan.exists() and mine.exists()
    assert erase_to(box, re.compile(re.escape(second.recipient))) == 1
    assert not mine.exists()
