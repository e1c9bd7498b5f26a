"""Throughput of one stage run without Prefect: cohort → policy → strategy → render → log → deliver (outbox).

    .venv/bin/python bench/stage_throughput.py --accounts 20000 [--database-url URL] [--memory]

Measures accounts per second for each step on a fresh database, and with
--memory the peak traced memory (a separate run: tracing slows everything). Run by hand; numbers go in the issue note, never in test asserts.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from datetime import date, datetime, timezone
from pathlib import Path

from campaigns.channels import OutboxGateway
from campaigns.channels.base import stored_in
from campaigns.db.engine import make_engine
from campaigns.sealing.keys import load_keys
from campaigns.settings import get_settings
from campaigns.schema_upgrade import upgrade_database
from campaigns.db.models import Stage
from campaigns.delivery.deliver import deliver_queued
from campaigns.ladder.config import load_ladder
from campaigns.policy import load_policy
from campaigns.contact.brand import Brand
from campaigns.contact.pipeline import StageRun, enqueue_chunk, plan_stage_chunks
from campaigns.portfolio import import_portfolio
from campaigns.portfolio.demo import DemoSpec, generate_portfolio, write_demo_file
from campaigns.contact.render import TemplateLibrary
from campaigns.runs.records import start_run
from campaigns.settings import PROJECT_ROOT

AS_OF = date(2026, 11, 22)
NOW = datetime(2026, 11, 22, 14, tzinfo=timezone.utc)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--database-url")
    parser.add_argument("--memory", action="store_true", help="trace peak memory (slows the run ~2x)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    from scale import bench_keys  # bench/ is this script's own directory on sys.path

    bench_keys(workdir)
    url = args.database_url or f"sqlite:///{workdir / 'bench.db'}"
    engine = make_engine(url, keys=load_keys(get_settings()))
    upgrade_database(engine)

    t = time.perf_counter()
    frame = generate_portfolio(AS_OF, DemoSpec(accounts=args.accounts))
    path = write_demo_file(frame, workdir / "portfolio.csv")
    report = import_portfolio(engine, path, now=NOW)
    print(f"import: {report.accounts_loaded} accounts in {time.perf_counter() - t:.1f}s "
          f"({report.accounts_loaded / (time.perf_counter() - t):,.0f} accounts/s)")

    ladder = load_ladder(PROJECT_ROOT / "config" / "ladder.yaml")
    templates = TemplateLibrary(PROJECT_ROOT / "templates")
    policy = load_policy(PROJECT_ROOT / "config" / "policy.yaml")
    brand = Brand("Acme", "https://pay.example.com/{account_id}", "https://pay.example.com/p/{account_id}", "+1 800")
    gateways = {"email": OutboxGateway(engine), "sms": OutboxGateway(engine)}
    if args.memory:
        tracemalloc.start()
    for stage in (Stage.pre_due, Stage.soft_nudge, Stage.plan_offer):
        run = StageRun(start_run(engine, stage, AS_OF, NOW, started_at=NOW), stage, AS_OF, NOW)
        t0 = time.perf_counter()
        chunks = plan_stage_chunks(engine, ladder, stage, AS_OF, args.chunk_size)
        cohort = queued = 0
        t_enqueue = t_deliver = 0.0
        for bounds in chunks:
            t1 = time.perf_counter()
            result = enqueue_chunk(engine, ladder, templates, brand, run, bounds, policy,
                                   stores=stored_in(gateways, engine))  # as the flow: the outbox written final
            t2 = time.perf_counter()
            if result.queued_ids:
                deliver_queued(engine, gateways, stage=stage.value, as_of=AS_OF, now=NOW, policy=policy,
                               run_id=run.run_id, attempt_ids=result.queued_ids)
            t_deliver += time.perf_counter() - t2
            t_enqueue += t2 - t1
            cohort += result.cohort_size
            queued += result.tally.total("queued") + result.tally.total("sent")
        total = time.perf_counter() - t0
        print(f"{stage.value:>10}: {cohort:6d} accounts, {queued:6d} messages | decide+render+log "
              f"{cohort / max(t_enqueue, 1e-9):8,.0f} accounts/s | deliver (outbox) {queued / max(t_deliver, 1e-9):6,.0f} msg/s "
              f"| stage {cohort / total:6,.0f} accounts/s")
    if args.memory:
        peak = tracemalloc.get_traced_memory()[1]
        print(f"peak traced memory during the stages: {peak / 2**20:.1f} MiB (chunk size {args.chunk_size})")


if __name__ == "__main__":
    main()
