"""Benchmark: how long this disk takes to make a small write durable (write + fsync).

The server acks an update only after its commit's fsync, so this is the floor under the
writer's echo (docs/performance.md, "The writer's echo"). Prints figures, never asserts.

Usage: .venv/bin/python bench/fsync_latency.py [--dir DIR] [--count 200] [--rate 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.shared import percentile
from liveedit.client_cli.args import positive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=tempfile.gettempdir(),
                        help="a folder on the disk to measure (default: the temp folder, "
                        "where the benchmarks put their databases)")
    parser.add_argument("--count", type=positive, default=200, help="writes to time")
    parser.add_argument("--rate", type=positive, default=20, help="writes per second")
    args = parser.parse_args()
    fd, path = tempfile.mkstemp(dir=args.dir, prefix="fsync-")
    timings: list[float] = []
    try:
        for _ in range(args.count):
            os.write(fd, b"x" * 200)
            started = time.perf_counter()
            os.fsync(fd)
            timings.append((time.perf_counter() - started) * 1000)
            time.sleep(1 / args.rate)
    finally:
        os.close(fd)
        os.unlink(path)
    timings.sort()
    print(f"write + fsync of 200 bytes, {args.count} times at {args.rate:g}/s in {args.dir}: "
          f"p50 {percentile(timings, 0.5):.2f} ms, p99 {percentile(timings, 0.99):.2f} ms, "
          f"max {timings[-1]:.2f} ms")


if __name__ == "__main__":
    main()
