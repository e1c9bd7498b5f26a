"""Kill a daily campaign at random points; after a re-run nothing is sent twice and nothing is lost.

Each trial runs the real ``daily_campaign`` flow in a child process
(``tests/crash_child.py``) against this session's database and Prefect server,
and kills it with SIGKILL at a checkpoint drawn at random from the whole run:
any SQL statement (before or after it runs), any commit, or inside the provider
(request received; message accepted but the answer not yet back). Then, as in
production: the day is re-run, the provider's events arrive, and the dispatcher
recovers what the dead process left half-done. The provider is a durable fake
(``ProviderLog``): its log is the truth about what customers received, and it
is compared with ``contact_attempts`` and with an uninterrupted run.

The checkpoints are drawn from a seed that changes every session (``KILL_SEED``,
shown in the pytest header and in every failure message), so each CI run tries
new points; ``CAMPAIGNS_KILL_SEED=<seed>`` replays a failure.

Two providers: one that honours our attempt id as an idempotency key (outbox,
worklist, push webhook), one that does not (SendGrid, Twilio) and is settled by
its events instead; and the outbox itself, whose messages a stage writes final in
the chunk's one transaction with their attempts (the worklist's are, in every trial).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import Counter

import pytest
from sqlalchemy import delete, select

from campaigns.db.models import AgentWorklistItem, Base, ContactAttempt, OutboxMessage
from campaigns.delivery.provider_events import apply_sendgrid_events
from campaigns.settings import PROJECT_ROOT
from tests.conftest import AS_OF, KILL_SEED, NOW
from tests.factories import add_account
from tests.fakes import ProviderLog

pytestmark = pytest.mark.slow
# Where each trial kills: inside the provider after it took a message (the riskiest
# moment: sent, but we do not know it yet), at a commit, and anywhere at all.
TRIALS = {"provider-accepted": "provider: accepted", "at-a-commit": "commit", "anywhere": None}
_reference: dict[str, tuple[list[str], dict, int]] = {}


def portfolio(engine) -> None:
    for dpd in (-3, -1, 2, 5, 16, 30, 50, 60):
        for n in range(3):
            add_account(engine, f"A{dpd:+03d}-{n}", days_past_due=dpd)
    add_account(engine, "SMS-ONLY", days_past_due=5, customer={"email_opt_out": True})
    add_account(engine, "ZH", days_past_due=16, currency="CNY",
                customer={"locale": "zh-CN", "timezone": "Asia/Shanghai", "country": "CN", "phone": "+8613800138000"})
    add_account(engine, "DISPUTED", days_past_due=5, disputed=True)


def empty(engine) -> None:
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(delete(table))


def run_child(database_url: str, ladder_file, log: ProviderLog | None, kill_at: int) -> subprocess.CompletedProcess:
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "CAMPAIGNS_DATABASE_URL": database_url, "CAMPAIGNS_LADDER_CONFIG": str(ladder_file),
           "CAMPAIGNS_CHUNK_SIZE": "4", "PREFECT_API_URL": PREFECT_API_URL.value(),
           "CRASH_PROVIDER_LOG": log.path if log else "", "CRASH_IDEMPOTENT": "1" if log and log.idempotent else "0",
           "CRASH_KILL_AT": str(kill_at), "CRASH_AS_OF": AS_OF.isoformat(), "CRASH_NOW": NOW.isoformat()}
    return subprocess.run([sys.executable, "-m", "tests.crash_child"], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def final_state(engine) -> tuple[dict, list[int], int]:
    with engine.connect() as conn:
        rows = conn.execute(select(ContactAttempt.id, ContactAttempt.account_id, ContactAttempt.stage,
                                   ContactAttempt.channel, ContactAttempt.status)).all()
        worklist = conn.execute(select(AgentWorklistItem.attempt_id)).scalars().all()
    state = {(r.account_id, r.stage, r.channel): r.status for r in rows}
    delivered = sorted(r.id for r in rows if r.channel in ("email", "sms") and r.status in ("sent", "delivered"))
    assert len(worklist) == len(set(worklist)), "an account was put on the agents' worklist twice"
    return state, delivered, len(worklist)


def outbox_sends(engine) -> Counter:
    """The outbox as a provider log: the attempts it holds a message for (its attempt_id is unique: a second
    copy would have failed the chunk's write, and shows here as a missing or extra id)."""
    with engine.connect() as conn:
        return Counter(conn.execute(select(OutboxMessage.attempt_id)).scalars().all())


@pytest.mark.parametrize("idempotent", [True, False, None],
                         ids=["idempotent-provider", "event-settled-provider", "outbox-written-final"])
@pytest.mark.parametrize("trial", TRIALS)
def test_a_run_killed_at_a_random_point_then_recovered_sends_each_message_exactly_once(
    prefect_harness, engine, database_url, ladder_file, tmp_path, monkeypatch, trial, idempotent, gateways
):
    from flows.daily import daily_campaign
    from flows.dispatch import dispatch

    outbox = idempotent is None
    if trial == "provider-accepted" and outbox:
        pytest.skip("the outbox has no provider moments: its messages are written in the chunk's transaction")
    reference = (database_url, outbox)
    if reference not in _reference:  # an uninterrupted run: how many checkpoints, and what it ends with
        portfolio(engine)
        log = None if outbox else ProviderLog(tmp_path / "reference.log", idempotent)
        done = run_child(database_url, ladder_file, log, kill_at=0)
        assert done.returncode == 0, done.stderr[-3000:]
        state, delivered, worklist = final_state(engine)
        sent = sorted(outbox_sends(engine)) if outbox else sorted(a for a, _ in log.lines())
        assert sent == delivered and worklist == 6
        _reference[reference] = (json.loads(done.stdout.strip().splitlines()[-1]), state, worklist)
        empty(engine)
    labels, expected_state, expected_worklist = _reference[reference]

    portfolio(engine)
    wanted = TRIALS[trial]
    candidates = [n for n, label in enumerate(labels, 1) if wanted is None or label.startswith(wanted)]
    assert candidates, f"no checkpoint labelled {wanted!r}"
    kill_at = random.Random(f"{KILL_SEED}-{trial}-{idempotent}").choice(candidates)
    checkpoints = len(labels)
    log = None if outbox else ProviderLog(tmp_path / "provider.log", idempotent)
    killed = run_child(database_url, ladder_file, log, kill_at)
    replay = f"CAMPAIGNS_KILL_SEED={KILL_SEED}"
    assert killed.returncode == -9, f"expected SIGKILL at checkpoint {kill_at} ({replay}): {killed.stderr[-2000:]}"

    # What production does next: the day is re-run, the provider's events arrive,
    # and the dispatcher recovers the dead process's claims (its lease long gone).
    monkeypatch.setenv("CAMPAIGNS_CLAIM_LEASE_SECONDS", "0")
    monkeypatch.setenv("CAMPAIGNS_RESEND_UNCONFIRMED_AFTER_HOURS", "0.00001")
    if not outbox:
        gateways(email=log, sms=log)
    daily_campaign(as_of=AS_OF, now=NOW)
    if idempotent is False:
        apply_sendgrid_events(engine, log.processed_events(), NOW)
    dispatch(now=NOW)

    where = f"(killed at checkpoint {kill_at} of {checkpoints}: {labels[kill_at - 1]}; replay with {replay})"
    sends = outbox_sends(engine) if outbox else Counter(a for a, _ in log.lines())
    assert [a for a, n in sends.items() if n > 1] == [], f"sent twice {where}"
    state, delivered, worklist = final_state(engine)
    assert sorted(sends) == delivered, f"provider log and contact_attempts disagree {where}"
    assert state == expected_state, f"the outcome differs from an uninterrupted run {where}"
    assert worklist == expected_worklist
    assert not {s for s in state.values()} & {"queued", "sending", "unknown"}, where
