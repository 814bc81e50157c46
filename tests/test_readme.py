"""README.md's "Using it", run as a test: each command line in order, as a new user types
it in a fresh clone, so the README cannot drift from the code (issue 14).

The user's own values are swapped for local ones by the small tables below; a README
line they do not cover fails with the line to add, rather than being skipped."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import email.utils
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from digest.cli import main
from digest.config import SECRETS, SETTINGS
from tests.conftest import DATA, ROOT
from tests.loopback import feed_server

#: The README the test runs; a test points it at an edited copy.
README = ROOT / "README.md"
VENV_BIN = Path(sys.executable).parent

#: The README's stand-ins for the user's feeds → what the loopback server serves.
FEEDS = {
    "https://example.org/feed.xml": ("/feed.xml", DATA / "feeds" / "fj_a10.xml"),
    "https://example.org/news.rss": ("/news.rss", DATA / "flow" / "news.xml"),
}
#: The pages behind news.rss's items, which `--full-text` fetches (its links are
#: pointed at the loopback server).
PAGE = DATA / "pages" / "newspaper-council-budget.html"
#: Files the README's reader brings along.
FILES = {"people.csv": "email,name\nzoe@example.org,Zoë\ngrace@example.org,Grace\n"}
#: What the user types at a prompt: a command → (the option that reads it from
#: standard input instead of a terminal, the text typed).
TYPED = {("users", "add"): ("--password-stdin", "a long test password for ed\n")}
#: Commands that run until stopped: checked with --help (which parses every option).
LONG_RUNNING = {"serve", "worker"}
#: Commands run through the real `digest` on PATH, as a subprocess; the rest run in
#: this process (each subprocess costs seconds).
SUBPROCESS = {"init"}


def using_it(readme: Path) -> list[tuple[int, str]]:
    """The command lines of the fenced blocks of "## Using it" (continuations joined,
    comment lines dropped), each with its line number in the README."""
    lines = readme.read_text(encoding="utf-8").splitlines()
    start = lines.index("## Using it")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
               len(lines))
    commands: list[tuple[int, str]] = []
    fenced, pending, first = False, "", 0
    for number, line in enumerate(lines[start:end], start + 1):
        if line.startswith("```"):
            fenced = not fenced
            continue
        if not fenced or (not pending and (not line.strip()
                                           or line.lstrip().startswith("#"))):
            continue
        first = first or number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        commands.append((first, pending + line))
        pending, first = "", 0
    assert commands, f"no command in the fenced blocks of {readme}'s \"## Using it\""
    return commands


def _dated_now(body: bytes, base: str) -> bytes:
    """A stored feed as if just published (a first edition takes the last day's
    articles), its item links on the loopback server."""
    now = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    text = body.decode("utf-8-sig")
    text = re.sub(r"<pubDate>[^<]*</pubDate>",
                  f"<pubDate>{email.utils.format_datetime(now, usegmt=True)}</pubDate>", text)
    text = re.sub(r"<a10:updated>[^<]*</a10:updated>",
                  f"<a10:updated>{now.strftime('%Y-%m-%dT%H:%M:%SZ')}</a10:updated>", text)
    return text.replace("https://gazette.example.org/", base + "/").encode()


@pytest.fixture
def feeds() -> Iterator[str]:
    served = {path: file.read_bytes() for path, file in FEEDS.values()}
    base = ""

    def answer(path: str) -> bytes | None:
        if path in served:
            return _dated_now(served[path], base)
        return PAGE.read_bytes() if path.startswith("/2026/") else None

    with feed_server(answer) as url:
        base = url
        yield url


def _setting_names() -> set[str]:
    return {s.env for s in SETTINGS} | set(SECRETS)


class User:
    """A new user at a shell in a fresh clone (`folder`)."""

    def __init__(self, folder: Path, feeds: str) -> None:
        self.folder, self.feeds = folder, feeds
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
        self.env["DIGEST_DELIVERY_BACKEND"] = "outbox"

    def run(self, number: int, line: str) -> None:
        where = f"README.md line {number}: `{line.strip()}`"
        argv = shlex.split(line, comments=True)
        if argv == [".", ".venv/bin/activate"]:
            self.env["PATH"] = f"{VENV_BIN}{os.pathsep}{self.env.get('PATH', '')}"
            found = shutil.which("digest", path=self.env["PATH"])
            assert found == str(VENV_BIN / "digest"), f"{where}: digest is {found}"
        elif argv and argv[0] == "export":
            # The provider's settings, shown for a real deployment: their names must be
            # settings digest reads; the walk-through keeps delivering to the outbox.
            for name in (word.split("=", 1)[0] for word in argv[1:]):
                assert name in _setting_names(), f"{where}: {name} is no digest setting"
        elif argv and argv[0] == "digest":
            self.digest(where, self.local(where, argv[1:]))
        else:
            pytest.fail(f"{where}: the test does not know this command; add a rule for "
                        "it to User.run in tests/test_readme.py")

    def local(self, where: str, args: list[str]) -> list[str]:
        """`args` with the user's values swapped for local ones."""
        args = [self.feeds + FEEDS[a][0] if a in FEEDS else a for a in args]
        for arg in args:
            if "://" in arg and not arg.startswith(self.feeds):
                pytest.fail(f"{where}: names {arg}, which the test cannot reach; add it "
                            "to FEEDS in tests/test_readme.py")
        if args[0] in LONG_RUNNING and "--once" not in args:
            args = [*args, "--help"]
        return args

    def digest(self, where: str, args: list[str]) -> None:
        option, typed = TYPED.get(tuple(args[:2]), ("", None))  # type: ignore[arg-type]
        if option and option not in args:
            args = [*args, option]
        if args[0] in SUBPROCESS:
            done = subprocess.run(["digest", *args], cwd=self.folder, env=self.env,
                                  input=typed, capture_output=True, text=True, timeout=60)
            code, output = done.returncode, done.stdout + done.stderr
        else:
            result = CliRunner().invoke(main, args, input=typed, env=self.env,
                                        prog_name="digest")
            code, output = result.exit_code, result.output
            if result.exception and not isinstance(result.exception, SystemExit):
                output += f"\nTraceback: {result.exception!r}"
        assert code == 0 and "Traceback" not in output, f"{where}: exit {code}\n{output}"


def _outbox(folder: Path) -> dict[str, list[email.message.EmailMessage]]:
    """The mails in the default Maildir outbox, by recipient."""
    mails: dict[str, list[email.message.EmailMessage]] = {}
    for path in sorted((folder / "var" / "outbox" / "new").iterdir()):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        mails.setdefault(msg["To"].addresses[0].addr_spec, []).append(msg)  # type: ignore[attr-defined]
    return mails


def walk_through(folder: Path, feeds: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command of README's "Using it", in a clone-like `folder`."""
    (folder / "config").mkdir(parents=True)
    shutil.copy(ROOT / "config" / "digest.toml", folder / "config" / "digest.toml")
    for name, text in FILES.items():
        (folder / name).write_text(text, encoding="utf-8")
    monkeypatch.chdir(folder)  # the commands run in this process find var/ here
    user = User(folder, feeds)
    for number, line in using_it(README):
        user.run(number, line)


def test_using_it_runs_as_written(
    tmp_path: Path, feeds: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    walk_through(tmp_path, feeds, monkeypatch)
    assert (tmp_path / "var" / "digest.db").exists()  # "create var/digest.db"
    preview = (tmp_path / "preview.html").read_text(encoding="utf-8")
    assert "Ferry timetable changes from Monday" in preview
    assert "The Morning Brief" in preview
    mails = _outbox(tmp_path)
    # ada is pending and gets a confirm mail; the test copy goes to you; the edition
    # to everyone imported as confirmed, once.
    (confirm,) = mails.pop("ada@example.org")
    assert "/confirm/" in mails_text(confirm)
    assert len(mails.pop("you@example.org")) == 1
    assert sorted(mails) == ["grace@example.org", "zoe@example.org"]
    for (msg,) in mails.values():
        assert msg["From"].addresses[0].addr_spec == "brief@news.example.org"
        text = mails_text(msg)
        assert "Ferry timetable changes from Monday" in text and "1 Harbour Road" in text


def mails_text(msg: email.message.EmailMessage) -> str:
    return str(msg.get_body(("plain",)).get_content())  # type: ignore[union-attr]


# Edits early in the walk-through, so each case stops within seconds.
@pytest.mark.parametrize(("old", "new", "expected"), [
    ("digest init", "digest setup", "No such command 'setup'"),
    ("--timezone Asia/Seoul", "--tz Asia/Seoul", "No such option '--tz'"),
    ("https://example.org/feed.xml", "https://example.net/feed.xml",
     "add it to FEEDS in tests/test_readme.py"),
])
def test_a_readme_naming_what_does_not_exist_fails(
    tmp_path: Path, feeds: str, monkeypatch: pytest.MonkeyPatch,
    old: str, new: str, expected: str,
) -> None:
    text = README.read_text(encoding="utf-8")
    assert old in text
    wrong = tmp_path / "README.md"
    wrong.write_text(text.replace(old, new, 1), encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "README", wrong)
    with pytest.raises((AssertionError, pytest.fail.Exception), match=re.escape(expected)):
        walk_through(tmp_path / "clone", feeds, monkeypatch)
