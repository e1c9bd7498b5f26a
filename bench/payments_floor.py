"""The floor of a payments import: its durable work done the fastest honest way (issue 26).

    .venv/bin/python bench/payments_floor.py --payments 1000000 --accounts 250000 \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres [--processes 2]

The same accounts and the same file as ``bench/payments_import.py`` (its ``create_accounts`` and
``write_payments``), in a schema of its own with the project's real tables (every index, constraint and foreign
key). This process reads the CSV with the ``csv`` module and the project's ``parse_payment`` and sends each
account's rows to the process that holds its share (``processes``, one per core by default). Each of those, on
a connection of its own, per batch of 5,000 rows in one transaction: locks the accounts (``FOR UPDATE``), takes
the payments' ids from their sequence, COPYs the payment rows and their ledger entries, reads the touched
accounts' whole ledgers as psycopg's tuples, derives each account's figures with the project's
``derive_figures`` and writes them back (COPY into a temporary table, one ``UPDATE ... FROM``). No checks of
known ids, reversals, plans, promises or queued messages, no report: what is left is what every payment costs.

Prints the wall time and the CPU seconds of this process tree and of PostgreSQL; the last line is JSON.
Run by hand; the numbers go in the issue note, never in test asserts.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
import zlib
from collections import defaultdict
from datetime import timezone
from multiprocessing import get_context
from pathlib import Path


sys.path.insert(0, str(Path(__file__).parent))
from payments_import import NOW, create_accounts, own_schema, run_sampled, write_payments  # noqa: E402

BATCH = 5000
ACCOUNT_COLUMNS = ("balance", "amount_due", "due_date", "credit", "paid_off_at", "statement_id", "ledger_head")


def _share_process(dsn: str, inbox) -> None:
    import psycopg

    from campaigns.money.derivation import Entry, derive_figures

    utc = timezone.utc
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TEMPORARY TABLE floor_accounts (id varchar(64), balance numeric, amount_due numeric, "
                     "due_date date, credit numeric, paid_off_at timestamptz, statement_id integer, "
                     "ledger_head integer) ON COMMIT DELETE ROWS")
        conn.commit()
        while (batch := inbox.recv()) is not None:
            accounts = sorted({p["account_id"] for p in batch})
            with conn.transaction():
                conn.execute("SELECT id FROM accounts WHERE id = ANY(%s) ORDER BY id FOR UPDATE", (accounts,))
                ids = [r[0] for r in conn.execute(
                    "SELECT nextval(pg_get_serial_sequence('payments', 'id')) FROM generate_series(1, %s)",
                    (len(batch),))]
                with conn.cursor().copy("COPY payments (id, payment_id, account_id, amount, currency, paid_at, "
                                        "source, method, reference, recorded_at) FROM STDIN") as copy:
                    for i, p in zip(ids, batch):
                        copy.write_row((i, p["payment_id"], p["account_id"], p["amount"], p["currency"],
                                        p["paid_at"], "import", p["method"], p["reference"], NOW))
                with conn.cursor().copy("COPY ledger_entries (account_id, kind, entry_key, effective_at, "
                                        "recorded_at, currency, amount, payment_id, source) FROM STDIN") as copy:
                    for i, p in zip(ids, batch):
                        copy.write_row((p["account_id"], "payment", f"payment|{p['payment_id']}", p["paid_at"], NOW,
                                        p["currency"], p["amount"], i, "import"))
                ledgers = defaultdict(list)
                for r in conn.execute("SELECT id, account_id, kind, effective_at, recorded_at, amount, balance, "
                                      "amount_due, due_date, lender_status, payment_id FROM ledger_entries "
                                      "WHERE account_id = ANY(%s) ORDER BY account_id, id", (accounts,)).fetchall():
                    ledgers[r[1]].append(Entry(r[0], r[2], r[3].astimezone(utc), r[4].astimezone(utc), *r[5:]))
                with conn.cursor().copy("COPY floor_accounts FROM STDIN") as copy:
                    for account in accounts:
                        f = derive_figures(ledgers[account], "USD")
                        copy.write_row((account, f.balance, f.amount_due, f.due_date, f.credit, f.paid_off_at,
                                        f.statement_id, f.head))
                conn.execute("UPDATE accounts a SET " + ", ".join(f"{c} = s.{c}" for c in ACCOUNT_COLUMNS)
                             + ", updated_at = %s FROM floor_accounts s WHERE a.id = s.id", (NOW,))


def floor_child(url: str, path: str, processes: int) -> None:
    """The floor itself (run in a child process, so that its tree is sampled alone)."""
    from sqlalchemy.engine import make_url

    from campaigns.intake.rows import RowError
    from campaigns.money.payments import parse_payment

    parsed_url = make_url(url)
    dsn = parsed_url.set(drivername="postgresql").render_as_string(hide_password=False)
    context = get_context("spawn")
    pipes, workers = [], []
    for _ in range(processes):
        receive, send = context.Pipe(duplex=False)
        worker = context.Process(target=_share_process, args=(dsn, receive))
        worker.start()
        pipes.append(send)
        workers.append(worker)
    started = time.perf_counter()
    batches: list[list[dict]] = [[] for _ in range(processes)]
    errors: list[RowError] = []
    with open(path, newline="") as handle:
        for row, values in enumerate(csv.DictReader(handle), start=2):
            payment = parse_payment(path, row, values, errors, NOW)
            share = zlib.crc32(payment["account_id"].encode()) % processes
            batches[share].append(payment)
            if len(batches[share]) >= BATCH:
                pipes[share].send(batches[share])
                batches[share] = []
    for share, batch in enumerate(batches):
        if batch:
            pipes[share].send(batch)
        pipes[share].send(None)
    for worker in workers:
        worker.join()
        if worker.exitcode:
            raise SystemExit(f"a share process failed (exit {worker.exitcode})")
    print(json.dumps({"seconds": time.perf_counter() - started, "errors": len(errors)}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--payments", type=int, default=100_000)
    parser.add_argument("--accounts", type=int, default=25_000)
    parser.add_argument("--database-url", help="PostgreSQL URL (a schema of its own is made and dropped)")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--child", nargs=2, metavar=("URL", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        floor_child(args.child[0], args.child[1], args.processes)
        return
    if not args.database_url:
        parser.error("--database-url is required: the floor is PostgreSQL's")
    workdir = Path(tempfile.mkdtemp(prefix="bench-payments-floor-"))
    with own_schema(args.database_url, workdir) as url:
        create_accounts(url, args.accounts)
        path = workdir / "payments.csv"
        write_payments(path, args.payments, args.accounts)
        result, peak_mb, cpu = run_sampled([sys.executable, __file__, "--processes", str(args.processes), "--child",
                                            url, str(path)], "the floor")
    result.update(payments=args.payments, accounts=args.accounts, processes=args.processes,
                  peak_rss_mb=round(peak_mb), floor_cpu_s=cpu.get("tree", 0.0), postgres_cpu_s=cpu.get("postgres", 0.0),
                  cpu_us_per_payment=round((cpu.get("tree", 0.0) + cpu.get("postgres", 0.0)) / args.payments * 1e6, 1))
    print(f"floor: {result['seconds']:.1f} s, CPU s: this tree {result['floor_cpu_s']}, PostgreSQL "
          f"{result['postgres_cpu_s']}, peak RSS {result['peak_rss_mb']} MB")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
