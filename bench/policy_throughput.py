"""Time of the release decision (every compliance rule) over chunks of 10,000 accounts.

    .venv/bin/python bench/policy_throughput.py [--accounts 100000] [--chunk 10000] [--history 3]

Synthetic rows mix US, CN, UK and IE customers, stated and missing zones,
geographic and non-geographic phones, flags and holds, plus ``--history``
past contacts per account over the last 9 days. Reports seconds per 100k
accounts. Run by hand; the number goes in the issue note, never in a test.
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import datetime, timedelta, timezone

import pandas as pd

from campaigns.policy import evaluate_release, load_policy
from campaigns.settings import PROJECT_ROOT

PEOPLE = [
    ("America/New_York", "+12125550123", "US"), ("America/Los_Angeles", "+12125550123", "US"),
    ("America/Phoenix", "+16025550111", "US"), (None, "+13105550123", "US"), (None, None, "US"),
    ("Asia/Shanghai", "+8613800138000", "CN"), ("Europe/London", "+447700900123", "GB"),
    ("Europe/Dublin", None, "IE"), ("Pacific/Honolulu", "+18005550100", "US"),
]


def synthetic(n: int, history_per_account: int, now: datetime, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = random.Random(seed)
    rows, past = [], []
    for i in range(n):
        zone, phone, country = PEOPLE[i % len(PEOPLE)]
        account = f"A{i:07d}"
        rows.append({
            "account_id": account, "customer_id": f"C{i:07d}", "channel": rng.choice(["email", "email", "sms"]),
            "timezone": zone, "phone": phone, "country": country, "email": "x@example.com", "status": "open",
            "amount_due": 100, "email_opt_out": rng.random() < 0.05, "sms_opt_out": rng.random() < 0.05,
            "sms_consent": rng.random() < 0.7, "email_is_employer": rng.random() < 0.02,
            "email_employer_consent": False, "has_open_dispute": rng.random() < 0.02,
            "cease_contact": rng.random() < 0.01, "holds": "bankruptcy" if rng.random() < 0.01 else "",
            "created_at": now,
        })
        for _ in range(history_per_account):
            past.append({"account_id": account, "channel": rng.choice(["email", "sms", "call"]),
                         "at": now - timedelta(minutes=rng.randrange(9 * 24 * 60)), "outcome": None})
    return pd.DataFrame(rows), pd.DataFrame(past)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=10_000)
    parser.add_argument("--history", type=int, default=3)
    args = parser.parse_args()
    config = load_policy(PROJECT_ROOT / "config" / "policy.yaml")
    now = datetime(2026, 11, 24, 16, 0, tzinfo=timezone.utc)
    frame, history = synthetic(args.accounts, args.history, now)
    evaluate_release(frame.iloc[:200], history.iloc[:600], now, config)  # warm caches (zones, holidays)
    # Each chunk's past contacts, as the stage reads them per chunk from the database (not timed: selecting
    # them out of the whole history here would cost more than the policy itself).
    history = history.sort_values("account_id", kind="stable").reset_index(drop=True)
    account_of = history["account_id"].to_numpy(dtype=object)
    pieces = []
    for start in range(0, len(frame), args.chunk):
        chunk = frame.iloc[start:start + args.chunk]
        ids = chunk["account_id"].to_numpy(dtype=object)
        low, high = account_of.searchsorted(ids.min()), account_of.searchsorted(ids.max(), side="right")
        pieces.append((chunk, history.iloc[low:high]))
    started = time.perf_counter()
    decisions = [evaluate_release(chunk, past, now, config) for chunk, past in pieces]
    elapsed = time.perf_counter() - started
    result = pd.concat(decisions)
    print(f"{len(frame):,} accounts, {len(history):,} past contacts, chunks of {args.chunk:,}: "
          f"{elapsed:.2f}s ({elapsed / len(frame) * 100_000:.2f}s per 100k accounts, "
          f"{len(frame) / elapsed:,.0f} accounts/s)")
    print(result["decision"].value_counts().to_string())
    print(result["reason"].value_counts().head(8).to_string())


if __name__ == "__main__":
    main()
