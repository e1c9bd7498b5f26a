"""The primitives a stage's durable work is made of, each measured alone (issue 26: what a floor is built from).

    .venv/bin/python bench/primitives.py [--rows 100000] [--database-url postgresql+psycopg://postgres@127.0.0.1/test]

1. render: the context and the message of one account, with the project's own ``message_context`` and templates
   (soft_nudge; email and SMS; en-US and zh-CN), in µs per message;
2. seal: one value sealed with the project's ``seal`` (a subject line, a 2 KB body), in µs per value;
3. COPY of ``--rows`` attempt rows into ``contact_attempts`` as the migrations make it, on PostgreSQL, then again
   with its foreign keys dropped, then with each secondary index dropped in turn: rows/s, the client's and the
   PostgreSQL backend's CPU µs per row (the backend's from /proc: the server must be on this machine), and WAL bytes
   per row.

It works in a database of its own on the given server (``campaigns_primitives``, dropped and made afresh), with the
accounts that ``bench/scale.py`` makes. The last line is JSON. Run by hand; numbers go in the issue note.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

PROJECT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(PROJECT), str(PROJECT / "bench")]

from scale import AS_OF, NOW, fresh_database, generate  # noqa: E402  (bench/scale.py: the same accounts)


def per_call_us(fn, n: int) -> float:
    fn()  # warm: caches, templates compiled
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1e6


def render_costs(n: int) -> dict[str, float]:
    from campaigns.contact.brand import Brand
    from campaigns.contact.pipeline import StageRun, message_context
    from campaigns.contact.render import TemplateLibrary
    from campaigns.db.models import Stage
    from campaigns.ladder.config import load_ladder
    from campaigns.settings import get_settings

    settings = get_settings()
    templates = TemplateLibrary(settings.templates_dir)
    rule = load_ladder(settings.ladder_config).rule(Stage.soft_nudge)
    brand = Brand(lender_name="Acme Lending", pay_url="https://pay.example.com/{account_id}",
                  email_preferences_url="https://pay.example.com/prefs/{account_id}", support_phone="+1 800 555 0100",
                  plan_link_secret=b"k" * 32)
    run = StageRun(run_id="bench", stage=Stage.soft_nudge, as_of=AS_OF, now=NOW)
    costs = {}
    for locale, currency in (("en-US", "USD"), ("zh-CN", "CNY")):
        row = SimpleNamespace(account_id="A0001234", customer_id="C0001234", name="Sample Customer", locale=locale,
                              currency=currency, amount_due=Decimal("155.97"), balance=Decimal("623.87"),
                              due_date=AS_OF - timedelta(days=5), days_past_due=5, credit=Decimal(0))
        for channel in ("email", "sms"):
            name = templates.resolve(Stage.soft_nudge.value, channel, locale, None)

            def one(row=row, channel=channel, name=name):
                context, _ = message_context(row, channel, rule, run, brand)
                return templates.render(name, channel, context)

            costs[f"{channel}.{locale}"] = round(per_call_us(one, n), 1)
    return costs


def seal_costs(n: int) -> dict[str, float]:
    from campaigns.sealing.keys import load_keys
    from campaigns.sealing.seal import seal
    from campaigns.settings import get_settings

    ring = load_keys(get_settings())
    subject, body = "Your payment of $155.97 was due on November 18, 2026", "x" * 2048
    return {"subject": round(per_call_us(lambda: seal(ring, subject, "rendered_messages.subject"), n), 1),
            "body_2kb": round(per_call_us(lambda: seal(ring, body, "rendered_messages.body_text"), n), 1)}


def backend_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def copy_attempts(conn, account_ids: list[str], run_id: str) -> dict[str, float]:
    """COPY one attempt row per account (every column a stage writes), timed on both sides of the connection."""
    columns = ("run_id", "account_id", "customer_id", "stage", "cycle", "as_of", "channel", "template",
               "template_version", "variant", "segment", "experiment", "tone", "amount_due", "days_past_due",
               "status", "reason", "idempotency_key", "created_at", "updated_at", "policy_trace")
    stamp = NOW.isoformat()
    trace = json.dumps([{"rule": "contact_window", "zones": ["America/New_York"], "local": "10:00"}])
    batch = uuid.uuid4().hex[:8]
    with conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid(), pg_current_wal_lsn()")
        pid, lsn = cur.fetchone()
        cpu, client, wall = backend_cpu_seconds(pid), time.process_time(), time.perf_counter()
        with cur.copy(f"COPY contact_attempts ({', '.join(columns)}) FROM STDIN") as copy:
            for account_id in account_ids:
                copy.write_row((run_id, account_id, "C" + account_id[1:], "soft_nudge", AS_OF.isoformat(),
                                AS_OF, "email", "soft_nudge/email.en-US.j2", "0123456789abcdef", "gentle", "new",
                                "default", "gentle", Decimal("155.97"), 5, "sent", None,
                                f"{account_id}:soft_nudge:{AS_OF}:email:{batch}", stamp, stamp, trace))
        conn.commit()
        wall, client = time.perf_counter() - wall, time.process_time() - client
        cpu = backend_cpu_seconds(pid) - cpu
        cur.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", (lsn,))
        wal = float(cur.fetchone()[0])
        cur.execute("TRUNCATE contact_attempts CASCADE")  # the tables that reference it are empty here
        conn.commit()
    n = len(account_ids)
    return {"rows_per_s": round(n / wall), "client_cpu_us": round(client / n * 1e6, 1),
            "postgres_cpu_us": round(cpu / n * 1e6, 1), "wal_bytes": round(wal / n)}


def copy_costs(url: str, rows: int) -> dict[str, dict[str, float]]:
    import psycopg
    from sqlalchemy import make_url

    generate(url, rows)
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    results = {}
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        run_id = str(uuid.uuid4())
        cur.execute("INSERT INTO campaign_runs (id, stage, as_of, decided_at, started_at, status, dry_run, cohort_size,"
                    " counts) VALUES (%s, 'soft_nudge', %s, %s, %s, 'running', false, 0, '{}')",
                    (run_id, AS_OF, NOW, NOW))
        cur.execute("SELECT id FROM accounts ORDER BY id")
        account_ids = [r[0] for r in cur.fetchall()][:rows]
        cur.execute("ANALYZE")
        conn.commit()
        results["as migrated"] = copy_attempts(conn, account_ids, run_id)
        cur.execute("SELECT conname FROM pg_constraint WHERE conrelid = 'contact_attempts'::regclass "
                    "AND contype = 'f' ORDER BY conname")
        for (name,) in cur.fetchall():
            cur.execute(f'ALTER TABLE contact_attempts DROP CONSTRAINT "{name}"')
        conn.commit()
        results["without foreign keys"] = copy_attempts(conn, account_ids, run_id)
        cur.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'contact_attempts' AND indexname NOT IN "
                    "(SELECT conname FROM pg_constraint WHERE conrelid = 'contact_attempts'::regclass) "
                    "ORDER BY indexname")
        for (name,) in cur.fetchall():
            cur.execute(f'DROP INDEX "{name}"')
            conn.commit()
            results[f"... and without {name}"] = copy_attempts(conn, account_ids, run_id)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1/test")
    parser.add_argument("--calls", type=int, default=2_000, help="calls per render and seal measurement")
    args = parser.parse_args()
    os.environ.setdefault("CAMPAIGNS_DATA_DIR", str(Path("/tmp") / "campaigns-primitives"))
    from campaigns.sealing.keys import ensure_keys
    from campaigns.settings import get_settings

    ensure_keys(get_settings())
    render, sealed = render_costs(args.calls), seal_costs(args.calls)
    print("render µs per message (context + template):", render)
    print("seal µs per value:", sealed)
    url = fresh_database(args.database_url, "campaigns_primitives", Path("/tmp"))
    copies = copy_costs(url, args.rows)
    print(f"COPY of {args.rows:,} attempt rows into contact_attempts:")
    for configuration, figures in copies.items():
        print(f"  {configuration:58} {figures['rows_per_s']:>9,} rows/s  client {figures['client_cpu_us']:>5} µs  "
              f"postgres {figures['postgres_cpu_us']:>5} µs  WAL {figures['wal_bytes']:>5} B per row")
    print(json.dumps({"rows": args.rows, "at": datetime.now(timezone.utc).isoformat(), "render_us": render,
                      "seal_us": sealed, "copy": copies}))


if __name__ == "__main__":
    main()
