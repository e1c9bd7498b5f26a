"""Peak memory and speed of `campaigns import` as the file grows: memory should stay flat in file size.

    .venv/bin/python bench/import_memory.py [--rows 40000 160000] [--database-url URL]

For each size, writes a synthetic portfolio CSV (the demo generator), then
imports it in a fresh child process (the peak resident set is its process tree's:
the import's own and its validating processes', Python and libraries included) into a fresh SQLite database, or into the
database at --database-url (migrated first; rows are upserted). Prints rows,
file size, seconds, rows per second, and peak RSS absolute and per MB of file.
Run by hand; numbers go in the issue note, never in test asserts.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

AS_OF = date(2026, 11, 22)

# The child's own high-water mark (VmHWM): ru_maxrss would carry the parent's size over the fork.
CHILD = """
import json, sys, time
from datetime import datetime, timezone
from campaigns.db.engine import make_engine
from campaigns.sealing.keys import load_keys
from campaigns.settings import get_settings
from campaigns.schema_upgrade import upgrade_database
from campaigns.portfolio import import_portfolio
engine = make_engine(sys.argv[1], keys=load_keys(get_settings()))
upgrade_database(engine)
start = time.perf_counter()
report = import_portfolio(engine, sys.argv[2], now=datetime(2026, 11, 22, 14, tzinfo=timezone.utc))
seconds = time.perf_counter() - start
print(json.dumps({"rows": report.rows_read, "loaded": report.accounts_loaded, "errors": len(report.errors),
                  "seconds": seconds,
                  "peak_kb": int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])}))
"""


def run_sampled(command: list[str]) -> tuple[str, int]:
    """Run ``command``; its stdout and the peak of the summed RSS of its process tree (bytes), sampled."""
    import psutil

    from scale import communicate_sampling  # bench/ is this script's own directory on sys.path

    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    root, peak = psutil.Process(proc.pid), 0

    def sample() -> None:
        nonlocal peak
        peak = max(peak, sum(p.memory_info().rss for p in (root, *root.children(recursive=True))))

    out, err = communicate_sampling(proc, sample, 0.05)
    if proc.returncode:
        raise SystemExit(f"the import failed (exit {proc.returncode}): {err[-2000:]}")
    return out, peak


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[40_000, 160_000])
    parser.add_argument("--database-url")
    args = parser.parse_args()
    from campaigns.portfolio.demo import DemoSpec, generate_portfolio, write_demo_file

    workdir = Path(tempfile.mkdtemp(prefix="bench-import-"))
    from scale import bench_keys  # bench/ is this script's own directory on sys.path

    bench_keys(workdir)
    print(f"{'rows':>9} {'file MB':>8} {'seconds':>8} {'rows/s':>8} {'peak RSS MB':>12} {'RSS / file':>10}")
    for rows in args.rows:
        path = write_demo_file(generate_portfolio(AS_OF, DemoSpec(accounts=rows)), workdir / f"p{rows}.csv")
        url = args.database_url or f"sqlite:///{workdir / f'bench{rows}.db'}"
        stdout, tree_peak = run_sampled([sys.executable, "-c", CHILD, url, str(path)])
        result = json.loads(stdout.strip().splitlines()[-1])
        size_mb = path.stat().st_size / 1e6
        # the validating processes beside the import count too: the tree's peak, or the child's own if higher
        peak_mb = max(tree_peak, result["peak_kb"] * 1024) / 2**20
        print(f"{result['rows']:>9,} {size_mb:>8.1f} {result['seconds']:>8.1f} "
              f"{result['rows'] / result['seconds']:>8,.0f} {peak_mb:>12.0f} {peak_mb / size_mb:>10.1f}")
        assert result["errors"] == 0 and result["loaded"] == rows, result


if __name__ == "__main__":
    main()
