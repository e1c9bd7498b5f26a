"""Wall time and peak memory of the effectiveness review over a large log (issue 11: 1M attempts, 300k payments).

    .venv/bin/python bench/review_throughput.py --attempts 1000000 --payments 300000 \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test

Writes (untimed, with PostgreSQL's COPY) ``--accounts`` accounts, four weeks of
assignments (``--attempts`` rows of soft_nudge: three arms
and a holdout in nudge-2026q4's shares, a tenth of them suppressed before assignment) and ``--payments``
payments, in a schema of its own. Then, in a child process so that its peak
memory is its own, runs ``campaigns review`` as the CLI does (``run_review`` and
``write_review``: Parquet and the HTML report) and prints the time of each part
and the peak RSS. Run by hand; the numbers go in the issue note, never in tests.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import create_engine, text

START = date(2026, 10, 26)
DAYS = 28
NOW = datetime(2026, 11, 23, 14, tzinfo=timezone.utc)
CHILD = """
import json, sys, time
from datetime import date
from pathlib import Path
from campaigns.ladder.config import load_ladder
from campaigns.db.engine import make_engine
from campaigns.sealing.keys import load_keys
from campaigns.settings import get_settings
from campaigns.review.effectiveness import load_assignments, load_outcomes, review_units
from campaigns.review.report import write_review
from campaigns.review.config import load_review_rules
from campaigns.settings import PROJECT_ROOT

engine = make_engine(sys.argv[1], keys=load_keys(get_settings()))
rules = load_review_rules(PROJECT_ROOT / "config" / "review.yaml")
ladder = load_ladder(PROJECT_ROOT / "config" / "ladder.yaml")
since, until = date.fromisoformat(sys.argv[2]), date.fromisoformat(sys.argv[3])
t0 = time.perf_counter()
units = load_assignments(engine, since, until)
units = units[units["amount_due"] > 0].reset_index(drop=True)
t1 = time.perf_counter()
units = load_outcomes(engine, units, since, until, rules)
t2 = time.perf_counter()
review = review_units(units, since, until, rules, ladder)
t3 = time.perf_counter()
write_review(review, Path(sys.argv[4]))
t4 = time.perf_counter()
print(json.dumps({"units": len(review.units), "read": t1 - t0, "outcomes": t2 - t1, "tables": t3 - t2,
                  "files": t4 - t3, "total": t4 - t0, "findings": review.findings[:3],
                  "peak_kb": int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])}))
"""


def copy_rows(raw, table: str, columns: list[str], rows) -> None:
    with raw.cursor() as cursor:
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def populate(url: str, accounts: int, attempts: int, payments: int) -> None:
    from campaigns.db.engine import make_engine
    from campaigns.sealing.keys import load_keys
    from campaigns.settings import get_settings
    from campaigns.schema_upgrade import upgrade_database

    engine = make_engine(url, keys=load_keys(get_settings()))
    upgrade_database(engine)
    rng = random.Random(20261123)
    raw = engine.raw_connection()
    try:
        driver = raw.driver_connection
        copy_rows(driver, "customers", ["id", "locale", "email_opt_out", "sms_opt_out", "sms_consent", "created_at",
                                        "updated_at"],
                  ((f"C{i:08d}", "en-US", False, False, True, NOW, NOW) for i in range(accounts)))
        copy_rows(driver, "accounts", ["id", "customer_id", "currency", "balance", "amount_due", "due_date", "status",
                                       "cease_contact", "created_at", "updated_at"],
                  ((f"A{i:08d}", f"C{i:08d}", "USD" if i % 5 else "CNY", 400, 100, START - timedelta(days=i % 40),
                    "open", False, NOW, NOW) for i in range(accounts)))
        runs = [(f"run-{d}", "soft_nudge", START + timedelta(days=d)) for d in range(DAYS)]
        copy_rows(driver, "campaign_runs", ["id", "stage", "as_of", "decided_at", "started_at", "status", "dry_run",
                                            "cohort_size", "counts", "name"],
                  ((r, s, day, NOW, NOW, "completed", False, 0, "{}", f"daily-{day}") for r, s, day in runs))

        def attempt_rows():
            stages = ["soft_nudge"]  # the experiment's stage (others run the default experiment)
            for n in range(attempts):
                day = n % DAYS
                account = f"A{(n * 7919) % accounts:08d}"
                stage = stages[n % len(stages)]
                draw = rng.random()
                assigned = draw > 0.1
                # nudge-2026q4's shares among the assigned: holdout 10%, then 45/22.5/22.5% of the rest.
                arm = ("holdout" if draw < 0.19 else "control" if draw < 0.595 else "gentle" if draw < 0.7975
                       else "sms_first") if assigned else None
                at = datetime.combine(START + timedelta(days=day), datetime.min.time(), timezone.utc) \
                    + timedelta(hours=14)
                yield (f"run-{day}", account, "C" + account[1:], stage, f"{day}-{n}", START + timedelta(days=day),
                       "email", arm, "first_time_debtor" if assigned else None,
                       "nudge-2026q4" if assigned else None, 100 if assigned else None, 5 if assigned else None,
                       "holdout" if arm == "holdout" else "sent" if assigned else "suppressed",
                       None if assigned else "opted_out", f"k{n}", at, at)

        copy_rows(driver, "contact_attempts",
                  ["run_id", "account_id", "customer_id", "stage", "cycle", "as_of", "channel", "variant", "segment",
                   "experiment", "amount_due", "days_past_due", "status", "reason", "idempotency_key", "created_at",
                   "updated_at"], attempt_rows())
        copy_rows(driver, "payments", ["payment_id", "account_id", "amount", "currency", "paid_at", "source"],
                  ((f"P{i:09d}", f"A{rng.randrange(accounts):08d}", rng.choice([25, 50, 100, 120]), "USD",
                    datetime.combine(START, datetime.min.time(), timezone.utc)
                    + timedelta(seconds=rng.randrange(-60 * 86400, 35 * 86400)), "bench") for i in range(payments)))
        driver.commit()
    finally:
        raw.close()
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--attempts", type=int, default=100_000)
    parser.add_argument("--payments", type=int, default=30_000)
    parser.add_argument("--accounts", type=int, default=300_000)
    parser.add_argument("--database-url", required=True, help="PostgreSQL URL (a schema of its own is made and dropped)")
    args = parser.parse_args()
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(args.database_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{args.database_url}?options=-csearch_path%3D{schema}"
    try:
        populate(url, args.accounts, args.attempts, args.payments)
        out = Path(tempfile.mkdtemp(prefix="bench-review-"))
        until = START + timedelta(days=DAYS - 1)
        done = subprocess.run([sys.executable, "-c", CHILD, url, START.isoformat(), until.isoformat(), str(out)],
                              capture_output=True, text=True, check=True)
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{args.attempts:,} attempts, {args.payments:,} payments, {args.accounts:,} accounts (PostgreSQL): "
              f"{r['units']:,} units; read {r['read']:.1f} s, outcomes {r['outcomes']:.1f} s, tables "
              f"{r['tables']:.1f} s, files {r['files']:.1f} s, total {r['total']:.1f} s, peak RSS "
              f"{r['peak_kb'] / 1024:.0f} MB")
        for line in r["findings"]:
            print("  ", line)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


if __name__ == "__main__":
    main()
