"""Requests a second the customer's page is served at, from one core, under the abuse middleware (issue 27).

    .venv/bin/python bench/customer_page.py [--accounts 2000] [--requests 4000] [--database-url URL]

A fresh database (a temporary SQLite file, or a PostgreSQL database of its own created and dropped here) gets the
demo's portfolio; then the receiver as `campaigns serve-webhooks` builds it (``create_app`` with the customer
pages, behind ``LimitSources``) answers ``GET /c/<token>`` for accounts in turn, two ways:

- **in process**: the ASGI app called directly, one request at a time, each from its own source address (the
  middleware's per-source budgets are in the path, and never refuse): the page's own cost, CPU per request;
- **over HTTP**: uvicorn in a child process pinned to core 0 (``taskset``), 8 keep-alive connections from this
  process on core 1; the child's CPU seconds are read from /proc. All requests come from 127.0.0.1, so the
  per-source request budget is raised out of the way (``--per-source`` keeps the default of 100 a second: then
  the number is how fast a flood from one address is refused, 429).

Prints each figure; the last line is JSON. Run by hand: the numbers go in the issue note, never in test asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

ZONE = ZoneInfo("America/New_York")
DAY = date(2026, 12, 3)
NOW = datetime(2026, 12, 3, 14, 0, tzinfo=timezone.utc)
SECRET = b"bench-customer-page-secret"

SERVER = """
import sys, uvicorn
from datetime import datetime, timezone
sys.path.insert(0, sys.argv[4])
from customer_page import build_app
app = build_app(sys.argv[1], sys.argv[3] == "per-source")
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
"""


def build_app(url: str, per_source: bool):
    from campaigns.contact.brand import Brand
    from campaigns.db.engine import make_engine
    from campaigns.delivery.abuse import Budget, SourceLimits
    from campaigns.delivery.customer_page import CustomerPages
    from campaigns.delivery.webhooks import create_app, default_limits
    from campaigns.ladder.config import load_ladder
    from campaigns.sealing.keys import load_keys
    from campaigns.settings import PROJECT_ROOT, get_settings

    engine = make_engine(url, keys=load_keys(get_settings()))
    ladder = load_ladder(PROJECT_ROOT / "config" / "ladder.yaml")
    brand = Brand("Acme Lending", "https://pay.example.com/a/{account_id}", "https://pay.example.com/p/{account_id}",
                  "+1 800 555 0100", page_secret=SECRET, support_email="help@example.com")
    pages = CustomerPages(SECRET, brand, ZONE, ladder.deferral, ladder.segments, clock=lambda: NOW)
    limits = default_limits() if per_source else SourceLimits(Budget(1e9, 1e9), Budget(20 / 60, 20))
    return create_app(engine, customer_pages=pages, limits=limits)


def prepare(url: str, accounts: int) -> list[str]:
    """The demo portfolio in a fresh database; the accounts' page tokens."""
    from campaigns.contact.page_links import make_page_token
    from campaigns.db.engine import make_engine
    from campaigns.portfolio import import_portfolio
    from campaigns.portfolio.demo import DemoSpec, generate_portfolio, write_demo_file
    from campaigns.schema_upgrade import upgrade_database
    from campaigns.sealing.keys import load_keys
    from campaigns.settings import get_settings

    engine = make_engine(url, keys=load_keys(get_settings()))
    upgrade_database(engine, lender_zone=ZONE)
    frame = generate_portfolio(DAY, DemoSpec(accounts=accounts, seed=7))
    with tempfile.TemporaryDirectory() as tmp:
        path = write_demo_file(frame, Path(tmp) / "portfolio.csv")
        report = import_portfolio(engine, path, now=NOW, zone=ZONE)
    assert report.ok, report.errors[:3]
    engine.dispose()
    return [make_page_token(SECRET, a, DAY + timedelta(days=30)) for a in frame["account_id"]]


def in_process(url: str, tokens: list[str], requests: int) -> dict:
    app = build_app(url, per_source=True)
    statuses: dict[int, int] = {}

    async def one(n: int) -> None:
        scope = {"type": "http", "method": "GET", "path": f"/c/{tokens[n % len(tokens)]}", "raw_path": b"",
                 "query_string": b"", "headers": [(b"host", b"bench")], "scheme": "http", "http_version": "1.1",
                 "client": (f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}", 40000), "server": ("bench", 80),
                 "root_path": "", "path_params": {}}

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            if message["type"] == "http.response.start":
                statuses[message["status"]] = statuses.get(message["status"], 0) + 1

        await app(scope, receive, send)

    async def run(count: int, start: int = 0) -> None:
        for n in range(start, start + count):
            await one(n)

    asyncio.run(run(min(200, requests)))  # warm: templates compiled, catalogs read, connections open
    statuses.clear()
    wall, cpu = time.perf_counter(), time.process_time()
    asyncio.run(run(requests, 1000))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"requests": requests, "statuses": statuses, "wall_s": round(wall, 2),
            "requests_per_s": round(requests / wall, 1), "cpu_ms_per_request": round(cpu / requests * 1000, 3)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def over_http(url: str, tokens: list[str], requests: int, per_source: bool, connections: int = 8) -> dict:
    port = free_port()
    child = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c", SERVER, url, str(port),
                              "per-source" if per_source else "raised", str(Path(__file__).parent)])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        os.sched_setaffinity(0, {1})
        statuses: dict[int, int] = {}

        async def client(share: list[str]) -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for tok in share:
                writer.write(f"GET /c/{tok} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                await reader.readexactly(length)
                statuses[status] = statuses.get(status, 0) + 1
            writer.close()

        async def run(count: int) -> None:
            picked = [tokens[n % len(tokens)] for n in range(count)]
            await asyncio.gather(*(client(picked[i::connections]) for i in range(connections)))

        asyncio.run(run(min(200, requests)))
        statuses.clear()
        cpu, wall = cpu_seconds(child.pid), time.perf_counter()
        asyncio.run(run(requests))
        wall, cpu = time.perf_counter() - wall, cpu_seconds(child.pid) - cpu
    finally:
        child.terminate()
        child.wait(timeout=20)
    return {"requests": requests, "statuses": statuses, "wall_s": round(wall, 2),
            "requests_per_s": round(requests / wall, 1), "server_cpu_ms_per_request": round(cpu / requests * 1000, 3),
            "server_core_busy": round(cpu / wall, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--per-source", action="store_true", help="keep the default per-source budget over HTTP")
    args = parser.parse_args()
    made_db = None
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/pages.db"
        if url.startswith("postgresql"):
            import psycopg
            from sqlalchemy.engine import make_url

            made_db = "bench_customer_page"
            admin = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {made_db}")
                conn.execute(f"CREATE DATABASE {made_db}")
            url = make_url(url).set(database=made_db).render_as_string(hide_password=False)
        try:
            tokens = prepare(url, args.accounts)
            local = in_process(url, tokens, args.requests)
            print(f"in process, one core: {local['requests_per_s']} pages/s, {local['cpu_ms_per_request']} CPU-ms a "
                  f"page ({local['statuses']})")
            http = over_http(url, tokens, args.requests, args.per_source)
            print(f"over HTTP, uvicorn on one core: {http['requests_per_s']} pages/s, "
                  f"{http['server_cpu_ms_per_request']} server CPU-ms a page, core busy {http['server_core_busy']} "
                  f"({http['statuses']})")
        finally:
            if made_db:
                with psycopg.connect(admin, autocommit=True) as conn:
                    conn.execute(f"DROP DATABASE IF EXISTS {made_db} WITH (FORCE)")
    print(json.dumps({"database": url.split(":")[0], "accounts": args.accounts, "in_process": local,
                      "over_http": http}))


if __name__ == "__main__":
    main()
