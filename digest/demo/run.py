"""`digest demo`: the whole flow on bundled sample feeds, into a Maildir outbox.

It runs the same App methods as the real commands, on the built-in defaults (SQLite,
outbox), in a folder of its own that it empties first, so it can be run again and
never touches the user's database. The folder's signing key (secret.key) is kept, so
the links in mail of an earlier run still work.

The mail's links (view in browser, unsubscribe, manage preferences) and photos lead to
`public_url`, http://localhost:PORT: `digest demo --serve` then serves that site from
the demo's own database and key (`demo_settings`), so every link of its mail works.
"""

from __future__ import annotations

import shutil
from email import message_from_bytes, policy
from pathlib import Path

from rich.console import Console
from rich.table import Table

from digest.app import App
from digest.config import Settings, defaults
from digest.demo import IMAGE_HOST, IMAGES, IMAGES_PATH
from digest.errors import InvalidInput
from digest.gather.sources import add_source
from digest.models import Edition
from digest.publication import create_list
from subscribers.members import add_member, remove_member
from subscribers.models import MailingList

FEEDS = Path(__file__).parent / "feeds"
MARKER = ".digest-demo"
LIST = "daily"
# (email, name, confirmed): two will not receive it — one pending, one who left.
PEOPLE = [
    ("ada@example.org", "Ada Lovelace", True),
    ("minji.kim@example.kr", "김민지", True),
    ("grace@example.com", 'Grace "Amazing" Hopper', True),
    ("jun@example.kr", "박준", True),
    ("pending@example.net", "Pat Pending", False),
    ("left@example.net", "Lee Left", True),
]
LEAVER = "left@example.net"
# Where `digest serve` listens by default: the demo's links and photos point there.
PORT = 8000
KEY = "secret.key"  # Settings.signing_key's file in data_dir


def demo_settings(folder: Path, port: int = PORT) -> Settings:
    """The demo's settings: the built-in defaults, its database, key and outbox in
    `folder`, its site on http://localhost:`port`. Both the run and its site use these."""
    return defaults().with_overrides(
        data_dir=str(folder), database__url=f"sqlite:///{folder}/digest.db",
        delivery__backend="outbox", delivery__outbox_dir=str(folder / "outbox"),
        public_url=f"http://localhost:{port}", web__port=port,
        # The sample articles carry fixed dates; reach back far enough to take them all.
        edition__window_hours=24 * 365 * 30,
    )


def run_demo(folder: Path, console: Console, port: int = PORT) -> Path:
    """Run init → list → sources → subscribers → fetch → send; returns the outbox path."""
    _fresh(folder)
    app = App(demo_settings(folder, port))
    try:
        return _run(app, folder, console)
    finally:
        app.close()


def _fresh(folder: Path) -> None:
    """An empty demo folder, but for the signing key of an earlier run."""
    key: bytes | None = None
    if folder.exists():
        if not (folder / MARKER).exists():
            raise InvalidInput(f"{folder} exists and is not a demo folder; pass --dir with "
                               "a new or earlier demo folder")
        if (folder / KEY).is_file():
            key = (folder / KEY).read_bytes()
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / MARKER).write_text("made by `digest demo`; emptied on each run but for "
                                 f"{KEY}\n")
    if key is not None:
        (folder / KEY).write_bytes(key)
        (folder / KEY).chmod(0o600)


def _run(app: App, folder: Path, console: Console) -> Path:
    app.init_db()
    with app.sessions() as s:
        mlist = create_list(
            s, LIST, title="The Morning Harbour", from_addr="The Morning Harbour "
            "<digest@news.example.org>", schedule="0 7 * * *", timezone="Asia/Seoul",
            description="Harbour news, city notes and the Seoul daily, each morning.",
            postal_address="The Morning Harbour\n1 Harbour Road\nPortsmouth PO1 2AB, UK",
        )
        for feed in _feeds(folder, _images_url(app)):
            add_source(s, str(feed), mlist, allow_files=True)
        for email, name, confirmed in PEOPLE:
            add_member(s, mlist, email, name=name, confirmed=confirmed, origin="admin",
                       now=app.clock())
        remove_member(s, mlist, LEAVER, now=app.clock(), reason="demo: left the list")
        s.commit()
        reports = app.fetch(s, allow_files=True)
    console.print(f"Fetched {sum(r.new for r in reports)} articles from {len(reports)} "
                  "sample feeds.")
    report = app.send(LIST)
    if report is None:
        raise InvalidInput("the sample feeds gave no articles; the demo data is broken")
    outbox = Path(app.settings["delivery.outbox_dir"])
    preview = _preview(app, folder / "preview.html", report.edition_id)
    _summary(console, outbox, preview, report.counts)
    return outbox


def _images_url(app: App) -> str:
    """Where `digest serve` serves the sample photos: what the demo's mail shows."""
    return str(app.settings["public_url"]).rstrip("/") + IMAGES_PATH


def _feeds(folder: Path, images_url: str) -> list[Path]:
    """Copies of the sample feeds in `folder`, their photos at `images_url`."""
    copies = folder / "feeds"
    copies.mkdir()
    for feed in sorted(FEEDS.iterdir()):
        text = feed.read_text(encoding="utf-8").replace(IMAGE_HOST, images_url)
        (copies / feed.name).write_text(text, encoding="utf-8")
    return sorted(copies.iterdir())


def _preview(app: App, path: Path, edition_id: int) -> Path:
    with app.sessions() as s:
        edition = s.get_one(Edition, edition_id)
        # Sending stored the rendered edition; the preview fills its slots, no re-render.
        shown = app.preview(edition, s.get_one(MailingList, edition.list_id),
                            email=PEOPLE[0][0], name=PEOPLE[0][1])
    # The mail's photos need `digest serve`; the preview's are files beside it, so that
    # opening it shows them with no server running.
    shutil.copytree(IMAGES, path.parent / "images")
    path.write_text(shown.html.replace(_images_url(app), "images/"), encoding="utf-8")
    return path


def _summary(console: Console, outbox: Path, preview: Path, counts: dict[str, int]) -> None:
    messages = sorted((outbox / "new").iterdir())
    table = Table("to", "subject", title=f"{len(messages)} messages in the outbox")
    for path in messages:
        msg = message_from_bytes(path.read_bytes(), policy=policy.default)
        table.add_row(str(msg["To"]), str(msg["Subject"]))
    console.print(table)
    console.print(f"Deliveries: {', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}")
    console.print(f"Messages (Maildir): {outbox / 'new'}")
    console.print(f"HTML preview:       {preview}")
