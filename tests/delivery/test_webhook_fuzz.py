"""Fuzz the SendGrid webhook: any signed body answers 2xx/4xx, never 5xx; every good event is applied once,
every bad one recorded, and nothing personal is kept or answered (issue 8: 3, 4, 5).

Each example signs a batch that mixes good events (unsubscribes, spam reports,
deliveries) with bad elements drawn by hypothesis: random JSON of any shape,
numbers too long to read, NaN, nesting 100,000 deep, events whose fields break
the schema, and opt-outs with a broken field (which must still be applied). The
batch is posted twice, as a provider redelivering it would.
"""

from __future__ import annotations

import json
import logging

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select
from starlette.testclient import TestClient

from campaigns.db.models import Base, Customer, OptOutEvent, ProviderEvent, ProviderEventProblem
from campaigns.delivery.provider_events import KNOWN
from campaigns.delivery.webhooks import create_app
from tests.delivery.test_provider_events import STAMP, attempt, event, signed, signing_key  # noqa: F401  (fixture)

GOOD_KINDS = ["unsubscribe", "spamreport", "group_unsubscribe", "delivered", "processed", "open"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
# A random value is bad as long as it is not an event of a known kind (that could be a good one by chance).
random_bad = json_values.filter(lambda v: not (isinstance(v, dict) and v.get("event") in KNOWN)).map(json.dumps)
raw_bad = st.sampled_from(["NaN", "-Infinity", "1" * 5000, "1e999", '"\\ud800"', "[" * 50_000 + "]" * 50_000,
                           '{"event": ' * 3000 + "1" + "}" * 3000])
broken_field = st.sampled_from([
    {"timestamp": 1e20}, {"timestamp": float("nan")}, {"timestamp": "yesterday"}, {"timestamp": True},
    {"attempt_id": "9" * 30}, {"attempt_id": -4}, {"attempt_id": 2**31}, {"attempt_id": [1]},
    {"sg_event_id": ""}, {"sg_event_id": "x" * 300}, {"sg_event_id": 12}, {"event": "reboot"}, {"event": None},
    {"event": ["unsubscribe"]}, {"event": {"kind": "spamreport"}}, {"email": ["a", "b"]}, {"type": {"x": 1}},
])


@st.composite
def batches(draw):
    """(element texts, kinds): 'good', 'bad' or 'salvaged' for each element."""
    n_good = draw(st.integers(min_value=1, max_value=4))
    items = [("good", draw(st.sampled_from(GOOD_KINDS))) for _ in range(n_good)]
    items += [("bad", draw(st.one_of(random_bad, raw_bad)))
              for _ in range(draw(st.integers(min_value=0, max_value=4)))]
    items += [("broken", draw(broken_field)) for _ in range(draw(st.integers(min_value=0, max_value=3)))]
    items += [("salvaged", draw(st.sampled_from(["unsubscribe", "spamreport"])))
              for _ in range(draw(st.integers(min_value=0, max_value=2)))]
    return draw(st.permutations(items))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=batches())
def test_any_signed_batch_applies_the_good_records_the_bad_and_never_fails(engine, signing_key, caplog, items):
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(delete(table))
    private, public = signing_key
    client = TestClient(create_app(engine, public, clock=lambda: STAMP), raise_server_exceptions=False)
    texts, expected_opt_outs, good_ids, expect_rejected, expect_salvaged = [], set(), set(), 0, 0
    for n, (kind, value) in enumerate(items):
        if kind == "bad":
            texts.append(value)
            expect_rejected += 1
            continue
        account = f"A{n}"
        attempt_id = attempt(engine, account)
        if kind == "good":
            texts.append(json.dumps(event(value, attempt_id, n)))
            good_ids.add(f"ev-{value}-{n}")
            if value in ("unsubscribe", "spamreport", "group_unsubscribe"):
                expected_opt_outs.add(f"C-{account}")
        elif kind == "broken":  # a delivery with one field broken: rejected
            texts.append(json.dumps({**event("delivered", attempt_id, n), **value}))
            expect_rejected += 1
        else:  # an opt-out whose time is broken: applied all the same
            texts.append(json.dumps({**event(value, attempt_id, n), "timestamp": "not a time"}))
            expected_opt_outs.add(f"C-{account}")
            good_ids.add(f"ev-{value}-{n}")
            expect_salvaged += 1
    body = "[" + ", ".join(texts) + "]"
    caplog.set_level(logging.DEBUG)
    caplog.clear()

    answers = [client.post("/webhooks/sendgrid/events", content=body, headers=signed(private, body, STAMP))
               for _ in range(2)]

    assert [a.status_code for a in answers] == [200, 200], answers[0].text
    with engine.connect() as conn:
        opted = set(conn.execute(select(Customer.id).where(Customer.email_opt_out.is_(True))).scalars())
        stored = conn.execute(select(ProviderEvent.event_id)).scalars().all()
        opt_out_rows = conn.execute(select(func.count()).select_from(OptOutEvent)).scalar_one()
        recorded = conn.execute(select(ProviderEventProblem.outcome, ProviderEventProblem.problem)).all()
    assert opted == expected_opt_outs
    assert len(stored) == len(set(stored)) and set(stored) == good_ids  # each good event stored once
    assert opt_out_rows == len(expected_opt_outs)                      # the redelivery opted nobody out twice
    outcomes = [o for o, _ in recorded]
    assert outcomes.count("rejected") == 2 * expect_rejected and outcomes.count("salvaged") == 2 * expect_salvaged
    kept = " ".join(p for _, p in recorded) + " ".join(a.text for a in answers) + caplog.text
    assert "@" not in kept  # no address in what we keep, answer or log
