"""`make bench`: how fast each step is on this machine. Prints a table; asserts nothing.

    python -m tests.bench [--subscribers 10000] [--sink auto|smtp-sink|aiosmtpd]
                          [--import-rows 1000000]

Steps: parsing the test feeds, extracting the full text of the 44 article pages
(tests/data/articles; mean and minimum token F1 against the benchmark's text and the
worst pages), rendering an edition (Jinja2 + premailer, once per
edition), building one message (per subscriber; with and without a DKIM signature, in
the same run), the editor's desk page of a draft with
200 proposed articles (GET through the whole web app, logged in; the target is 200 ms),
and `digest edition send` to a loopback SMTP server for N subscribers, run as the real
command in a subprocess, and importing a CSV of a million rows twice
(tests/bench_import.py). The sink is
Postfix's `smtp-sink` (C, fast: it measures us, not the server) when installed, else an
aiosmtpd server in another process (which tops out near 1,100 messages/s by itself).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
results: list[tuple[str, str, str]] = []
#: The same figures for var/bench/results.json, by step.
figures: dict[str, Any] = {}
#: Issue 13's targets for the send: a share of smtp-source's rate, and a floor.
SEND_TARGET_RATIO = 0.6
SEND_TARGET_RATE = 3000


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median seconds of `repeat` runs of fn."""
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def bench_feeds() -> None:
    from digest.errors import FetchError
    from digest.gather.feeds import parse_feed

    files = sorted((DATA / "feeds").glob("*.*"))
    files = [f for f in files if f.suffix in (".xml", ".json", ".atom", ".rss", ".rdf")]
    entries = 0

    def run() -> None:
        nonlocal entries
        entries = 0
        for f in files:
            try:
                entries += len(parse_feed(f.read_bytes(), f.as_uri()).entries)
            except FetchError:  # the corpus holds deliberately broken feeds
                continue

    seconds = timed(run, 3)
    results.append(("parse feeds", f"{len(files)} feeds, {entries} entries",
                    f"{seconds * 1000:.0f} ms ({entries / seconds:,.0f} entries/s)"))


def bench_extract() -> None:
    """Full-text extraction on the article corpus: token F1 against its ground truth."""
    from tests.gather.test_extract import corpus, corpus_scores

    t0 = time.perf_counter()
    scores = corpus_scores()
    per_page = (time.perf_counter() - t0) / len(corpus())
    mean = sum(scores.values()) / len(scores)
    worst = sorted(scores.items(), key=lambda kv: kv[1])[:3]
    figures["extract"] = {"pages": len(scores), "mean_f1": round(mean, 3),
                          "min_f1": round(worst[0][1], 3), "ms_a_page": round(per_page * 1000)}
    results.append(("extract full text (token F1)", f"{len(scores)} pages",
                    f"mean {mean:.3f}, min {worst[0][1]:.3f}, {per_page * 1000:.0f} ms a page"))
    results.append(("  worst pages", "", ", ".join(f"{d} {s:.3f}" for d, s in worst)))


def _context(items: int):  # type: ignore[no-untyped-def]
    from digest.render import DigestContext, ItemContext

    now = dt.datetime(2026, 11, 27, 7, tzinfo=dt.UTC)
    return DigestContext(
        list_name="daily", list_title="The Morning Harbour", list_description="Bench",
        edition_number=1, edition_date=now.date(), subject="Bench", intro="Good morning.",
        language="en", public_url="https://news.example.org", timezone="UTC",
        items=[ItemContext(
            title=f"Headline number {i} about the harbour", link=f"https://e.org/{i}",
            summary="A blurb of a few sentences about the story. " * 6,
            image_url=f"https://images.example.org/{i}.jpg", image_caption="Caption",
            source_title="Harbour Times", author="Reporter", published_at=now, note="",
        ) for i in range(items)],
    )


def bench_render() -> None:
    from digest.deliver.message import MessageTemplate, Recipient
    from digest.render import make_environment, render_edition
    from tests import size_report

    env = make_environment()
    ctx = _context(20)
    render_edition(env, ctx)  # warm the template cache
    seconds = timed(lambda: render_edition(env, ctx), 10)
    rendered = render_edition(env, ctx)
    results.append(("render edition (once per edition)", "20 items",
                    f"{seconds * 1000:.1f} ms, {len(rendered.html) / 1024:.0f} KB HTML"))
    now = dt.datetime.now(dt.UTC)
    n = 5000
    # Every per-reader slot filled as the sender fills them (tokens of a realistic length).
    recipients = [Recipient(i, f"reader{i}@example.org", f"Reader {i}",
                            f"https://news.example.org/unsubscribe/WzEsMSwiN2E2NGFkZjIiXQ.tok{i}",
                            manage_url=f"https://news.example.org/preferences/WzEsbnVsbC.tok{i}",
                            reason="You subscribed to The Morning Harbour on 27 November 2026.")
                  for i in range(n)]
    # A Korean edition's parts go as base64 (smaller than quoted-printable for Hangul).
    korean = render_edition(env, size_report.twenty("ko", title=90, summary=320, note=400))
    signer = _dkim_signer()
    for what, edition in (("English", rendered), ("Korean, notes", korean)):
        unsigned = 0.0
        for dkim in (None, signer):  # the same readers, with and without a signature
            template = MessageTemplate(
                html=edition.html, text=edition.text, subject="The Morning Harbour: bench",
                from_addr="Harbour <news@news.example.org>", list_id="daily.news.example.org",
                list_name="The Morning Harbour", edition_key="e1", slot_key=edition.slot_key,
                feedback_id="daily-1:daily:digest:news.example.org", dkim=dkim)

            def build_all(template: MessageTemplate = template) -> None:
                for r in recipients:
                    template.build(r, now)

            seconds = timed(build_all, 3)
            size = len(template.build(recipients[0], now).data)
            label = f"build message (per subscriber), {what}"
            if dkim is None:
                unsigned = seconds
                results.append((label, f"{size / 1024:.0f} KB each",
                                f"{seconds / n * 1e6:.1f} µs ({n / seconds:,.0f}/s)"))
            else:
                results.append((f"{label}, DKIM-signed", "rsa-sha256, 2048 bits",
                                f"{seconds / n * 1e6:.1f} µs ({n / seconds:,.0f}/s), "
                                f"{seconds / unsigned:.1f}× unsigned"))


def _dkim_signer():  # type: ignore[no-untyped-def]
    """A DKIM signer with a fresh 2048-bit key, as `[dkim]` would load one."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    from digest.deliver.dkim import DkimSigner

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return DkimSigner("news.example.org", "digest", key)


DESK_TARGET_MS = 200
WORDS = ("harbour", "storm", "boats", "quay", "fish", "tide", "ferry", "market", "crane",
         "nets", "gulls", "pier", "항구", "어선", "귀환")


def bench_desk(proposals: int = 200, requests: int = 30) -> None:
    """GET /desk/<list> of a draft of 20 articles and 100 in brief with `proposals` more
    proposed (each
    with an image, Korean and English headlines), through the app as a browser asks:
    session cookie, CSRF, security headers, templates. Median and p95 of `requests`
    after a warm-up."""
    from fastapi.testclient import TestClient

    from digest import curate
    from digest.app import App
    from digest.config import defaults
    from digest.models import Article, ListSource, Source
    from digest.publication import create_list
    from digest.users import create_user
    from digest.web import create_app

    folder = Path(tempfile.mkdtemp(prefix="digest-bench-desk-"))
    app = App(defaults().with_overrides(database__url=f"sqlite:///{folder}/digest.db",
                                        data_dir=str(folder)))
    app.init_db()
    now = app.clock()
    password = "bench password, long enough"
    with app.sessions() as s:
        mlist = create_list(s, "daily", title="Daily", from_addr="Daily <d@news.example.org>")
        source = Source(url="https://feeds.example.org/daily.xml", title="항구 신문")
        s.add(source)
        s.flush()
        s.add(ListSource(list_id=mlist.id, source_id=source.id))
        # The draft takes max_items in full and brief_max more in its "also new" list;
        # the rest are proposed.
        rules = app.edition_rules()
        total = proposals + rules.max_items + rules.brief_max
        s.add_all(Article(
            source_id=source.id, guid=f"a{i}", link=f"https://example.org/story/{i}",
            content_hash=f"a{i}",
            title=(f"항구 재개장 {i}호, 어선 {i}척 귀환" if i % 2 else
                   f"The harbour reopens after storm {i}, with {i} boats back"),
            # Each its own story: a shared blurb under like headlines is one story
            # told twice (digest.stories), which the desk shows once.
            summary=" ".join(f"{WORDS[(i + k) % len(WORDS)]}{i}" for k in range(60)),
            image_url=f"https://images.example.org/{i}.jpg", author="Kim",
            published_at=now - dt.timedelta(minutes=3 * i + 1), first_seen_at=now)
            for i in range(total))
        create_user(s, "ed@example.org", role="editor", password=password, now=now)
        s.commit()
        curate.draft_for(s, mlist, now=now, rules=app.edition_rules())
        s.commit()
    runs = []
    with TestClient(create_app(app)) as client:
        login = client.get("/login").text
        token = login.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        client.post("/login", data={"email": "ed@example.org", "password": password,
                                    "csrf_token": token})
        for _ in range(5):  # warm-up: templates compiled, connections pooled
            page = client.get("/desk/daily")
        shown = page.text.count('class="proposal"')
        if page.status_code != 200 or shown != proposals:
            raise SystemExit(f"the desk page is not right: {page.status_code}, "
                             f"{shown} proposals shown")
        for _ in range(requests):
            t0 = time.perf_counter()
            client.get("/desk/daily")
            runs.append((time.perf_counter() - t0) * 1000)
    app.close()
    shutil.rmtree(folder)
    median = statistics.median(runs)
    p95 = statistics.quantiles(runs, n=20)[-1]
    verdict = "under" if p95 < DESK_TARGET_MS else "OVER"
    figures["desk"] = {"median_ms": round(median, 1), "p95_ms": round(p95, 1),
                       "target_ms": DESK_TARGET_MS, "proposals": proposals}
    results.append(("desk draft page (GET, logged in)",
                    f"120 items + {proposals} proposals, {len(page.content) / 1024:.0f} KB",
                    f"median {median:.1f} ms, p95 {p95:.1f} ms: {verdict} "
                    f"{DESK_TARGET_MS} ms"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_sink(kind: str, port: int) -> tuple[subprocess.Popen[bytes], str]:
    sink = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    if kind in ("auto", "smtp-sink") and os.path.exists(sink):
        # As root, smtp-sink must drop to another user (-u) after binding.
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        args = [sink, *user, f"127.0.0.1:{port}", "256"]
        return subprocess.Popen(args, stdout=subprocess.DEVNULL), "Postfix smtp-sink"
    code = ("import time; from aiosmtpd.controller import Controller\n"
            "class H:\n async def handle_DATA(self, s, se, e): return '250 OK'\n"
            f"c = Controller(H(), hostname='127.0.0.1', port={port}); c.start()\n"
            "time.sleep(3600)\n")
    return subprocess.Popen([sys.executable, "-c", code]), "aiosmtpd (Python)"


def wait_port(port: int) -> None:
    for _ in range(200):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"the SMTP sink on port {port} did not start")


def reference(messages: int, size: int) -> float | None:
    """Postfix's own C load generator into a fresh smtp-sink: `smtp-source -s 4 -l SIZE
    -m N`, messages of the same size over as many connections as the sender's default.
    Messages/s, or None where Postfix is not installed."""
    source = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    if not os.path.exists(source):
        return None
    port = free_port()
    proc, name = start_sink("smtp-sink", port)
    if name != "Postfix smtp-sink":
        proc.terminate()
        proc.wait()
        return None
    try:
        wait_port(port)
        t0 = time.perf_counter()
        subprocess.run([source, "-s", "4", "-l", str(size), "-m", str(messages),
                        "-f", "bench@news.example.org", "-t", "reader@example.org",
                        f"127.0.0.1:{port}"], check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait()
    return messages / seconds


def _sent_span(url: str) -> tuple[int, float]:
    """(messages sent, seconds from the first to the last), from the ledger's own
    sent_at: the send itself, without the command's start-up, render and enqueue."""
    from sqlalchemy import create_engine, func, select

    from digest.models import Delivery, DeliveryStatus

    engine = create_engine(url)
    with engine.connect() as conn:
        n, first, last = conn.execute(
            select(func.count(), func.min(Delivery.sent_at), func.max(Delivery.sent_at))
            .where(Delivery.status == DeliveryStatus.DELIVERED)).one()
    engine.dispose()
    if isinstance(first, str):  # SQLite returns the stored text to an aggregate
        first, last = dt.datetime.fromisoformat(first), dt.datetime.fromisoformat(last)
    return n, (last - first).total_seconds()


def _message_size(app, settings) -> int:  # type: ignore[no-untyped-def]
    """The size of one reader's message of the edition just sent, as the sender builds it."""
    from digest.deliver import worker
    from digest.deliver.message import Recipient
    from digest.models import Edition
    from subscribers.models import MailingList

    with app.sessions() as s:
        edition = s.query(Edition).one()
        mlist = s.get_one(MailingList, edition.list_id)
        template = worker.message_template(edition, mlist, app.send_options())
        link = settings["public_url"].rstrip("/") + "/unsubscribe/" + "t" * 120
        return len(template.build(Recipient(1, "reader1@example.org", "Reader 1", link,
                                            manage_url=link, reason="You subscribed."),
                                  app.clock()).data)


def bench_send(subscribers: int, sink_kind: str, *, dkim: bool = False) -> None:
    """The real `digest edition send`; with `dkim`, every message signed ([dkim]).
    Beside it, in the same run, `smtp-source` sending as many messages of the same size
    (unsigned runs only): the machine's own SMTP limit, which the send is held to."""
    from digest.app import App
    from digest.config import defaults
    from digest.gather.sources import add_source
    from digest.publication import create_list
    from subscribers.importing import import_csv

    folder = Path(tempfile.mkdtemp(prefix="digest-bench-"))
    settings = defaults().with_overrides(
        database__url=f"sqlite:///{folder}/digest.db", data_dir=str(folder),
        edition__window_hours=24 * 365 * 30)
    app = App(settings)
    app.init_db()
    csv = folder / "people.csv"
    csv.write_text("email,name\n" + "".join(f"reader{i}@example.org,Reader {i}\n"
                                             for i in range(subscribers)))
    t0 = time.perf_counter()
    with app.sessions() as s:
        mlist = create_list(s, "daily", title="Daily", from_addr="Daily <d@news.example.org>")
        add_source(s, str(DATA / "flow" / "news.xml"), mlist, allow_files=True)
        s.commit()
        import_csv(s, mlist, csv, confirmed=True, now=app.clock())
        s.commit()
        app.fetch(s, allow_files=True)
    imported = time.perf_counter() - t0
    port = free_port()
    proc, sink_name = start_sink(sink_kind, port)
    try:
        wait_port(port)
        env = {**os.environ, "DIGEST_DATABASE_URL": settings["database.url"],
               "DIGEST_DATA_DIR": str(folder), "DIGEST_EDITION_WINDOW_HOURS": "262800",
               "DIGEST_DELIVERY_BACKEND": "smtp", "DIGEST_SMTP_HOST": "127.0.0.1",
               "DIGEST_SMTP_PORT": str(port), "DIGEST_SMTP_TLS": "none"}
        if dkim:
            from cryptography.hazmat.primitives import serialization

            key = folder / "dkim.pem"
            key.write_bytes(_dkim_signer()._key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()))
            key.chmod(0o600)
            env.update(DIGEST_DKIM_DOMAIN="news.example.org",
                       DIGEST_DKIM_PRIVATE_KEY_FILE=str(key))
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "digest", "edition", "send", "--list",
                               "daily"], env=env, cwd=folder, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait()
    if done.returncode != 0 or "is sent" not in done.stdout:
        raise SystemExit(f"send failed:\n{done.stdout}\n{done.stderr}")
    sent, span = _sent_span(settings["database.url"])
    if sent != subscribers:
        raise SystemExit(f"send: {sent:,} of {subscribers:,} messages marked sent")
    size = _message_size(app, settings)
    app.close()
    shutil.rmtree(folder)
    rate = (sent - 1) / span
    key = "send_dkim" if dkim else "send"
    figures[key] = {"subscribers": subscribers, "sink": sink_name, "message_bytes": size,
                    "command_seconds": round(seconds, 2),
                    "command_per_s": round(subscribers / seconds),
                    "send_seconds": round(span, 2), "send_per_s": round(rate)}
    if not dkim:
        results.append(("import + fetch (setup)", f"{subscribers:,} subscribers",
                        f"{imported:.1f} s"))
    signed = ", DKIM-signed" if dkim else ""
    results.append((f"digest edition send → {sink_name}{signed}",
                    f"{subscribers:,} subscribers, {size / 1024:.0f} KB each",
                    f"sending {rate:,.0f} messages/s ({span:.1f} s); whole command "
                    f"{seconds:.1f} s, {subscribers / seconds:,.0f}/s (start-up, render, "
                    "enqueue)"))
    if dkim or sink_name != "Postfix smtp-sink":
        return
    ref = reference(subscribers, size)
    if ref is None:
        results.append(("  reference: smtp-source -s 4", "", "Postfix not installed"))
        return
    ratio, whole = rate / ref, subscribers / seconds / ref
    figures[key].update(reference_tool=f"smtp-source -s 4 -l {size} -m {subscribers}",
                        reference_per_s=round(ref), ratio=round(ratio, 2),
                        command_ratio=round(whole, 2),
                        target_ratio=SEND_TARGET_RATIO, target_per_s=SEND_TARGET_RATE)
    verdict = "meets" if ratio >= SEND_TARGET_RATIO and rate >= SEND_TARGET_RATE else "MISSES"
    results.append(("  reference: Postfix smtp-source -s 4, same size, same run",
                    f"{subscribers:,} messages",
                    f"{ref:,.0f} messages/s; digest's sending is {ratio:.2f} of it: "
                    f"{verdict} the target (≥ {SEND_TARGET_RATIO} and ≥ "
                    f"{SEND_TARGET_RATE:,}/s); the whole command {whole:.2f} of it"))


STEPS = ("feeds", "extract", "render", "desk", "send", "memory", "gather", "import")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--sink", choices=["auto", "smtp-sink", "aiosmtpd"], default="auto")
    parser.add_argument("--import-rows", type=int, default=1_000_000,
                        help="rows of the CSV import benchmark (0 to skip it)")
    parser.add_argument("--memory-large", type=int, default=1_000_000,
                        help="readers of the large send the memory figure compares with "
                             "--subscribers (0 to skip it)")
    parser.add_argument("--postgres-url", default=os.environ.get("DIGEST_TEST_POSTGRES_URL"),
                        help="a PostgreSQL server for the memory figure (default: "
                             "$DIGEST_TEST_POSTGRES_URL, else a throwaway cluster when "
                             "PostgreSQL is installed)")
    parser.add_argument("--only", default=",".join(STEPS),
                        help=f"the steps to run, of {','.join(STEPS)}")
    parser.add_argument("--json", type=Path, default=ROOT / "var" / "bench" / "results.json",
                        help="where the figures are written")
    args = parser.parse_args()
    steps = set(args.only.split(","))
    if unknown := steps - set(STEPS):
        parser.error(f"unknown steps: {', '.join(sorted(unknown))}; choose from "
                     f"{', '.join(STEPS)}")
    console = Console(width=150)
    began = time.perf_counter()
    console.print(f"digest bench on {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    if "feeds" in steps:
        bench_feeds()
    if "extract" in steps:
        bench_extract()
    if "render" in steps:
        bench_render()
    if "desk" in steps:
        bench_desk()
    if "send" in steps:
        bench_send(args.subscribers, args.sink)
        bench_send(args.subscribers, args.sink, dkim=True)
    if "memory" in steps and args.memory_large:
        from tests.bench_memory import bench_memory

        rows, found = bench_memory(args.subscribers, args.memory_large, args.postgres_url)
        results.extend(rows)
        figures["memory"] = found
    if "gather" in steps:
        from tests.bench_gather import bench_gather

        rows, found = bench_gather()
        results.extend(rows)
        figures["gather"] = found
    if "import" in steps and args.import_rows:
        from tests.bench_import import bench_import

        results.extend(bench_import(args.import_rows))
    took = time.perf_counter() - began
    table = Table("step", "size", "result", title=f"make bench: {took / 60:.1f} min")
    for row in results:
        table.add_row(*row)
    console.print(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(), "python": sys.version.split()[0],
        "minutes": round(took / 60, 1), "figures": figures,
        "table": [dict(zip(("step", "size", "result"), row, strict=True)) for row in results],
    }, indent=2, ensure_ascii=False) + "\n")
    console.print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
