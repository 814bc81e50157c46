"""Issue 13, "memory stays flat": the send streams, so the peak resident memory of
`digest edition send` for a large list is within LIMIT (1.3×) of a small one's, on
SQLite and on PostgreSQL.

    python -m tests.bench_memory [--small 10000] [--large 1000000]
                                 [--postgres-url URL] [--databases sqlite,postgresql]
                                 [--json FILE]

Each size gets a fresh database holding one list fed by tests/data/flow/news.xml (as in
`tests.bench.bench_send`) and N confirmed members, written by two INSERT … SELECT
statements (a recursive CTE on SQLite, generate_series on PostgreSQL; the address hash
is the project's own `email_hash`, checked on PostgreSQL's sha256), because a million
rows through the CSV import take minutes and are measured by tests/bench_import.py.
Then the real command, `python -m digest edition send --list daily`, runs in a
subprocess into Postfix's `smtp-sink` on loopback (aiosmtpd when it is missing), and
afterwards every one of the N deliveries must be `sent` in the ledger, or the bench
stops.

Peak RSS is the send process's own, two figures of it, each compared by LIMIT:

- the whole command's (what issue 13 states): its VmHWM, read from /proc/<pid>/status
  every POLL_SECONDS until it exits (a high-water mark: only growth in its last few
  milliseconds could be missed), cross-checked with the ru_maxrss that wait4 reports,
  used when larger and when it cannot be the parent's (Linux carries ru_maxrss over
  from the process that started the child: see tests.bench_import.peak_rss_mib);
- the delivery loop's: when the command says on stderr that the edition is queued
  (SENDING_STARTS), its VmHWM is set back to its RSS then (/proc/<pid>/clear_refs), and
  its peak from there on is read the same way. Whatever start-up allocates and frees
  again would otherwise hide as much growth of the loop under the first figure (until
  794f06f, importing digest.users hashed a dummy password with argon2id: a 168 MiB
  high-water mark for a loop that peaked at 123). After the reset, ru_maxrss is the
  loop's too.

The database server's memory is not the send's and is not counted; SQLite's page cache
lives in the sending process and is.

PostgreSQL: `postgres_url` (an admin URL: a database `digest_bench_mem` is created on
that server and dropped at the end, nothing else touched), else DIGEST_TEST_POSTGRES_URL,
else a throwaway cluster (initdb into a temporary folder, owned by the postgres user
when run as root, stopped and deleted at the end) when /usr/lib/postgresql/*/bin/initdb
exists, else a row saying why PostgreSQL was skipped.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tests import bench
from tests.bench import free_port, wait_port

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
LIMIT = 1.3  # issue 13: peak RSS at `large` within this factor of `small`'s
POLL_SECONDS = 0.02
PG_DATABASE = "digest_bench_mem"
LABEL = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


class Skip(Exception):
    """PostgreSQL cannot be benched here; the message says why."""


@dataclass
class SendRun:
    """One `digest edition send` of `subscribers` confirmed members."""

    subscribers: int
    peak_rss_mib: float  # the send process's own peak resident memory, start-up included
    sending_peak_mib: float | None  # its peak during the delivery loop (see run_measured)
    sending_start_mib: float | None  # its RSS when the delivery loop began
    seconds: float  # wall clock of the whole command (start-up, render, enqueue, send)
    cpu_seconds: float  # its user + system CPU
    setup_seconds: float  # creating the database and its members, fetching the feed
    wait4_mib: float  # ru_maxrss from wait4, a cross-check (may be the parent's)


def start_sink(port: int) -> tuple[subprocess.Popen[bytes], str]:
    """tests.bench's sink: Postfix's smtp-sink when installed, else aiosmtpd."""
    return bench.start_sink("auto", port)


# -- peak RSS of another process ----------------------------------------------------

#: What `digest edition send` prints on stderr once the edition is rendered and queued,
#: right before the delivery loop (digest/cli/edition.py, `started`).
SENDING_STARTS = b"deliveries to go"
def _status_mib(pid: int | str, field: str) -> float | None:
    """A Vm field (VmHWM, VmRSS) of process `pid` in MiB; None once it has exited (a
    zombie has no Vm lines) or where /proc has none."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def vmhwm_mib(pid: int | str = "self") -> float | None:
    return _status_mib(pid, "VmHWM")


def _reset_peak(pid: int) -> bool:
    """Set the process's VmHWM back to its current RSS (Linux 4.0+: clear_refs 5)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@dataclass
class Measured:
    code: int
    stdout: str
    stderr: str
    seconds: float
    cpu_seconds: float
    peak_mib: float  # VmHWM, the last read before it exited: start-up included
    wait4_mib: float  # ru_maxrss from wait4 (may be the parent's: see `run_measured`)
    sending_start_mib: float | None  # VmRSS when SENDING_STARTS appeared
    sending_peak_mib: float | None  # the peak from then on


def run_measured(args: list[str], env: dict[str, str], cwd: Path) -> Measured:
    """Run `args` and measure its memory from /proc until it exits.

    The child is reaped here with wait4, not by Popen, to get its own rusage; its /proc
    entry is read until then (never after: the pid is free again). When its stderr
    says SENDING_STARTS, its VmHWM is reset to its RSS then, so that the peak of the
    delivery loop is known apart from start-up's (see the module's docstring)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=out, stderr=err)
        peak, said = 0.0, b""  # the peak before the loop started; its stderr so far
        start: float | None = None  # RSS when the loop started
        sending: float | None = None  # the peak since
        reset = False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            hwm = vmhwm_mib(proc.pid)
            if start is None:
                said += os.pread(err.fileno(), 1 << 16, len(said))
                if SENDING_STARTS in said:
                    start = _status_mib(proc.pid, "VmRSS")
                    peak = max(peak, hwm or 0.0)
                    reset = _reset_peak(proc.pid)
                    sending = start
                elif hwm is not None:
                    peak = max(peak, hwm)
            elif sending is not None:
                # Without a reset VmHWM keeps start-up's mark: RSS samples instead.
                now = hwm if reset else _status_mib(proc.pid, "VmRSS")
                sending = max(sending, now or 0.0)
            time.sleep(POLL_SECONDS)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    return Measured(proc.returncode, stdout, stderr, seconds, usage.ru_utime + usage.ru_stime,
                    max(peak, sending or 0.0), usage.ru_maxrss / 1024,  # KiB on Linux
                    start, sending)


# -- databases ------------------------------------------------------------------------


def _hashed_on_sqlite(s: Any) -> None:
    """SQLite cannot hash: the connection gets the project's own `email_hash`."""
    from subscribers.addresses import email_hash

    raw = s.connection().connection.driver_connection
    raw.create_function("digest_email_hash", 1, email_hash, deterministic=True)
    raw.execute("PRAGMA cache_size=-65536")  # 64 MiB while inserting, as import_csv


SUBSCRIBERS_SQLITE = """
INSERT INTO subscribers (email, email_hash, domain, name, timezone, attributes, tags,
                         created_at, updated_at)
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :n),
     a(i, email) AS (SELECT i, 'reader' || i || '@example.org' FROM n)
SELECT email, digest_email_hash(email), 'example.org', 'Reader ' || i, '', '{}', '[]',
       :now, :now
FROM a
"""
SUBSCRIBERS_POSTGRES = """
INSERT INTO subscribers (email, email_hash, domain, name, timezone, attributes, tags,
                         created_at, updated_at)
SELECT email, encode(sha256(convert_to(email, 'UTF8')), 'hex'), 'example.org',
       'Reader ' || i, '', '{}'::json, '[]'::json, :now, :now
FROM (SELECT i, 'reader' || i || '@example.org' AS email
      FROM generate_series(1, :n) AS i) AS a
"""
# What `import_csv(..., confirmed=True)` writes for a new member (members.transition).
MEMBERSHIPS = """
INSERT INTO memberships (list_id, subscriber_id, status, origin, created_at, created_ip,
                         confirmed_at, confirmed_ip, unsubscribed_at, unsubscribe_reason,
                         signup, mailed_signup)
SELECT :list_id, id, 'confirmed', 'import', :now, '', :now, '', NULL, '', 0, NULL
FROM subscribers ORDER BY id
"""


def populate(url: str, folder: Path, subscribers: int) -> None:
    """A fresh schema, list `daily` fed by news.xml, `subscribers` confirmed members and
    the feed's articles fetched: what `digest edition send` needs to send to them all."""
    from sqlalchemy import bindparam, func, select, text

    from digest.app import App
    from digest.config import defaults
    from digest.db import UTCDateTime
    from digest.gather.sources import add_source
    from digest.publication import create_list
    from subscribers.addresses import email_hash
    from subscribers.members import recipients_query
    from subscribers.models import MembershipStatus

    settings = defaults().with_overrides(database__url=url, data_dir=str(folder),
                                         edition__window_hours=24 * 365 * 30)
    app = App(settings)
    try:
        app.init_db()
        now = app.clock()
        with app.sessions() as s:
            mlist = create_list(s, "daily", title="Daily", from_addr="Daily <d@news.example.org>")
            add_source(s, str(DATA / "flow" / "news.xml"), mlist, allow_files=True)
            s.commit()
            postgres = s.get_bind().dialect.name == "postgresql"
            if not postgres:
                _hashed_on_sqlite(s)
            stamp = bindparam("now", now, type_=UTCDateTime)
            s.execute(text(SUBSCRIBERS_POSTGRES if postgres else SUBSCRIBERS_SQLITE)
                      .bindparams(stamp, n=subscribers))
            s.execute(text(MEMBERSHIPS).bindparams(stamp, list_id=mlist.id))
            s.commit()
            if postgres:
                # A million-row list has long been analyzed by autovacuum in real life.
                s.execute(text("ANALYZE subscribers"))
                s.execute(text("ANALYZE memberships"))
                s.commit()
            email, stored = s.execute(text(
                "SELECT email, email_hash FROM subscribers ORDER BY id DESC LIMIT 1")).one()
            if stored != email_hash(email):
                raise SystemExit(f"the SQL hash of {email} is not email_hash's: {stored}")
            wanted = s.scalar(select(func.count()).select_from(
                recipients_query(mlist.id, MembershipStatus.CONFIRMED).subquery()))
            if wanted != subscribers:
                raise SystemExit(f"{wanted:,} recipients set up, not {subscribers:,}")
            app.fetch(s, allow_files=True)
    finally:
        app.close()


def _round(mib: float | None) -> float | None:
    return None if mib is None else round(mib, 1)


def count_sent(url: str) -> dict[str, int]:
    """{status: deliveries} over the whole ledger (one edition was sent)."""
    from sqlalchemy import text

    from digest.db import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {str(k): int(v) for k, v in conn.execute(text(
                "SELECT status, count(*) FROM deliveries GROUP BY status"))}
    finally:
        engine.dispose()


def send_once(url: str | None, subscribers: int) -> SendRun:
    """Set up `subscribers` members in the (empty) database at `url`, or a new SQLite
    file when `url` is None, send to them all, check the ledger; the figures."""
    folder = Path(tempfile.mkdtemp(prefix="digest-bench-mem-"))
    try:
        url = url or f"sqlite:///{folder}/digest.db"
        t0 = time.perf_counter()
        populate(url, folder, subscribers)
        setup = time.perf_counter() - t0
        port = free_port()
        sink, _name = start_sink(port)
        try:
            wait_port(port)
            env = {**os.environ, "DIGEST_DATABASE_URL": url, "DIGEST_DATA_DIR": str(folder),
                   "DIGEST_EDITION_WINDOW_HOURS": "262800", "DIGEST_DELIVERY_BACKEND": "smtp",
                   "DIGEST_SMTP_HOST": "127.0.0.1", "DIGEST_SMTP_PORT": str(port),
                   "DIGEST_SMTP_TLS": "none",
                   # Required on PostgreSQL (a deployment, not a trial); the same on both.
                   "DIGEST_PUBLIC_URL": "https://news.example.org"}
            parent = vmhwm_mib() or 0.0
            m = run_measured(
                [sys.executable, "-m", "digest", "edition", "send", "--list", "daily"],
                env, folder)
        finally:
            sink.terminate()
            sink.wait()
        if m.code != 0 or "is sent" not in m.stdout:
            raise SystemExit(f"send of {subscribers:,} failed ({m.code}):\n{m.stdout}\n"
                             f"{m.stderr}")
        counts = count_sent(url)
        if counts.get("sent", 0) != subscribers or sum(counts.values()) != subscribers:
            raise SystemExit(f"the send of {subscribers:,} left deliveries {counts}, not "
                             f"{subscribers:,} sent")
        # ru_maxrss is the child's own only when above what the parent ever held.
        peak = max(m.peak_mib, m.wait4_mib) if m.wait4_mib > parent + 1 else m.peak_mib
        return SendRun(subscribers, round(peak, 1), _round(m.sending_peak_mib),
                       _round(m.sending_start_mib), round(m.seconds, 2),
                       round(m.cpu_seconds, 2), round(setup, 2), round(m.wait4_mib, 1))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A new database PG_DATABASE on the server of `admin_url`, dropped afterwards."""
    from sqlalchemy import create_engine, make_url, text

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{PG_DATABASE}"'))
        yield make_url(admin_url).set(database=PG_DATABASE).render_as_string(
            hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def throwaway_cluster() -> Iterator[str]:
    """A PostgreSQL server of our own on loopback (as .ci/run starts one); its URL."""
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if not found:
        raise Skip("no postgres_url, DIGEST_TEST_POSTGRES_URL unset, no "
                   "/usr/lib/postgresql/*/bin/initdb")
    initdb = Path(max(found, key=lambda p: [int(x) for x in Path(p).parts[4].split(".")
                                            if x.isdigit()]))
    bindir = initdb.parent
    as_root = os.geteuid() == 0
    if as_root:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise Skip("running as root and there is no postgres user for initdb") from None
    folder = Path(tempfile.mkdtemp(prefix="digest-bench-pg-"))
    if as_root:
        shutil.chown(folder, "postgres")
    data, port = folder / "data", free_port()

    def run(*args: object) -> None:
        cmd = [str(a) for a in args]
        if as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")

    started = False
    try:
        run(initdb, "-D", data, "-A", "trust", "-U", "postgres")
        run(bindir / "pg_ctl", "-D", data, "-o",
            f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "-l", folder / "log",
            "-w", "start")
        started = True
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        if started:
            run(bindir / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def postgres_server(postgres_url: str | None) -> Iterator[tuple[str, str]]:
    """(admin URL, where it came from) of a server to bench on."""
    url = postgres_url or os.environ.get("DIGEST_TEST_POSTGRES_URL", "")
    if url:
        yield url, "given server" if postgres_url else "DIGEST_TEST_POSTGRES_URL"
        return
    with throwaway_cluster() as url:
        yield url, "throwaway cluster"


# -- the bench ------------------------------------------------------------------------


def _pair(small: int, large: int, url: str | None) -> tuple[SendRun, SendRun]:
    if url is None:
        return send_once(None, small), send_once(None, large)
    runs = []
    for n in (small, large):
        with postgres_database(url) as db:
            runs.append(send_once(db, n))
    return runs[0], runs[1]


def _rows(db: str, where: str, small: SendRun, large: SendRun,
          ) -> tuple[list[tuple[str, str, str]], dict[str, Any]]:
    label = LABEL[db] + (f" ({where})" if where else "")
    rows = []
    for run in (small, large):
        loop = ("" if run.sending_peak_mib is None else
                f", sending {run.sending_peak_mib:.1f} (from {run.sending_start_mib:.1f})")
        rows.append((f"send memory, {label}", f"{run.subscribers:,} subscribers",
                     f"peak RSS {run.peak_rss_mib:.1f} MiB{loop}; {run.seconds:.1f} s "
                     f"({run.subscribers / run.seconds:,.0f} messages/s, "
                     f"{run.cpu_seconds:.1f} s CPU); setup {run.setup_seconds:.1f} s"))
    ratio = large.peak_rss_mib / small.peak_rss_mib
    figures: dict[str, Any] = {str(small.subscribers): asdict(small),
                               str(large.subscribers): asdict(large), "ratio": round(ratio, 3)}
    verdicts = [ratio <= LIMIT]
    shown = f"{ratio:.2f}× (whole process)"
    if small.sending_peak_mib and large.sending_peak_mib:
        # A start-up peak above the loop's would hide the loop's growth: both are compared.
        loop_ratio = large.sending_peak_mib / small.sending_peak_mib
        figures["sending_ratio"] = round(loop_ratio, 3)
        verdicts.append(loop_ratio <= LIMIT)
        shown += f", {loop_ratio:.2f}× (delivery loop)"
    within = all(verdicts)
    figures["within_limit"] = within
    rows.append((f"  peak RSS ratio, {LABEL[db]}",
                 f"{large.subscribers:,} / {small.subscribers:,}",
                 f"{shown}: {'within' if within else 'OVER'} {LIMIT}×"))
    if where:
        figures["server"] = where
    return rows, figures


def bench_memory(small: int = 10_000, large: int = 1_000_000,
                 postgres_url: str | None = None, *,
                 databases: tuple[str, ...] = ("sqlite", "postgresql"),
                 ) -> tuple[list[tuple[str, str, str]], dict[str, Any]]:
    """Send to `small` and to `large` confirmed members, on SQLite and on PostgreSQL (see
    the module's docstring for which server), one send at a time on each, the two
    databases side by side; the table rows (step,
    size, result) and the figures: {"limit": 1.3, "sqlite": {"10000": {"peak_rss_mib",
    "seconds", …}, "1000000": {…}, "ratio", "within_limit"}, "postgresql": {… or
    "skipped": why}}. Stops (SystemExit) if a send fails or leaves any of its members
    without a `sent` delivery."""
    rows: list[tuple[str, str, str]] = []
    figures: dict[str, Any] = {"limit": LIMIT}
    # The two databases' sends run side by side (a memory figure: each send's peak is
    # its own process's), which halves the bench's time; their times are under load.
    with ThreadPoolExecutor(1) as pool:
        on_sqlite = pool.submit(_pair, small, large, None) if "sqlite" in databases else None
        pg_rows, pg_figures = _postgres(small, large, postgres_url, databases)
        if on_sqlite is not None:
            r, figures["sqlite"] = _rows("sqlite", "", *on_sqlite.result())
            rows += r
    rows += pg_rows
    figures.update(pg_figures)
    return rows, figures


def _postgres(small: int, large: int, postgres_url: str | None,
              databases: tuple[str, ...]) -> tuple[list[tuple[str, str, str]], dict[str, Any]]:
    rows: list[tuple[str, str, str]] = []
    figures: dict[str, Any] = {}
    if "postgresql" in databases:
        try:
            with postgres_server(postgres_url) as (url, where):
                r, figures["postgresql"] = _rows("postgresql", where,
                                                 *_pair(small, large, url))
                rows += r
        except Skip as why:
            figures["postgresql"] = {"skipped": str(why)}
            rows.append(("send memory, PostgreSQL", "", f"skipped: {why}"))
    return rows, figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--postgres-url", help="an admin URL of a PostgreSQL server "
                        "(default: DIGEST_TEST_POSTGRES_URL, else a throwaway cluster)")
    parser.add_argument("--databases", default="sqlite,postgresql",
                        help="comma-separated: sqlite, postgresql")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    databases = tuple(d.strip() for d in args.databases.split(",") if d.strip())
    unknown = set(databases) - set(LABEL)
    if unknown:
        parser.error(f"unknown database(s): {', '.join(sorted(unknown))}")
    from rich.console import Console
    from rich.table import Table

    t0 = time.perf_counter()
    rows, figures = bench_memory(args.small, args.large, args.postgres_url,
                                 databases=databases)
    figures["bench_seconds"] = round(time.perf_counter() - t0, 1)
    table = Table("step", "size", "result")
    for row in rows:
        table.add_row(*row)
    console = Console()
    console.print(table)
    console.print(f"bench_memory took {figures['bench_seconds']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    if any(isinstance(f, dict) and f.get("within_limit") is False for f in figures.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()

