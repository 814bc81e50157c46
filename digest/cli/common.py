"""Shared pieces of the CLI: the error-handling group, --config, progress, output."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.measure import Measurement
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from sqlalchemy import exc as sa_exc

from digest.app import App
from digest.config import load
from digest.db import require_database_file, scrubbed, shown_url
from digest.errors import DigestError
from digest.logs import configure_from
from digest.migrations import require_current

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)
log = logging.getLogger("digest.cli")
F = TypeVar("F", bound=Callable[..., Any])


class Interrupted(click.ClickException):
    """Ctrl-C: `Error: interrupted (Ctrl-C)…` and exit status 130, as shells report a
    program stopped by SIGINT; `said` tells what of the command's work is kept."""

    exit_code = 130

    def __init__(self, said: str = "") -> None:
        super().__init__("interrupted (Ctrl-C)" + (f"; {said}" if said else ""))


def on_interrupt(said: str) -> Callable[[F], F]:
    """Ctrl-C during the command says `said`: what it kept, and how to go on."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except KeyboardInterrupt:
                raise Interrupted(said) from None

        return wrapper  # type: ignore[return-value]

    return decorate


class DigestGroup(click.Group):
    """Turns every DigestError into `Error: …` on stderr and exit status 1, and Ctrl-C
    into `Error: interrupted (Ctrl-C)` and 130 (click alone says only "Aborted!")."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise Interrupted() from None
        except DigestError as exc:
            raise click.ClickException(str(exc)) from None
        except (sa_exc.OperationalError, sa_exc.ProgrammingError) as exc:
            raise click.ClickException(_db_hint(exc)) from None
        except sa_exc.DatabaseError as exc:
            if "file is not a database" not in str(exc.orig):
                raise
            raise click.ClickException(_db_hint(exc)) from None


def _db_hint(exc: sa_exc.DBAPIError) -> str:
    # A driver may quote the URL, password and all; libpq adds a tab-indented line.
    text = " ".join(scrubbed(str(exc.orig)).split())
    if "file is not a database" in text:
        ctx = click.get_current_context(silent=True)
        url = ctx.meta.get("database_url", "") if ctx else ""
        return (f"{url or 'the database file'} is not a SQLite database (another kind of "
                "file, or damaged): point [database] url / DIGEST_DATABASE_URL at digest's "
                "own database, or at a new file for `digest init` to make")
    if "no such table" in text or ("relation" in text and "does not exist" in text):
        return (f"a table is missing from the database ({text}); run `digest init` to "
                "create or upgrade its tables")
    return f"database error: {text}; check [database] url / DIGEST_DATABASE_URL"


def with_app(fn: F) -> F:
    """Adds --config to a command and passes it a ready App as first argument, once the
    database's schema is found current (else `Error:` saying to run `digest init`)."""
    return _with_app(fn, schema=True)


def with_new_app(fn: F) -> F:
    """`with_app` for `digest init`: the database may have no schema yet."""
    return _with_app(fn, schema=False)


#: `--config`, taken before the command name (`digest --config F status`) and after it.
config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False),
    help="Settings file (default config/digest.toml, or $DIGEST_CONFIG); relative paths "
         "in it are taken from its folder.")


def chosen_config(config_path: str | None) -> str | None:
    """The command's own --config, else the one given before the command name."""
    if config_path is not None:
        return config_path
    ctx = click.get_current_context(silent=True)
    return ctx.find_root().params.get("config_path") if ctx else None


def _with_app(fn: F, *, schema: bool) -> F:
    @config_option
    @functools.wraps(fn)
    def wrapper(config_path: str | None, **kwargs: Any) -> Any:
        app = App(load(chosen_config(config_path)))
        configure_from(app.settings, command=True)  # [logging] format; warnings and up
        for name, like in app.settings.unknown_env():
            err.print(f"Warning: {name} is not a setting digest knows, so it changes "
                      f"nothing{f'; did you mean {like}?' if like else '.'}", markup=False,
                      soft_wrap=True)
        # For a database error's message (DigestGroup), with no password in it.
        click.get_current_context().meta["database_url"] = shown_url(
            app.settings["database.url"])
        try:
            if schema:
                require_database_file(app.settings["database.url"])
                require_current(app.engine)
            return fn(app, **kwargs)
        finally:
            app.close()

    return wrapper  # type: ignore[return-value]


@contextmanager
def progress_bar(label: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr; yields `advance(n)`."""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, transient=False,
                  disable=not err.is_terminal) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)




def when(value: dt.datetime | None) -> str:
    """A time for tables: UTC, to the minute, or "never"."""
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "never"


def counted(n: int, noun: str, nouns: str = "") -> str:
    """"1 source", "2 sources" ("1 article page", "3 article pages")."""
    return f"{n} {noun}" if n == 1 else f"{n} {nouns or noun + 's'}"


def say(text: str) -> None:
    """A message with data in it: printed as is (no rich markup, no hard line breaks)."""
    out.print(text, markup=False, soft_wrap=True)


def add_row(table: Table, *cells: str) -> None:
    """A row of data: shown as is. A feed title or an error that holds "[gather]" or
    "[bold]" is text, not rich markup that would vanish or restyle the table."""
    table.add_row(*(Text(cell) for cell in cells))


def print_table(table: Table) -> None:
    """A table; at its natural width when output goes to a pipe or file, where rich
    would otherwise cut it to 80 columns and addresses to "verylonga…"."""
    if out.is_terminal:
        out.print(table)
        return
    natural = Measurement.get(out, out.options.update_width(100_000), table).maximum
    Console(file=out.file, width=max(natural, out.width), highlight=False).print(table)


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set `stop`; a second signal interrupts (KeyboardInterrupt)."""

    def handle(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        log.info("%s: finishing the messages in flight", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
