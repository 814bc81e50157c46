"""Issue 14's acceptance: every `digest` command, found by walking the command tree (so a
command added later is covered without a line here), answers --help, refuses an unknown
option as bad usage, and refuses a list, source, edition, address... that does not exist
with one `Error: ` line, exit status 1, no traceback and nothing written."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from digest.cli import main
from tests.test_cli_contract import FEED

Path_ = tuple[str, ...]

#: Commands that serve or run until stopped: only --help and an unknown option.
LONG_RUNNING = {("serve",), ("worker",), ("demo",)}

#: Commands whose argument names something to create or an outside resource, not a
#: stored thing that could be missing; each says why it gets no "nonexistent" case.
NOT_A_STORED_THING = {
    ("backup",): "PATH is where the backup is written",
    ("check-dns",): "--domain is looked up in the DNS, over the network",
    ("inbound",): "FILES are mail from outside, each answered in the table it prints",
    ("lists", "create"): "NAME is the new list's",
    ("suppress", "add"): "EMAIL is the address to suppress, stored or not",
    ("suppress", "domain"): "DOMAIN is the domain to block",
    ("users", "add"): "EMAIL is the new user's",
}

#: What a command needs besides its arguments to get as far as looking the thing up:
#: without a change to make, a `set` is bad usage (exit 2) before anything is read.
TO_CHANGE = {
    ("lists", "set"): ["--title", "T"],
    ("sources", "set"): ["--full-text"],
    ("users", "set"): ["--name", "N"],
}

#: What to give a parameter of this name: something that is not there.
MISSING = {
    "list_name": "no-such-list", "name": "no-such-list", "old": "no-such-list",
    "new": "another-name", "email": "nobody@example.org", "to": "nobody@example.org",
    "id_or_url": "999", "number": "999", "token_id": "999", "domain": "no-such.example",
    "url": "https://example.org/no-such-feed.xml", "assignments": "key=value",
    "tags": "sometag", "output": "out.html", "path": "no-such-file", "files": "empty.eml",
    "file": "empty.csv",
}


def commands(group: click.Group = main, path: Path_ = ()) -> Iterator[tuple[Path_,
                                                                            click.Command]]:
    for name, command in sorted(group.commands.items()):
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))


ALL = dict(commands())


def named(path: Path_) -> str:
    return " ".join(path)


def naming_a_thing(command: click.Command) -> bool:
    return not isinstance(command, click.Group) and any(
        isinstance(p, click.Argument) or p.required for p in command.params)


def missing_args(command: click.Command) -> list[str]:
    """The command's arguments and required options (and --list, where it takes one),
    each given something that does not exist."""
    args: list[str] = []
    for p in command.params:
        if not (isinstance(p, click.Argument) or p.required or p.name == "list_name"):
            continue
        assert p.name is not None
        value = MISSING.get(p.name) or _by_type(p)
        if isinstance(p, click.Option):
            args += [p.opts[0], value]
        else:
            args.append(value)
    return args


def _by_type(p: click.Parameter) -> str:
    if isinstance(p.type, click.Choice):
        return str(p.type.choices[0])
    if isinstance(p.type, (click.types.IntParamType, click.types.IntRange)):
        return "999"
    if isinstance(p.type, click.Path) and p.type.exists:
        return "empty.csv"  # there, so the missing thing is what is named, not a file
    return "no-such-thing"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with a list, a source, its articles and a subscriber."""
    tmp = tmp_path_factory.mktemp("every")
    here = os.getcwd()
    os.chdir(tmp)
    try:
        runner = CliRunner(env=ENV)
        for args in (["init"], ["lists", "create", "morning", "--from", "m@news.example.org"],
                     ["sources", "add", str(FEED), "--list", "morning"], ["fetch"],
                     ["subscribers", "add", "ada@example.org", "--list", "morning",
                      "--confirmed"]):
            r = runner.invoke(main, args, catch_exceptions=False)
            assert r.exit_code == 0, r.output
    finally:
        os.chdir(here)
    (tmp / "empty.csv").write_text("email\n")
    (tmp / "empty.eml").write_text("")
    return tmp


ENV = {"DIGEST_CONFIG": None, "DIGEST_DATABASE_URL": None, "DIGEST_DELIVERY_BACKEND": None,
       "DIGEST_PUBLIC_URL": "https://news.example.org",
       "DIGEST_EDITION_WINDOW_HOURS": str(24 * 365 * 30)}


@pytest.fixture
def run(folder: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(folder)
    runner = CliRunner(env=ENV)

    def invoke(*args: str) -> Result:
        return runner.invoke(main, list(args), input="")

    return invoke


def database(folder: Path) -> list[str]:
    with sqlite3.connect(folder / "var" / "digest.db") as con:
        return list(con.iterdump())


def no_traceback(r: Result) -> None:
    assert "Traceback" not in r.output, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)


@pytest.mark.parametrize("path", list(ALL), ids=named)
def test_help(run, path: Path_) -> None:  # type: ignore[no-untyped-def]
    r = run(*path, "--help")
    assert r.exit_code == 0, r.output
    assert r.output.startswith(f"Usage: main {named(path)} "), r.output
    assert ALL[path].help, f"`digest {named(path)}` has no help text"
    no_traceback(r)


@pytest.mark.parametrize("path", list(ALL), ids=named)
def test_an_unknown_option_is_bad_usage(run, folder: Path, path: Path_) -> None:  # type: ignore[no-untyped-def]
    before = database(folder)
    r = run(*path, "--no-such-option")
    assert r.exit_code == 2, r.output
    assert "Error: No such option '--no-such-option'" in r.output, r.output
    no_traceback(r)
    assert database(folder) == before


@pytest.mark.parametrize("path", [p for p, c in ALL.items() if naming_a_thing(c)
                                  and p not in LONG_RUNNING], ids=named)
def test_a_thing_that_does_not_exist_is_an_error(run, folder: Path, path: Path_) -> None:  # type: ignore[no-untyped-def]
    if path in NOT_A_STORED_THING:
        pytest.skip(NOT_A_STORED_THING[path])
    args = missing_args(ALL[path]) + TO_CHANGE.get(path, [])
    before = database(folder)
    r = run(*path, *args)
    shown = f"digest {named(path)} {' '.join(args)}:\n{r.output}"
    assert r.exit_code == 1, shown
    errors = [line for line in r.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, shown
    no_traceback(r)
    assert database(folder) == before, shown


def test_the_exemptions_are_commands_there_are() -> None:
    assert set(NOT_A_STORED_THING) | LONG_RUNNING | set(TO_CHANGE) <= set(ALL)
