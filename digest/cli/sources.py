"""`digest sources …` and `digest fetch`."""

from __future__ import annotations

import click
from rich.table import Column, Table
from sqlalchemy import func, select

from digest.app import App
from digest.cli.common import add_row, out, print_table, progress_bar, when, with_app
from digest.gather.sources import BUSY, SourceReport, add_source, source_label
from digest.models import Article, ListSource, Source
from subscribers.lists import get_list


@click.group()
def sources() -> None:
    """Feeds that supply a list's articles."""


@sources.command("add")
@click.argument("url")
@click.option("--list", "list_name", required=True, help="The list this source feeds.")
@click.option("--full-text", is_flag=True,
              help="Fetch each new article's page and keep its full text, not the feed's.")
@with_app
def sources_add(app: App, url: str, list_name: str, full_text: bool) -> None:
    """Add a feed (an http(s) URL or a local file) to a list."""
    with app.sessions() as s:
        mlist = get_list(s, list_name)
        source, attached = add_source(s, url, mlist, full_text=full_text, allow_files=True)
        s.commit()
        verb = "Added" if attached else "Already there:"
        out.print(f"{verb} source {source.id} {source.url} → list {mlist.name}")
        if source.full_text:
            out.print("It fetches the full text of each new article from its page.")


@sources.command("ls")
@with_app
def sources_ls(app: App) -> None:
    """Sources with their health: last fetch, last error, article count."""
    with app.sessions() as s:
        articles = dict(s.execute(
            select(Article.source_id, func.count()).group_by(Article.source_id)
        ).all())
        lists_of = dict(s.execute(
            select(ListSource.source_id, func.count()).group_by(ListSource.source_id)
        ).all())
        table = Table("id", Column("source", overflow="fold"), "lists", "articles",
                      "last success", "failures", Column("last error", overflow="fold"))
        for src in s.scalars(select(Source).order_by(Source.id)):
            # The whole URL, under the title: folded onto more lines in a narrow
            # terminal, never cut or ellipsized (it is what `sources add` was given).
            label = source_label(src)
            add_row(table,
                str(src.id), src.url if label == src.url else f"{label}\n{src.url}",
                str(lists_of.get(src.id, 0)), str(articles.get(src.id, 0)),
                when(src.last_success_at), str(src.consecutive_failures),
                src.last_error or "",
            )
        print_table(table)


@click.command()
@click.option("--source", "source_id", type=int, help="Fetch only this source (see sources ls).")
@click.option("--allow-failures", is_flag=True,
              help="Exit 0 even when some sources failed (they are still reported).")
@with_app
def fetch(app: App, source_id: int | None, allow_failures: bool) -> None:
    """Gather new articles from every source.

    Exits 1 when any source failed, so cron and scripts can tell, unless
    --allow-failures; what the other sources brought is kept either way."""
    with app.sessions() as s:
        total = 1 if source_id else s.scalar(select(func.count()).select_from(Source)) or 0
        with progress_bar("Fetching", total) as advance:
            reports = app.fetch(s, source_id, allow_files=True, progress=lambda _r: advance(1))
    print_fetch_summary(reports)
    failed = sum(r.status == "error" for r in reports)
    if failed and not allow_failures:
        raise click.ClickException(
            f"{failed} of {_sources(len(reports))} failed (their errors are in the table "
            "above and in `digest sources ls`); the articles of the others are kept. Fix "
            "or remove the failing ones (`digest sources rm ID`), or pass --allow-failures "
            "to exit 0 when some fail")


def _sources(n: int) -> str:
    return f"{n} source" if n == 1 else f"{n} sources"


def print_fetch_summary(reports: list[SourceReport]) -> None:
    """A table of what each source brought, and a one-line total."""
    table = Table(Column("source", overflow="fold"), "status", "new", "in feed",
                  Column("error or note", overflow="fold"))
    for r in reports:
        add_row(table, r.url, r.status, str(r.new), str(r.seen), r.note)
    print_table(table)
    errors = sum(r.status == "error" for r in reports)
    busy = sum(r.status == BUSY for r in reports)
    new = sum(r.new for r in reports)
    backlog = sum(r.backlog for r in reports)
    undated = f" ({backlog} undated on a first fetch: not offered)" if backlog else ""
    skipped = f", {busy} skipped: being fetched elsewhere" if busy else ""
    out.print(f"{new} new articles from {_sources(len(reports))}{undated}, {errors} failed"
              f"{skipped}.")
    kept = sum(r.pages_failed for r in reports)
    if kept:
        out.print(f"{kept} article pages could not be read; those articles keep the "
                  "feed's text.")
