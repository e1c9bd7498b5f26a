"""A simulation you can trust: weeks of daily runs on a portfolio whose response to contact is known (issue 28).

    .venv/bin/python bench/targeting_sim.py [--new-per-day 300] [--learn-days 28] [--target-days 28]
                                            [--top-share 0.5] [--experiments 200]

Every day, ``--new-per-day`` accounts fall one day past due and the real soft_nudge stage runs for that day (the
project's cohort, policy, experiment assignment, templates, log and outbox, without Prefect), on a SQLite database
of its own. Whether an account pays is drawn from a truth the code never sees:

- *sure things* (a payment in the last 90 days, 30%): pay 55% of the time, contacted or not;
- *persuadable* (no recent payment, less than $150 due, 35%): 6% held out, 40% contacted;
- *lost* (no recent payment, $150 or more, 35%): 3% held out, 5% contacted.

The draw is made once, at the account's first assignment of the experiment, from whether that first message was
sent; a payer pays what was due 0 to 5 days later. The first ``--learn-days`` run the ladder's experiment (control,
and a 20% holdout); then the uplift model is trained (``campaigns.risk.uplift``, on the assignments whose window has
closed) and the next ``--target-days`` run an experiment of three arms: ``control`` (contact everyone, 45%),
``targeted`` (``targeting: {top_share}``, 45%) and a 10% holdout. After the last payments are in, the review of
the target days compares them (``targeting`` and ``uplift`` tables). Beside it, ``daily_look_false_positives``
looks at ``--experiments`` A/A experiments every day for 30 days.

Prints each figure; the last line is JSON with at least ``messages_targeted, messages_all, recovered_targeted,
recovered_all, recovery_diff_ci_low, recovery_diff_ci_high, fpr_fixed, fpr_always_valid, experiments``. Run by
hand: the numbers go in the issue note, never in test asserts.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from datetime import date, datetime, time as clock_time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

ZONE = ZoneInfo("America/New_York")
START = date(2026, 6, 1)
TRUTH = {"sure": (0.55, 0.55), "persuadable": (0.06, 0.40), "lost": (0.03, 0.05)}  # (held out, contacted)
COLUMNS = ["account_id", "customer_id", "name", "email", "phone", "locale", "timezone", "country", "currency",
           "balance", "amount_due", "due_date", "status", "product", "email_opt_out", "sms_opt_out", "sms_consent",
           "disputed", "cease_contact"]


def morning(day: date) -> datetime:
    return datetime.combine(day, clock_time(9), ZONE).astimezone(timezone.utc)


class Portfolio:
    """The accounts, their hidden type, and the payments drawn for them (made in their own time)."""

    def __init__(self, engine, workdir: Path, seed: int):
        self.engine, self.workdir, self.rng = engine, workdir, np.random.default_rng(seed)
        self.kind: dict[str, str] = {}
        self.due: dict[str, Decimal] = {}
        self.drawn: set[tuple[str, str]] = set()  # (experiment, account): one draw per first assignment
        self.pending: list[tuple[datetime, str, Decimal]] = []
        self.files = 0

    def arrive(self, day: date, count: int) -> None:
        """``count`` accounts fall one day past due on ``day`` (some paid something in the last 90 days)."""
        from campaigns.money.payments import import_payments
        from campaigns.portfolio import import_portfolio

        rows, prior = [], []
        for n in range(count):
            account = f"A{day:%m%d}{n:04d}"
            draw = self.rng.random()
            kind = "sure" if draw >= 0.70 else ("persuadable" if draw < 0.35 else "lost")
            low, high = {"sure": (40, 600), "persuadable": (40, 149), "lost": (150, 600)}[kind]
            amount = Decimal(int(self.rng.uniform(low, high)))
            self.kind[account], self.due[account] = kind, amount
            rows.append({"account_id": account, "customer_id": f"C{account}", "name": f"Bench {account}",
                         "email": f"{account.lower()}@example.com", "phone": "", "locale": "en-US",
                         "timezone": "America/New_York", "country": "US", "currency": "USD",
                         "balance": str(amount * 3), "amount_due": str(amount),
                         "due_date": (day - timedelta(days=1)).isoformat(), "status": "open", "product": "card",
                         "email_opt_out": "false", "sms_opt_out": "", "sms_consent": "no", "disputed": "false",
                         "cease_contact": "0"})
            if kind == "sure":
                prior.append((f"prior-{account}", account, Decimal("10.00"), morning(day) - timedelta(days=30)))
        self.files += 1
        path = self.workdir / f"portfolio-{self.files}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        report = import_portfolio(self.engine, path, now=morning(day) - timedelta(hours=2), zone=ZONE)
        assert report.ok, report.errors[:3]
        if prior:
            path = self.workdir / f"prior-{self.files}.csv"
            with path.open("w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(["payment_id", "account_id", "amount", "currency", "paid_at", "method", "reference"])
                for payment_id, account, amount, at in prior:
                    writer.writerow([payment_id, account, amount, "USD", at.isoformat(), "card", "prior"])
            import_payments(self.engine, path, morning(day) - timedelta(hours=1), ZONE)

    def respond(self, day: date) -> None:
        """Today's first assignments of each experiment decide, once, whether the account pays and when."""
        from sqlalchemy import select

        from campaigns.db.models import ContactAttempt

        a = ContactAttempt
        with self.engine.connect() as conn:
            rows = conn.execute(select(a.account_id, a.experiment, a.variant, a.status).where(
                a.as_of == day, a.variant.is_not(None))).all()
        for row in rows:
            if (row.experiment, row.account_id) in self.drawn:
                continue
            self.drawn.add((row.experiment, row.account_id))
            contacted = row.status in ("sent", "delivered")
            if self.rng.random() < TRUTH[self.kind[row.account_id]][1 if contacted else 0]:
                at = morning(day) + timedelta(days=int(self.rng.integers(0, 6)), hours=3)
                self.pending.append((at, row.account_id, self.due[row.account_id]))

    def pay_until(self, moment: datetime) -> int:
        """Import the drawn payments made by ``moment``."""
        from campaigns.money.payments import import_payments

        due = [p for p in self.pending if p[0] <= moment]
        self.pending = [p for p in self.pending if p[0] > moment]
        if not due:
            return 0
        self.files += 1
        path = self.workdir / f"payments-{self.files}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["payment_id", "account_id", "amount", "currency", "paid_at", "method", "reference"])
            for at, account, amount in due:
                writer.writerow([f"p-{account}-{at:%Y%m%d}", account, amount, "USD", at.isoformat(), "card", "sim"])
        return import_payments(self.engine, path, moment, ZONE).payments_loaded


def run_day(engine, ladder, day: date, templates, brand, policy) -> None:
    from campaigns.channels import OutboxGateway
    from campaigns.channels.base import stored_in
    from campaigns.contact.pipeline import StageRun, enqueue_chunk, plan_stage_chunks
    from campaigns.db.models import Stage
    from campaigns.delivery.deliver import deliver_queued
    from campaigns.runs.records import start_run

    now = morning(day)
    gateways = {"email": OutboxGateway(engine), "sms": OutboxGateway(engine), "push": OutboxGateway(engine)}
    run = StageRun(run_id=start_run(engine, Stage.soft_nudge, day, now, started_at=now), stage=Stage.soft_nudge,
                   as_of=day, now=now)
    stores = stored_in(gateways, engine)
    for bounds in plan_stage_chunks(engine, ladder, Stage.soft_nudge, day, 2000):
        enqueue_chunk(engine, ladder, templates, brand, run, bounds, policy, stores=stores)
        deliver_queued(engine, gateways, stage="soft_nudge", as_of=day, now=now, policy=policy, run_id=run.run_id,
                       bounds=bounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--new-per-day", type=int, default=300)
    parser.add_argument("--learn-days", type=int, default=28)
    parser.add_argument("--target-days", type=int, default=28)
    parser.add_argument("--top-share", type=float, default=0.5)
    parser.add_argument("--experiments", type=int, default=200)
    parser.add_argument("--seed", type=int, default=28)
    args = parser.parse_args()

    from scale import bench_keys

    from campaigns.contact.brand import Brand
    from campaigns.contact.render import TemplateLibrary
    from campaigns.db.engine import make_engine
    from campaigns.ladder.config import Ladder, load_ladder
    from campaigns.policy import load_policy
    from campaigns.review.config import load_review_rules
    from campaigns.review.effectiveness import run_review
    from campaigns.review.stats import daily_look_false_positives
    from campaigns.risk.model import training_units
    from campaigns.risk.uplift import train_and_store
    from campaigns.schema_upgrade import upgrade_database
    from campaigns.sealing.keys import load_keys
    from campaigns.settings import PROJECT_ROOT, get_settings

    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="targeting-sim-"))
    bench_keys(workdir)
    engine = make_engine(f"sqlite:///{workdir / 'sim.db'}", keys=load_keys(get_settings()))
    upgrade_database(engine, lender_zone=ZONE)
    shipped = load_ladder(PROJECT_ROOT / "config" / "ladder.yaml").model_dump(mode="json")
    first_target = START + timedelta(days=args.learn_days)
    last = first_target + timedelta(days=args.target_days - 1)
    ladder = Ladder.model_validate({
        **shipped, "stages": {"soft_nudge": {**shipped["stages"]["soft_nudge"], "channels": ["email"]}},
        "agency": None,
        "experiment": {"name": "learn", "holdout_share": 0.2, "arms": [{"name": "control", "share": 1.0}]},
        "experiments": [{"name": "target", "stage": "soft_nudge", "start": first_target.isoformat(),
                         "end": last.isoformat(), "holdout_share": 0.1, "arms": [
                             {"name": "control", "share": 0.5, "champion": True},
                             {"name": "targeted", "share": 0.5, "targeting": {"top_share": args.top_share}}]}]})
    rules = load_review_rules(PROJECT_ROOT / "config" / "review.yaml")
    templates = TemplateLibrary(PROJECT_ROOT / "templates")
    brand = Brand("Acme Lending", "https://pay.example.com/a/{account_id}", "https://pay.example.com/p/{account_id}",
                  "+1 800 555 0100")
    policy = load_policy(PROJECT_ROOT / "config" / "policy.yaml")
    portfolio = Portfolio(engine, workdir, args.seed)
    model = None
    day = START
    while day <= last:
        if day == first_target:
            units, window = training_units(engine, rules, day, days=args.learn_days)
            model = train_and_store(engine, units, window, morning(day) - timedelta(hours=3), rules)
            print(f"{day}: uplift model v{model.version} {model.status}: {model.note}", flush=True)
        portfolio.pay_until(morning(day) - timedelta(minutes=30))
        portfolio.arrive(day, args.new_per_day)
        run_day(engine, ladder, day, templates, brand, policy)
        portfolio.respond(day)
        day += timedelta(days=1)
    portfolio.pay_until(morning(last + timedelta(days=rules.attribution_window_days + 1)))
    review = run_review(engine, first_target, last, rules, ladder, stages=["soft_nudge"],
                        now=morning(last + timedelta(days=rules.attribution_window_days + 2)))
    [targeting] = review.targeting.to_dict("records")
    units = review.units[review.units["experiment"] == "target"]
    by_arm = units.groupby("variant").agg(accounts=("account_id", "size"), cured=("cured", "sum"),
                                          recovered=("recovered_reporting", "sum"), due=("amount_due_reporting", "sum"))
    from sqlalchemy import func, select

    from campaigns.db.models import ContactAttempt

    with engine.connect() as conn:  # every message each arm's accounts got in the target days, not only the first
        messages = dict(conn.execute(select(ContactAttempt.variant, func.count()).where(
            ContactAttempt.experiment == "target", ContactAttempt.status.in_(("sent", "delivered")))
            .group_by(ContactAttempt.variant)).all())
        # What the model predicted for each hidden type (the traces of the targeted arm's first assignments).
        traces = conn.execute(select(ContactAttempt.account_id, ContactAttempt.policy_trace).where(
            ContactAttempt.experiment == "target", ContactAttempt.variant == "targeted")).all()
    predicted: dict[str, list[float]] = {}
    for account, trace in traces:
        if trace and "predicted_uplift" in trace[0]:
            predicted.setdefault(portfolio.kind[account], []).append(trace[0]["predicted_uplift"])
    by_kind = {k: round(float(np.mean(v)), 4) for k, v in sorted(predicted.items())}
    arm = units[units["variant"] == "targeted"]
    contacted_share = {k: round(float(g["status"].isin(["sent", "delivered"]).mean()), 3)
                       for k, g in arm.groupby(arm["account_id"].map(portfolio.kind))}
    fpr_fixed, fpr_valid = daily_look_false_positives(experiments=args.experiments, days=30)
    result = {
        "accounts": int(len(portfolio.kind)), "days": args.learn_days + args.target_days,
        "model_qini": model.qini if model else None, "model_status": model.status if model else None,
        "messages_targeted": int(messages.get("targeted", 0)), "messages_all": int(messages.get("control", 0)),
        "first_messages_targeted": targeting["messages"], "first_messages_all": targeting["messages_against"],
        "accounts_targeted": int(by_arm.loc["targeted", "accounts"]), "accounts_all": int(by_arm.loc["control", "accounts"]),
        "recovered_targeted": round(float(by_arm.loc["targeted", "recovered"]), 2),
        "recovered_all": round(float(by_arm.loc["control", "recovered"]), 2),
        "recovered_holdout": round(float(by_arm.loc["holdout", "recovered"]), 2) if "holdout" in by_arm.index else None,
        "recovery_rate_targeted": round(targeting["recovery_rate"], 4),
        "recovery_rate_all": round(targeting["recovery_rate_against"], 4),
        "recovery_diff": round(targeting["recovery_diff"], 4),
        "recovery_diff_ci_low": round(targeting["recovery_diff_ci_low"], 4),
        "recovery_diff_ci_high": round(targeting["recovery_diff_ci_high"], 4),
        "interval": targeting["interval"], "review_says": targeting["finding"],
        "fpr_fixed": fpr_fixed, "fpr_always_valid": fpr_valid, "experiments": args.experiments,
        "predicted_uplift_by_hidden_type": by_kind, "targeted_contacted_share_by_hidden_type": contacted_share,
        "true_uplift_by_hidden_type": {
            k: round(t[1] - t[0], 4) for k, t in sorted(TRUTH.items())},
        "seconds": round(time.perf_counter() - started, 1),
    }
    per_t = result["messages_targeted"] / max(result["accounts_targeted"], 1)
    per_a = result["messages_all"] / max(result["accounts_all"], 1)
    result["fewer_messages"] = round(1 - per_t / per_a, 4) if per_a else None
    print(f"targeted vs contact-all: {result['messages_targeted']:,} vs {result['messages_all']:,} messages "
          f"({result['fewer_messages']:.0%} fewer per account), recovered ${result['recovered_targeted']:,.0f} vs "
          f"${result['recovered_all']:,.0f}; the review says: {targeting['finding']}")
    print(f"30 daily looks at {args.experiments} A/A experiments: {fpr_fixed:.1%} false positives fixed-horizon, "
          f"{fpr_valid:.1%} always-valid")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
