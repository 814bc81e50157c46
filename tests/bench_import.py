"""The million-row CSV import: time, peak memory and exact counts, first run and re-run.

    python -m tests.bench_import [--rows 1000000] [--keep]

The generator writes a file whose every row's fate it knows: 2% invalid addresses (each
kind of mistake people make), 1% duplicates of earlier rows in another letter case,
0.5% addresses suppressed in the database beforehand (some of them typed in another
case), the rest new; a few internationalized addresses and domains among them. Each
import runs as `import_csv` alone in a fresh subprocess, whose peak resident memory
(Linux's VmHWM: Python, SQLAlchemy, the SQLite page cache; see `peak_rss_mib`) is the
import's own and not the generator's. Times are wall clock and CPU: other work on the
machine shows as a gap between the two.
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import itertools
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOW = dt.datetime(2026, 11, 27, 6, 0, tzinfo=dt.UTC)
INVALID, DUPLICATE, SUPPRESSED = 0.02, 0.01, 0.005
FIRST = ("Ada", "Grace", "Alan", "Zoë", "René", "Jürgen", "Mei", "Omar", "Priya", "Sven",
         "Chioma", "Lucía", "Kenji", "Olga", "Noah", "Fatima", "Liam", "Ana", "Ivan", "Sara")
LAST = ("Lovelace", "Hopper", "Turing", "Müller", "Dubois", "García", "Nakamura", "Okafor",
        "Smith", "Ivanova", "Rossi", "Kowalski", "Jensen", "Silva", "Cohen", "Khan")
BIG = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "gmx.de",
       "web.de", "orange.fr", "libero.it", "yandex.ru", "proton.me", "aol.com",
       "mail.ru", "qq.com", "naver.com", "t-online.de", "free.fr", "btinternet.com")
CITIES = ("Berlin", "Paris, France", "Lagos", "Tokyo", "São Paulo", "Kyiv", "", "Lima")
PLANS = ("free", "pro", "team", "")
# (kind, a function of n giving the cell): every kind of address email-validator refuses.
BAD = (
    lambda n: f"user{n}.example.com",  # no @
    lambda n: f"a..b{n}@example.com",  # two dots
    lambda n: f"user{n}@localhost",  # no dot in the domain
    lambda n: f"first last{n}@example.com",  # space
    lambda n: f"user{n}.@example.com",  # dot before @
    lambda n: f"user{n}@exa_mple.com",  # bad domain character
    lambda n: f"@example{n}.com",  # empty local part
    lambda n: "",  # no address at all
    lambda n: f"user{n}@example.com.",  # trailing dot
    lambda n: f"user{n}@-bad.com",  # hyphen after @
)


@dataclass
class Expected:
    rows: int = 0
    new: int = 0
    duplicates: int = 0
    invalid: int = 0
    suppressed: int = 0

    def first(self) -> dict[str, int]:
        return {"added": self.new, "updated": 0, "unchanged": self.duplicates,
                "rejected": self.invalid, "suppressed": self.suppressed}

    def again(self) -> dict[str, int]:
        return {"added": 0, "updated": 0, "unchanged": self.new + self.duplicates,
                "rejected": self.invalid, "suppressed": self.suppressed}


class _Domains:
    """Where people's mail lives: 80% at a few big providers, 0.1% at internationalized
    domains, the rest a long tail of 200,000 domains drawn by Zipf's law (s = 1), which
    gives about 47,000 distinct domains in a million rows, as in a real consumer list."""

    def __init__(self, rng: random.Random, tail: int = 200_000) -> None:
        self.rng = rng
        self.cumulative = list(itertools.accumulate(1 / k for k in range(1, tail + 1)))

    def __call__(self) -> str:
        r = self.rng.random()
        if r < 0.8:
            return self.rng.choice(BIG)
        if r < 0.801:
            return self.rng.choice(("例子.广告", "bücher.de", "xn--bcher-kva.ch", "españa.es"))
        k = bisect.bisect(self.cumulative, self.rng.random() * self.cumulative[-1])
        return f"company{k}.{('com', 'org', 'net', 'io', 'co.uk')[k % 5]}"


def _person(k: int, rng: random.Random, domain: _Domains) -> tuple[str, str, str, str]:
    """(email, name, city, plan) of the k-th new person: unique by k, mixed case."""
    first, last = rng.choice(FIRST), rng.choice(LAST)
    local = f"{first}.{last}{k}" if rng.random() < 0.3 else f"{first.lower()}{k}"
    if rng.random() < 0.001:
        local = f"josé.ñandú{k}"  # internationalized local part: email-validator's full path
    elif not local.isascii():
        local = local.encode("ascii", "ignore").decode() or f"x{k}"
    return f"{local}@{domain()}", f"{first} {last}", rng.choice(CITIES), rng.choice(PLANS)


def generate(path: Path, rows: int, seed: int = 7) -> tuple[Expected, list[str]]:
    """Write the CSV; what the import must report, and the addresses to suppress first."""
    rng = random.Random(seed)
    domain = _Domains(rng)
    n_bad, n_dup, n_sup = round(rows * INVALID), round(rows * DUPLICATE), round(rows * SUPPRESSED)
    roles = ["b"] * n_bad + ["d"] * n_dup + ["s"] * n_sup + ["n"] * (rows - n_bad - n_dup - n_sup)
    rng.shuffle(roles)
    first_new = roles.index("n")
    roles[0], roles[first_new] = roles[first_new], roles[0]  # a duplicate needs an earlier row
    people: list[tuple[str, str, str, str]] = []
    suppressed: list[str] = []
    expected = Expected(rows=rows)
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write("Name,City,Email,Plan\n")
        for role in roles:
            if role == "n":
                email, name, city, plan = _person(len(people), rng, domain)
                people.append((email, name, city, plan))
                expected.new += 1
            elif role == "d":
                # Another case of an earlier row, same name and attributes: unchanged.
                email, name, city, plan = rng.choice(people)
                email = email.swapcase()
                expected.duplicates += 1
            elif role == "s":
                email = f"gone{len(suppressed)}@{rng.choice(BIG)}"
                suppressed.append(email)
                email = email.upper() if rng.random() < 0.3 else email
                name, city, plan = "Gone", "", ""
                expected.suppressed += 1
            else:
                email = rng.choice(BAD)(rng.randrange(10**6))
                name, city, plan = "Bad", "", ""
                expected.invalid += 1
            city = f'"{city}"' if "," in city else city
            f.write(f"{name},{city},{email},{plan}\n")
    return expected, suppressed


def setup_database(url: str, suppressed: list[str]) -> None:
    from digest.db import make_engine, session_factory
    from digest.migrations import upgrade
    from digest.publication import create_list
    from subscribers.suppress import suppress

    engine = make_engine(url)
    upgrade(engine)
    with session_factory(engine)() as s:
        create_list(s, "bench", title="Bench", from_addr="Bench <b@news.example.org>")
        for email in suppressed:
            suppress(s, email, "hard_bounce", now=NOW)
        s.commit()
    engine.dispose()


def run_child(url: str, csv_path: Path) -> dict[str, float]:
    """One import in a fresh interpreter; what it reported, its time and peak memory."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.bench_import", "--child", url, str(csv_path)],
        cwd=ROOT, capture_output=True, text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"import failed:\n{done.stdout}\n{done.stderr}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def peak_rss_mib() -> float:
    """This process's peak resident memory. VmHWM, not `ru_maxrss`: Linux carries
    ru_maxrss over from the parent through fork and exec, so a child started by a big
    parent reports the parent's peak (measured here: 310 MB for a child whose VmHWM
    was 9 MB, started by a parent holding 300 MB)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(url: str, csv_path: Path) -> None:
    """The subprocess: set up nothing, import, print one JSON line."""
    from digest.db import make_engine, session_factory
    from subscribers.importing import import_csv
    from subscribers.lists import get_list

    engine = make_engine(url)
    with session_factory(engine)() as s:
        mlist = get_list(s, "bench")
        base = peak_rss_mib()
        t0, cpu0 = time.perf_counter(), time.process_time()
        report = import_csv(s, mlist, csv_path, confirmed=True, now=NOW,
                            rejects_path=csv_path.with_name("rejects.csv"))
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    counts = {k: getattr(report, k)
              for k in ("added", "updated", "unchanged", "rejected", "suppressed")}
    print(json.dumps({"seconds": seconds, "cpu": cpu, "peak_mib": peak_rss_mib(),
                      "base_mib": base, **counts}))


def _table_counts(url: str) -> tuple[int, int]:
    from sqlalchemy import func, select

    from digest.db import make_engine
    from subscribers.models import Membership, Subscriber

    engine = make_engine(url)
    with engine.connect() as conn:
        subs = conn.scalar(select(func.count()).select_from(Subscriber)) or 0
        members = conn.scalar(select(func.count()).select_from(Membership)) or 0
    engine.dispose()
    return subs, members


def bench_import(rows: int = 1_000_000, keep: bool = False) -> list[tuple[str, str, str]]:
    """Generate, import twice, check every count; the table rows (step, size, result)."""
    folder = Path(tempfile.mkdtemp(prefix="digest-bench-import-"))
    csv_path, url = folder / "people.csv", f"sqlite:///{folder}/digest.db"
    t0 = time.perf_counter()
    expected, suppressed = generate(csv_path, rows)
    setup_database(url, suppressed)
    size = f"{rows:,} rows, {csv_path.stat().st_size / 1e6:.0f} MB"
    results = [("generate CSV + suppress 0.5%", size, f"{time.perf_counter() - t0:.1f} s")]
    for step, want in (("import CSV (first)", expected.first()),
                       ("import CSV again", expected.again())):
        got = run_child(url, csv_path)
        counts = {k: int(got[k]) for k in want}
        verdict = "match" if counts == want else f"MISMATCH, expected {want}"
        results.append((step, size, (
            f"{got['seconds']:.1f} s ({rows / got['seconds']:,.0f} rows/s, "
            f"{got['cpu']:.1f} s CPU); peak RSS {got['peak_mib']:.0f} MiB "
            f"({got['base_mib']:.0f} before the import)")))
        results.append(("  its summary", "/".join(want),
                        " / ".join(f"{v:,}" for v in counts.values()) + f": {verdict}"))
    subs, members = _table_counts(url)
    verdict = "match" if subs == members == expected.new else f"MISMATCH, expected {expected.new:,}"
    results.append(("rows in the database", "subscribers, memberships",
                     f"{subs:,}, {members:,}: {verdict}"))
    if keep:
        results.append(("kept", str(folder), ""))
    else:
        shutil.rmtree(folder)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the CSV and the database")
    parser.add_argument("--child", nargs=2, metavar=("URL", "CSV"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return
    from rich.console import Console
    from rich.table import Table

    rows = bench_import(args.rows, keep=args.keep)
    table = Table("step", "size", "result")
    for row in rows:
        table.add_row(*row)
    Console().print(table)
    if any("MISMATCH" in result for _, _, result in rows):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
