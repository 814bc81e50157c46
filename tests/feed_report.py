"""What the real CLI makes of the feed corpus: `.venv/bin/python -m tests.feed_report [DIR]`.

Every feed of DIR (default ../shared/corpora/feeds, else tests/data/feeds) is served on a
loopback HTTP server; `digest` itself, in its own processes on a temporary SQLite
database, creates a list, adds each feed as a source, fetches them all and drafts an
edition. The figures
are then read from the database: feeds with articles, articles, undated articles and how
each was handled (backlog: found on the source's first fetch, never offered by itself;
new: offered), duplicates merged (edition items naming two sources; articles of two
sources sharing a link key) and every feed's error. It asserts nothing: the figures are
for the issue's note, and move as gathering and selection change.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote

from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from digest.gather.sources import source_label
from digest.models import Article, Edition, EditionItem, Source
from digest.stories import headline_key, same_headline
from tests.loopback import feed_server
from tests.test_serve import environment as serve_environment

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "feeds"
FALLBACK = Path(__file__).resolve().parent / "data" / "feeds"
LIST = "corpus"


def feeds_folder(argv: list[str]) -> Path:
    if argv:
        return Path(argv[0]).resolve()
    return CORPUS if CORPUS.is_dir() else FALLBACK


def feed_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name != "MANIFEST.tsv")


def serve(folder: Path) -> Callable[[str], bytes | None]:
    """The answer of a loopback server for the folder's files: a file's bytes, else None."""

    def answer(path: str) -> bytes | None:
        found = folder / unquote(path.lstrip("/").split("?")[0])
        return found.read_bytes() if found.parent == folder and found.is_file() else None

    return answer


def environment(work: Path) -> dict[str, str]:
    # The corpus is years old: an edition reaches back far enough for all of it.
    return serve_environment(work, DIGEST_EDITION_WINDOW_HOURS=str(24 * 365 * 30))


def digest(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "digest", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600, check=False)


def run_cli(files: list[Path], base: str, work: Path) -> tuple[dict[str, str], str]:
    """Init, a list, every feed added, one fetch, one draft: (add errors by file, draft)."""
    env = environment(work)
    for args in (["init"], ["lists", "create", LIST, "--from", "Corpus <c@news.example.org>"]):
        done = digest(env, work, *args)
        if done.returncode:
            sys.exit(f"digest {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    refused = {}
    for path in files:
        done = digest(env, work, "sources", "add", f"{base}/{path.name}", "--list", LIST)
        if done.returncode:
            refused[path.name] = (done.stderr or done.stdout).strip()
    fetched = digest(env, work, "fetch", "--allow-failures")
    if fetched.returncode:
        print(f"digest fetch ended with {fetched.returncode}:\n{fetched.stderr}")
    drafted = digest(env, work, "edition", "build", "--list", LIST)
    # What it says, without the table of items (read from the database below).
    said = [line for line in (drafted.stdout + drafted.stderr).splitlines()
            if line.strip() and not any(c in line for c in "┏┃┡│└╇━─")]
    # Then send it, and the editions after it, until no story is left: every story
    # once, none lost (what is held over goes next).
    digest(env, work, "subscribers", "add", "reader@example.org", "--list", LIST,
           "--confirmed")
    for _edition in range(50):
        sent = digest(env, work, "edition", "send", "--list", LIST)
        if sent.returncode:
            print(f"digest edition send ended with {sent.returncode}:\n{sent.stderr[-2000:]}")
        if sent.returncode or "nothing to send" in sent.stdout or \
                "nothing new to send" in sent.stdout:
            break
    return refused, " ".join(" ".join(said).split())


def report(files: list[Path], work: Path, refused: dict[str, str], drafted: str) -> None:
    engine = create_engine(f"sqlite:///{work}/digest.db")
    with Session(engine) as s:
        sources = {src.id: src for src in s.scalars(select(Source))}
        name_of = {sid: src.url.rsplit("/", 1)[-1] for sid, src in sources.items()}
        articles = list(s.scalars(select(Article)))
        editions = list(s.scalars(select(Edition).where(Edition.number > 0)
                                  .order_by(Edition.number)))
        edition = editions[0] if editions else None
        items = list(edition.items) if edition else []
        in_edition = {i.article_id for i in items if i.article_id is not None}
        all_items = [i for e in editions for i in e.items]

        per_feed: dict[int, Counter[str]] = defaultdict(Counter)
        for a in articles:
            c = per_feed[a.source_id]
            c["articles"] += 1
            if not a.date_from_feed:
                c["undated"] += 1
                c["backlog" if a.backlog else "undated, new"] += 1
                c["undated, in edition"] += a.id in in_edition
            c["in edition"] += a.id in in_edition

        print(f"Feeds: {folder_name(files)}, {len(files)} files served on loopback\n")
        print(f"{'feed':44} {'articles':>8} {'undated':>7} {'backlog':>7} {'in ed.':>6}  error")
        for sid in sorted(sources, key=lambda i: name_of[i]):
            c, src = per_feed[sid], sources[sid]
            print(f"{name_of[sid][:44]:44} {c['articles']:8} {c['undated']:7} "
                  f"{c['backlog']:7} {c['in edition']:6}  {src.last_error}")
        with_articles = sum(1 for sid in sources if per_feed[sid]["articles"])
        undated = [a for a in articles if not a.date_from_feed]
        print()
        print(f"Feeds with articles: {with_articles} / {len(files)} "
              f"({len(sources)} added as sources)")
        print(f"Articles: {len(articles)}")
        print(f"Undated articles: {len(undated)}: "
              f"{sum(a.backlog for a in undated)} kept as backlog (first fetch, not offered), "
              f"{sum(not a.backlog for a in undated)} new; "
              f"{sum(a.id in in_edition for a in undated)} in the edition, "
              f"{sum(i.dated is False for i in items)} edition items shown without a date")
        print(f"Edition: {drafted}")
        if edition:
            briefs = sum(bool(i.brief) for i in items)
            print(f"  #{edition.number}: {len(items)} items, {len(items) - briefs} in full, "
                  f"{briefs} as headlines")
        print_sent(s, editions, articles, all_items)
        print_duplicates(s, sources, all_items)
        errors = {name_of[sid]: src.last_error for sid, src in sources.items()
                  if src.last_error}
        print(f"\nFeed errors: {len(errors) + len(refused)}")
        for name, error in sorted({**refused, **errors}.items()):
            print(f"  {name}: {error}")


def print_sent(s: Session, editions: list[Edition], articles: list[Article],
               items: list[EditionItem]) -> None:
    """Every edition sent until none was left: the stories in them, any story in two,
    and any article neither mailed nor the twin of one mailed nor backlog (lost)."""
    sent = [e for e in editions if e.status == "sent"]
    mailed = {i.article_id for i in items}
    # A page mailed by two sources is a story told twice; one source's two posts at one
    # link (a sponsor post and the post it links to) are two stories.
    sources_of: dict[str, set[int]] = defaultdict(set)
    for a in articles:
        if a.id in mailed and a.link_key:
            sources_of[f"{a.link_key}#{a.link.partition('#')[2]}"].add(a.source_id)
    twice = [k for k, ids in sources_of.items() if len(ids) > 1]
    same = sum(1 for a in articles if a.id in mailed and a.link_key) - len(sources_of)
    by_key = {a.link_key for a in articles if a.id in mailed and a.link_key}
    left = [a for a in articles if a.id not in mailed and not a.backlog]
    twins = [a for a in left if a.link_key in by_key]
    told = [(a.title, a.source_id) for a in articles if a.id in mailed]
    alike = [a for a in left if a not in twins and any(
        source != a.source_id and (same_headline(a.title, title)
                                   or headline_key(a.title) == headline_key(title))
        for title, source in told)]
    lost = [a for a in left if a not in twins and a not in alike]
    # The same headline mailed from two sources under two links is a story told twice
    # too (a site's Atom and JSON feeds link one post differently).
    headed: dict[str, set[int]] = defaultdict(set)
    for title, source in told:
        if headline_key(title):
            headed[headline_key(title)].add(source)
    retold = [h for h, ids in headed.items() if len(ids) > 1]
    print(f"Sent until none was left: {len(sent)} editions, {len(items)} items "
          f"({sum(not i.brief for i in items)} in full, {sum(bool(i.brief) for i in items)} "
          f"as headlines); {len(twice)} pages mailed by two sources ({same} more posts "
          f"of one source at a page it linked before); of the {len(left)} articles "
          f"not mailed and not backlog, {len(twins)} are twins of a mailed page, "
          f"{len(alike)} told under the same headline by another source, and {len(lost)} "
          f"neither; {len(retold)} headlines mailed by two sources")
    for a in lost[:10]:
        print(f"  not mailed: {a.title[:70]!r} ({a.link[:80]})")
    for key in twice[:10]:
        print(f"  mailed by two sources: {key[:80]}")
    for headline in retold[:10]:
        print(f"  headline mailed by two sources: {headline[:80]!r}")


def print_duplicates(s: Session, sources: dict[int, Source], items: list[EditionItem]) -> None:
    """Edition items that name two sources; articles of two sources sharing a link key."""
    labels = {source_label(src) for src in sources.values() if source_label(src)}
    # digest.stories names every source of a story, " · " between them (a source's own
    # title may hold " · " too: then it is one name).
    merged = [i for i in items if i.source_title not in labels
              and len(i.source_title.split(" · ")) > 1]
    shared = s.execute(
        select(Article.link_key, func.count())
        .where(Article.link_key != "")
        .group_by(Article.link_key)
        .having(func.count(func.distinct(Article.source_id)) > 1)
    ).all()
    print(f"Duplicates merged: {len(merged)} edition items name two or more sources; "
          f"{len(shared)} link keys are shared across sources "
          f"({sum(n for _, n in shared)} articles)")
    for item in merged[:10]:
        print(f"  item {item.title[:60]!r}: {item.source_title}")
    for key, _ in shared[:10]:
        names = sorted({sources[a.source_id].url.rsplit("/", 1)[-1] for a in s.scalars(
            select(Article).where(Article.link_key == key))})
        print(f"  link key {key[:70]}: {', '.join(names)}")


def folder_name(files: list[Path]) -> str:
    return str(files[0].parent) if files else "(none)"


def main() -> None:
    folder = feeds_folder(sys.argv[1:])
    files = feed_files(folder)
    with tempfile.TemporaryDirectory(prefix="digest-feed-report-") as tmp, \
            feed_server(serve(folder)) as base:
        work = Path(tmp)
        refused, drafted = run_cli(files, base, work)
        report(files, work, refused, drafted)


if __name__ == "__main__":
    main()
