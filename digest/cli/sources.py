"""`digest sources …` and `digest fetch`."""

from __future__ import annotations

import click
from rich.table import Column, Table
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.app import App
from digest.cli.common import (
    add_row,
    counted,
    err,
    on_interrupt,
    out,
    print_table,
    progress_bar,
    say,
    when,
    with_app,
)
from digest.errors import FetchError, InvalidInput, NotFound
from digest.gather.fetch import Unreachable
from digest.gather.sources import (
    BUSY,
    FeedCheck,
    SourceReport,
    add_source,
    check_feed,
    normalize_source_url,
    remove_source,
    source_label,
)
from digest.models import Article, ListSource, Source
from subscribers.lists import get_list
from subscribers.models import MailingList


@click.group()
def sources() -> None:
    """Feeds that supply a list's articles."""


@sources.command("add")
@click.argument("url")
@click.option("--list", "list_name", required=True, help="The list this source feeds.")
@click.option("--full-text", is_flag=True,
              help="Fetch each new article's page and keep its full text, not the feed's.")
@click.option("--check/--no-check", default=True, show_default=True,
              help="Fetch the URL once first and add it only if it is a feed (added "
                   "unchecked when the network does not answer).")
@with_app
def sources_add(app: App, url: str, list_name: str, full_text: bool, check: bool) -> None:
    """Add a feed (an http(s) URL or a local file) to a list.

    Example: digest sources add https://example.org/feed.xml --list news
    """
    with app.sessions() as s:
        mlist = get_list(s, list_name)
        url = normalize_source_url(url, allow_files=True)
        found = _check(app, url) if check else None
        source, attached = add_source(s, url, mlist, full_text=full_text, allow_files=True)
        s.commit()
        verb = "Added" if attached else "Already there:"
        said = f"{verb} source {source.id} {source.url} → list {mlist.name}"
        say(f"{said}: {_described(found)}." if found else said)
        if source.full_text:
            out.print("It fetches the full text of each new article from its page.")


def _check(app: App, url: str) -> FeedCheck | None:
    """What the feed at `url` is; None, with a warning, when the network does not answer
    (it is added unchecked); an error when something answered that is no feed."""
    try:
        return check_feed(app.http, url, app.fetch_options(allow_files=True), app.clock())
    except Unreachable as exc:
        err.print(f"Warning: could not reach {url} ({exc}); added unchecked: `digest "
                  "fetch` will try it.", markup=False, soft_wrap=True)
        return None
    except FetchError as exc:
        raise FetchError(f"{url} is not a feed: {exc}; or pass --no-check to add it "
                         "anyway") from None


def _described(found: FeedCheck) -> str:
    """'RSS feed “Harbour Gazette”, 24 entries, newest 2026-12-06'."""
    title = f"“{found.title}”" if found.title else "(untitled)"
    entries = "1 entry" if found.entries == 1 else f"{found.entries} entries"
    newest = f", newest {found.newest:%Y-%m-%d}" if found.newest else ""
    return f"{found.format or 'a'} feed {title}, {entries}{newest}"


@sources.command("ls")
@with_app
def sources_ls(app: App) -> None:
    """Sources with their health: last fetch, last error, article count; a paused one
    says "paused" where its error goes."""
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
                "; ".join(filter(None, ("paused" if src.paused else "", src.last_error))),
            )
        print_table(table)


def find_source(s: Session, id_or_url: str) -> Source:
    """The source numbered `id_or_url` (as `sources ls` shows), or at that URL."""
    source = s.get(Source, int(id_or_url)) if id_or_url.isdigit() else None
    if source is None and not id_or_url.isdigit():
        source = s.scalar(select(Source).where(Source.url == id_or_url.strip()))
        if source is None:
            try:
                url = normalize_source_url(id_or_url, allow_files=True)
            except InvalidInput:
                url = ""
            source = s.scalar(select(Source).where(Source.url == url)) if url else None
    if source is None:
        raise NotFound(f"no source {id_or_url!r}; `digest sources ls` lists them with "
                       "their numbers and URLs")
    return source


def _list_names(s: Session, source: Source) -> str:
    names = s.scalars(select(MailingList.name).join(
        ListSource, ListSource.list_id == MailingList.id
    ).where(ListSource.source_id == source.id).order_by(MailingList.name)).all()
    return ", ".join(names) or "no list"


_id_or_url = click.argument("id_or_url", metavar="ID_OR_URL")


@sources.command("rm")
@_id_or_url
@with_app
def sources_rm(app: App, id_or_url: str) -> None:
    """Remove a source, its links to lists and its articles, as the console's Remove
    does. Editions already built, drafts too, keep their copies of its stories.

    Example: digest sources rm 3   (or: digest sources rm https://example.org/feed.xml)
    """
    with app.sessions() as s:
        source = find_source(s, id_or_url)
        articles = s.scalar(select(func.count()).select_from(Article)
                            .where(Article.source_id == source.id)) or 0
        lists_of, number, url = _list_names(s, source), source.id, source.url
        remove_source(s, number)
        s.commit()
    say(f"Removed source {number} {url}, with its {articles} articles (it fed: "
        f"{lists_of}). `digest sources add` brings it back, without the old articles.")


@sources.command("set")
@_id_or_url
@click.option("--full-text/--no-full-text", "full_text", default=None,
              help="Fetch each new article's page and keep its full text, or keep the "
                   "feed's text.")
@with_app
def sources_set(app: App, id_or_url: str, full_text: bool | None) -> None:
    """Change a source's settings (today: whether it fetches full text). How often
    sources are fetched is one setting for all, [schedule] in the config file.

    Example: digest sources set 3 --full-text
    """
    if full_text is None:
        raise click.UsageError("nothing to change; give --full-text or --no-full-text")
    with app.sessions() as s:
        source = find_source(s, id_or_url)
        if source.full_text == full_text:
            say(f"No change: source {source.id} {source.url} "
                f"{'fetches' if full_text else 'does not fetch'} full text already.")
            return
        source.full_text = full_text
        s.commit()
        say(f"Source {source.id} {source.url} now "
            + ("fetches the full text of each new article from its page." if full_text
               else "keeps the feed's text of each new article."))


def _pause(app: App, id_or_url: str, paused: bool) -> None:
    with app.sessions() as s:
        source = find_source(s, id_or_url)
        number, url = source.id, source.url
        if source.paused == paused:
            say(f"No change: source {number} {url} is "
                f"{'paused' if paused else 'not paused'} already.")
            return
        source.paused = paused
        s.commit()
    if paused:
        say(f"Paused source {number} {url}: no fetch takes it, its articles stay. "
            f"`digest sources resume {number}` fetches it again.")
    else:
        say(f"Resumed source {number} {url}: the next fetch takes it again.")


@sources.command("pause")
@_id_or_url
@with_app
def sources_pause(app: App, id_or_url: str) -> None:
    """Stop fetching a source (by `digest fetch` and the scheduler) until resumed; its
    articles and list links are kept.

    Example: digest sources pause 3
    """
    _pause(app, id_or_url, True)


@sources.command("resume")
@_id_or_url
@with_app
def sources_resume(app: App, id_or_url: str) -> None:
    """Fetch a paused source again, from the next fetch on.

    Example: digest sources resume 3
    """
    _pause(app, id_or_url, False)


@click.command()
@click.option("--source", "source_id", type=int, help="Fetch only this source (see sources ls).")
@click.option("--allow-failures", is_flag=True,
              help="Exit 0 even when some sources failed (they are still reported).")
@with_app
@on_interrupt("the sources fetched before it keep their new articles; the one being "
              "fetched got nothing and is fetched again next time")
def fetch(app: App, source_id: int | None, allow_failures: bool) -> None:
    """Gather new articles from every source.

    Exits 1 when any source failed, so cron and scripts can tell, unless
    --allow-failures; what the other sources brought is kept either way."""
    with app.sessions() as s:
        if source_id is not None and (one := s.get(Source, source_id)) and one.paused:
            raise InvalidInput(f"source {source_id} is paused; `digest sources resume "
                               f"{source_id}` lets it be fetched again")
        total = 1 if source_id else s.scalar(
            select(func.count()).select_from(Source).where(Source.paused.is_(False))) or 0
        with progress_bar("Fetching", total) as advance:
            reports = app.fetch(s, source_id, allow_files=True, progress=lambda _r: advance(1))
    print_fetch_summary(reports)
    failed = sum(r.status == "error" for r in reports)
    if failed and not allow_failures:
        raise click.ClickException(
            f"{failed} of {counted(len(reports), 'source')} failed (their errors are in the table "
            "above and in `digest sources ls`); the articles of the others are kept. Fix "
            "or remove the failing ones (`digest sources rm ID`), or pass --allow-failures "
            "to exit 0 when some fail")


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
    out.print(f"{counted(new, 'new article')} from {counted(len(reports), 'source')}"
              f"{undated}, {errors} failed"
              f"{skipped}.")
    kept = sum(r.pages_failed for r in reports)
    if kept:
        out.print(f"{counted(kept, 'article page')} could not be read; "
                  f"{'that article keeps' if kept == 1 else 'those articles keep'} the "
                  "feed's text.")
