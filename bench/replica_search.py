"""Benchmark: directory search in the local replica (search-as-you-type).

Builds a replica with N generated customers (default 100,000; names, e-mails, phones,
cities and zips from seeded Faker pools) through ``Replica.apply_directory`` in pages, as
the directory feed does, then times ``Replica.search`` (first page of 50, the way the
search box asks) and ``Replica.count`` for a few queries, and prints p50/p95 in ms. Target:
p95 <= 10 ms per search. With ``--compare`` it also times the straightforward FTS join
ordered by name, for reference. Prints figures; never asserts.

Usage: .venv/bin/python bench/replica_search.py [--rows 100000] [--runs 200] [--compare]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

from faker import Faker

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.replica import Replica, fts_query  # noqa: E402
from sync.protocol.messages import DirectoryEntry  # noqa: E402

QUERIES = {
    "common prefix 'a'": "a",
    "common prefix 'm'": "m",
    "typing 'jo'": "jo",
    "first name 'michael'": "michael",
    "full name": "",  # filled with a generated name
    "e-mail domain 'example'": "example",
    "zip": "",  # filled with a generated zip
    "phone prefix": "",  # filled with a generated area code and exchange
    "phone digits tail": "",  # filled with the last 7 digits of a generated phone
    "empty query": "",
}


def generate(rows: int, seed: int = 7) -> Iterator[DirectoryEntry]:
    """Seeded customers: pools of Faker names and places, combined at random."""
    fake = Faker("en_US")
    Faker.seed(seed)
    rnd = random.Random(seed)
    firsts = [fake.first_name() for _ in range(3000)]
    lasts = [fake.last_name() for _ in range(3000)]
    cities = [fake.city() for _ in range(2000)]
    states = [fake.state_abbr() for _ in range(50)]
    domains = ["example.com", "mail.example", "corp.example", "desk.test"]
    for i in range(rows):
        first, last = rnd.choice(firsts), rnd.choice(lasts)
        values = {
            "name": f"{first} {last}",
            "email": f"{first.lower()}.{last.lower()}@{rnd.choice(domains)}",
            "phone": f"({rnd.randint(200, 999)}) {rnd.randint(200, 999)}-"
                     f"{rnd.randint(0, 9999):04d}",
            "city": rnd.choice(cities), "state": rnd.choice(states),
            "zip": f"{rnd.randint(501, 99950):05d}",
        }
        yield DirectoryEntry(
            str(uuid.UUID(int=rnd.getrandbits(128), version=4)), values,
            time.time(), rnd.random() < 0.02, i + 1,
        )


def build(path: Path, rows: int) -> Replica:
    """A replica at ``path`` holding ``rows`` customers, loaded in pages of 1,000."""
    replica = Replica.open(path)
    started = time.perf_counter()
    page: list[DirectoryEntry] = []
    for entry in generate(rows):
        page.append(entry)
        if len(page) == 1000:
            replica.apply_directory(page)
            page = []
    replica.apply_directory(page)
    print(f"loaded {rows:,} customers in {time.perf_counter() - started:.1f} s "
          f"({path.stat().st_size / 1e6:.0f} MB)")
    return replica


def timings(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    """p50 and p95 of ``fn`` in milliseconds, after two warm-up calls."""
    fn()
    fn()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[max(0, int(len(samples) * 0.95) - 1)]


def naive(replica: Replica, query: str) -> list[tuple[object, ...]]:
    """The straightforward plan: join every FTS match to its row, sort by name."""
    conn = replica._conn()  # benchmark only: the private connection
    match = fts_query(query)
    if match is None:
        return []
    return conn.execute(
        "SELECT d.* FROM directory_fts f JOIN directory d ON d.sort_key = f.rowid "
        "WHERE directory_fts MATCH ? AND d.deleted = 0 "
        "ORDER BY d.name COLLATE NOCASE, d.customer_id LIMIT 50", (match,),
    ).fetchall()


def main() -> None:
    """Build the replica, run the queries, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--compare", action="store_true", help="also time the naive join")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        replica = build(Path(tmp) / "replica.db", args.rows)
        sample = replica.search("", limit=1, offset=args.rows // 3)[0]
        queries = dict(QUERIES)
        queries["full name"] = sample.name or ""
        queries["zip"] = sample.zip or ""
        queries["phone prefix"] = (sample.phone or "")[:9]
        queries["phone digits tail"] = "".join(c for c in sample.phone or "" if c.isdigit())[-7:]
        header = f"{'query':26} {'text':24} {'hits':>7} {'search p50/p95 ms':>18} " \
                 f"{'count p50/p95 ms':>17}"
        print(header + ("  naive p50/p95 ms" if args.compare else ""))
        worst = 0.0
        for label, text in queries.items():
            hits = replica.count(text)
            s50, s95 = timings(partial(replica.search, text, limit=50), args.runs)
            c50, c95 = timings(partial(replica.count, text), max(20, args.runs // 5))
            worst = max(worst, s95)
            line = (f"{label:26} {text!r:24} {hits:7,} {s50:8.2f} /{s95:7.2f} "
                    f"{c50:8.2f} /{c95:7.2f}")
            if args.compare:
                n50, n95 = timings(partial(naive, replica, text), max(20, args.runs // 5))
                line += f"  {n50:7.2f} /{n95:7.2f}"
            print(line)
        name = sample.name or ""
        typing = [name[:i] for i in range(1, len(name) + 1)]
        per_key = []
        for _ in range(max(1, args.runs // 10)):
            for text in typing:
                started = time.perf_counter()
                replica.search(text, limit=50)
                per_key.append((time.perf_counter() - started) * 1000)
        per_key.sort()
        print(f"typing {name!r} key by key: p50 {statistics.median(per_key):.2f} ms, "
              f"p95 {per_key[int(len(per_key) * 0.95) - 1]:.2f} ms")
        print(f"worst search p95: {worst:.2f} ms (target <= 10 ms)")
        replica.close()


if __name__ == "__main__":
    main()
