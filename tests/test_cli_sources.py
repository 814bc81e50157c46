"""`digest sources ls` and `digest fetch` show each source's whole URL and error, in an
80-column terminal too: the CLI runs in its own process on a pseudo-terminal, as a user
runs it, against feeds on a loopback server."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import DATA
from tests.loopback import feed_server
from tests.test_serve import environment as serve_environment

FEED = (DATA / "flow" / "news.xml").read_bytes()
# 150 characters of path and query: a real feed URL can be that long (tracking, tokens).
LONG_PATH = "/feeds/category/harbour-and-shipping/" + "x" * 70 + "/rss.xml?edition=morning&s=1"


def environment(tmp_path: Path) -> dict[str, str]:
    return serve_environment(tmp_path, COLUMNS="80", LINES="50", TERM="xterm", NO_COLOR="1")


def in_terminal(tmp_path: Path, *args: str) -> str:
    """The command's output as an 80-column terminal shows it."""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "digest", *args], cwd=tmp_path,
                                env=environment(tmp_path), stdin=subprocess.DEVNULL,
                                stdout=follower, stderr=follower)
        os.close(follower)
        chunks = []
        while True:  # read as it comes: a full terminal would stop the command
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the command has ended and its output is read
                break
            if not chunk:
                break
            chunks.append(chunk)
        returncode = proc.wait(timeout=60)
    finally:
        os.close(leader)
    text = b"".join(chunks).decode("utf-8", errors="replace").replace("\r\n", "\n")
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)  # bold, the progress bar's moves
    assert returncode == 0, text
    return text


def column(table: str, n: int) -> str:
    """The text of a table's n-th column, its folded lines joined again."""
    rows = [line for line in table.splitlines() if line.count("│") + line.count("┃") > n]
    assert rows and all(len(line) <= 80 for line in rows), table
    return "".join(re.split(r"[│┃]", line)[n].strip() for line in rows)


def test_sources_ls_shows_every_url_and_error_whole_in_80_columns(tmp_path: Path) -> None:
    with feed_server(lambda path: FEED if path.startswith("/feeds/") else None) as base:
        good, broken = base + LONG_PATH, base + LONG_PATH.replace("/feeds/", "/gone/")
        assert len(good) >= 150
        in_terminal(tmp_path, "init")
        in_terminal(tmp_path, "lists", "create", "morning", "--from", "m@news.example.org")
        in_terminal(tmp_path, "sources", "add", good, "--list", "morning")
        # Unchecked: a check would refuse its 500 (tests/test_cli_sources_check.py).
        in_terminal(tmp_path, "sources", "add", broken, "--list", "morning", "--no-check")
        fetched = in_terminal(tmp_path, "fetch", "--allow-failures")
        listed = in_terminal(tmp_path, "sources", "ls")
    for url in (good, broken):
        assert url in column(fetched, 1), fetched
    # The title and the whole URL in the source column, the whole error in its own
    # (words wrapped, so compared without spaces).
    sources = column(listed, 2)
    assert "HarbourGazette" + good in sources and broken in sources, listed
    error = ("HTTP 500 Internal Server Error; the site has a problem; it will be tried "
             f"again at the next fetch ({broken})")
    assert error.replace(" ", "") in column(listed, 7).replace(" ", ""), listed
