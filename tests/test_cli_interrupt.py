"""Ctrl-C during a command: one `Error: interrupted (Ctrl-C)` line saying what is kept,
exit status 130 as shells report SIGINT, no traceback; and what the command leaves
behind lets it simply be run again. Real `digest` processes, a real SIGINT. Also what
a user pipes or hands to an import that is no CSV file."""

from __future__ import annotations

import contextlib
import email.utils
import os
import select
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.loopback import feed_server

DIGEST = [sys.executable, "-m", "digest"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env.update(DIGEST_PUBLIC_URL="https://news.example.org", DIGEST_DELIVERY_BACKEND="outbox")
    return env


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DIGEST, *args], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=120)


def start(cwd: Path, *args: str) -> subprocess.Popen[str]:
    """A command as a shell starts it: Ctrl-C (SIGINT) interrupts it, even where this
    process was started with SIGINT ignored (in the background)."""
    return subprocess.Popen([*DIGEST, *args], cwd=cwd, env=_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def interrupt(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    return proc.returncode, stderr


@pytest.fixture
def site(tmp_path: Path) -> Path:
    assert run(tmp_path, "init").returncode == 0
    r = run(tmp_path, "lists", "create", "news", "--from", "News <news@example.org>")
    assert r.returncode == 0, r.stderr
    return tmp_path


@dataclass
class Feed:
    """A feed on loopback (`tests.loopback.feed_server`) that holds its first request
    until `release`."""

    url: str
    asked: threading.Event
    release: threading.Event


@pytest.fixture
def feed() -> Iterator[Feed]:
    asked, release = threading.Event(), threading.Event()
    date = email.utils.format_datetime(email.utils.localtime())
    body = (f'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
            f"<link>https://example.org/</link><item><title>One story</title>"
            f"<link>https://example.org/one</link><pubDate>{date}</pubDate>"
            f"<description>The first paragraph of the story.</description></item>"
            f"</channel></rss>").encode()

    def answer(path: str) -> bytes:
        asked.set()
        release.wait(60)
        return body

    with feed_server(answer) as base:
        try:
            yield Feed(f"{base}/feed.xml", asked, release)
        finally:
            release.set()


def test_ctrl_c_during_a_fetch_says_so_and_the_next_fetch_takes_the_source(
    site: Path, feed: Feed
) -> None:
    r = run(site, "sources", "add", feed.url, "--list", "news", "--no-check")
    assert r.returncode == 0, r.stderr
    proc = start(site, "fetch")
    assert feed.asked.wait(60), "the fetch never asked for the feed"
    code, stderr = interrupt(proc)
    assert code == 130, stderr
    assert stderr.startswith("Error: interrupted (Ctrl-C); the sources fetched before it "
                             "keep their new articles"), stderr
    assert "Traceback" not in stderr and "Aborted!" not in stderr, stderr
    feed.release.set()  # the feed answers now
    # Run again at once, it fetches the source: the interrupted fetch held no lease on
    # it (it used to be "being fetched elsewhere" for minutes).
    again = run(site, "fetch")
    assert again.returncode == 0, again.stdout + again.stderr
    said = " ".join(again.stdout.split())
    assert "1 new article from 1 source" in said and "elsewhere" not in said, said


def _members(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM memberships").fetchone()[0])
    except sqlite3.OperationalError:  # locked a moment by the import's commit
        return -1


@pytest.mark.slow  # 150,000 rows, imported twice
def test_ctrl_c_during_an_import_keeps_what_it_committed_and_a_rerun_finishes_it(
    site: Path,
) -> None:
    rows = 150_000
    csv = site / "people.csv"
    csv.write_text("email\n" + "".join(f"reader{i}@example.org\n" for i in range(rows)))
    proc = start(site, "subscribers", "import", str(csv), "--list", "news", "--confirmed")
    db = site / "var" / "digest.db"
    deadline = time.monotonic() + 300
    while _members(db) < 100_000 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # until its first commit (every 100,000 rows) is in
    assert proc.poll() is None, "the import ended before it could be interrupted"
    code, stderr = interrupt(proc)
    assert code == 130, stderr
    assert stderr.startswith("Error: interrupted (Ctrl-C); the rows it had imported are "
                             "kept"), stderr
    assert "run the same import again to finish it" in " ".join(stderr.split())
    assert "Traceback" not in stderr, stderr
    kept = _members(db)
    assert 100_000 <= kept < rows
    again = run(site, "subscribers", "import", str(csv), "--list", "news", "--confirmed")
    assert again.returncode == 0, again.stderr
    # The table's one row: added, updated, unchanged, rejected, suppressed.
    numbers = [int(n) for n in again.stdout.replace("│", " ").split() if n.isdigit()]
    assert numbers[-5:] == [rows - kept, 0, kept, 0, 0], again.stdout
    assert _members(db) == rows


def test_an_import_from_a_pipe_says_to_save_it_to_a_file_first(site: Path) -> None:
    fifo = site / "export.csv"
    os.mkfifo(fifo)
    r = run(site, "subscribers", "import", str(fifo), "--list", "news", "--confirmed")
    assert r.returncode == 1, r.stderr
    assert r.stderr.startswith(f"Error: {fifo} is not a file (a pipe?): an import reads "
                               "its file twice"), r.stderr
    assert "save it to a file first" in r.stderr and "Traceback" not in r.stderr


# A Ctrl-C that comes while `digest.cli` and its libraries load (a second or two after
# the command is typed), made to come at that moment: the import of one of them raises it.
CTRL_C_WHILE_LOADING = """
import sys

class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == "rich.console":
            raise KeyboardInterrupt

sys.meta_path.insert(0, CtrlC())
sys.argv = ["digest", "lists", "ls"]
from digest.launch import run
run()
"""


def test_ctrl_c_while_the_command_loads_is_one_line_too(tmp_path: Path) -> None:
    # The installed `digest` script and `python -m digest` both start there.
    script = Path(sys.executable).parent / "digest"
    assert "from digest.launch import run" in script.read_text(), "pip install -e . again"
    main = Path(__file__).parent.parent / "digest" / "__main__.py"
    assert "from digest.launch import run" in main.read_text()
    r = subprocess.run([sys.executable, "-c", CTRL_C_WHILE_LOADING], cwd=tmp_path,
                       env=_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 130, r.stderr
    assert r.stderr == "Error: interrupted (Ctrl-C) while starting; nothing was done\n"


def test_ctrl_c_at_a_question_erases_nothing_and_says_so(site: Path) -> None:
    """`subscribers forget` asks first; Ctrl-C at its question, in a terminal, is an
    interruption (it said there was no terminal to ask on)."""
    import pty

    assert run(site, "subscribers", "add", "reader@example.org", "--list", "news",
               "--confirmed").returncode == 0
    leader, follower = pty.openpty()
    proc = subprocess.Popen([*DIGEST, "subscribers", "forget", "reader@example.org"],
                            cwd=site, env=_env(), stdin=follower, stdout=follower,
                            stderr=follower,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    os.close(follower)
    shown = b""
    try:
        deadline = time.monotonic() + 60
        while b"[y/N]" not in shown:
            assert time.monotonic() < deadline, shown
            if select.select([leader], [], [], 1)[0]:
                shown += os.read(leader, 4096)
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
        with contextlib.suppress(OSError):  # the terminal closes with the process
            while chunk := os.read(leader, 4096):
                shown += chunk
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
    text = shown.decode(errors="replace")
    assert proc.returncode == 130, text
    assert "Error: interrupted (Ctrl-C); nothing was erased" in text
    assert "[y/N]: Error" not in text, text  # on a line of its own
    assert "no terminal" not in text
    listed = run(site, "subscribers", "show", "reader@example.org")
    assert listed.returncode == 0 and "reader@example.org" in listed.stdout


def test_an_import_from_a_pipe_is_refused_before_its_rejects_file_is_thought_of(
    site: Path,
) -> None:
    """`<(zcat export.csv.gz)` is /dev/fd/63, whose rejects file /dev/fd/63.rejects.csv
    cannot be written: the pipe is what to talk about, not that."""
    fifo = site / "export.csv"
    os.mkfifo(fifo)
    (site / "export.csv.rejects.csv").mkdir()  # its default rejects file cannot be made
    r = run(site, "subscribers", "import", str(fifo), "--list", "news", "--confirmed")
    assert r.returncode == 1, r.stderr
    assert r.stderr.startswith(f"Error: {fifo} is not a file (a pipe?)"), r.stderr


@pytest.mark.parametrize(("made", "said"), [
    ("gzip", "is gzip-compressed: decompress it first (`gunzip -c"),
    ("renamed gzip", "is gzip-compressed: decompress it first (`gunzip -c"),
    ("zip", "is a ZIP archive (an Excel workbook?), not CSV: save the sheet as CSV"),
])
def test_a_compressed_file_is_named_as_such(site: Path, made: str, said: str) -> None:
    import gzip
    import zipfile

    rows = "email\nreader@example.org\n"
    path = site / {"gzip": "people.csv.gz", "renamed gzip": "people.csv"}.get(made,
                                                                         "people.xlsx")
    if "gzip" in made:
        path.write_bytes(gzip.compress(rows.encode()))
    else:
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("xl/worksheets/sheet1.xml", rows)
    r = run(site, "subscribers", "import", str(path), "--list", "news", "--confirmed")
    assert r.returncode == 1, r.stderr
    assert " ".join(r.stderr.split()).startswith(f"Error: {path} {said}"), r.stderr
    if "gzip" in made:  # do as it says: the file it gives imports
        command = " ".join(r.stderr.split()).split("`")[1]
        assert command.startswith("gunzip -c ") and " > " in command
        subprocess.run(command, shell=True, cwd=site, check=True)
        unpacked = site / command.rpartition("> ")[2]
        assert unpacked.read_text() == rows


def test_an_import_from_standard_input_puts_its_rejects_beside_the_file(site: Path) -> None:
    """`digest subscribers import /dev/stdin < people.csv`: the refused rows go beside
    people.csv (as root, they went to /dev/stdin.rejects.csv, in /dev)."""
    people = site / "people.csv"
    people.write_text("email\nreader@example.org\nnot-an-address\n")
    stray = Path("/dev/stdin.rejects.csv")
    try:
        with people.open("rb") as stdin:
            r = subprocess.run([*DIGEST, "subscribers", "import", "/dev/stdin", "--list",
                                "news", "--confirmed"], cwd=site, env=_env(), stdin=stdin,
                               capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        rejects = site / "people.rejects.csv"
        assert "not-an-address" in rejects.read_text(), r.stdout
        assert str(rejects) in "".join(r.stdout.split())  # however it is wrapped
        assert not stray.exists()
    finally:
        stray.unlink(missing_ok=True)
