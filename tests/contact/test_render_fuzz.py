"""Fuzz rendering: any exception from any template fails one message, never the chunk (issue 8: 2, 5).

Each example breaks the soft_nudge email template for one account of a chunk,
with a real failing expression or a helper that raises an exception drawn by
hypothesis (its text stuffed with that customer's personal data), runs the
chunk through the real pipeline on SQLite and PostgreSQL, and checks that only
that account's message failed (``template_error``), that every other account
was queued, and that no personal value reached ``detail`` or the logs.
"""

from __future__ import annotations

import decimal
import logging

import jinja2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from campaigns.ladder.config import load_ladder
from campaigns.contact.pipeline import StageRun, enqueue_chunk, plan_stage_chunks
from campaigns.contact.render import TemplateLibrary
from campaigns.db.models import Base, ContactAttempt, Stage
from campaigns.runs.records import start_run
from tests.conftest import AS_OF, NOW
from tests.factories import add_account
from tests.contact.test_pipeline import BRAND, POLICY
from tests.contact.test_render import copy_templates

VICTIM = "A0000003"


class LenderSpecificError(Exception):
    pass


EXCEPTIONS = [ValueError, TypeError, KeyError, IndexError, ZeroDivisionError, RecursionError, AttributeError,
              OverflowError, LookupError, RuntimeError, NotImplementedError, AssertionError, OSError,
              UnicodeError, decimal.InvalidOperation, LenderSpecificError, jinja2.UndefinedError,
              jinja2.TemplateRuntimeError, jinja2.TemplateAssertionError]
EXPRESSIONS = ["{{ name + 1 }}", "{{ name.upper(1) }}", "{{ plan_options[name] }}", "{{ '%d' | format(name) }}",
               "{{ 1 // (days_past_due - days_past_due) }}", "{{ range(1, 2, 0) | list }}", "{{ name.no.such }}",
               "{{ lender | attr(name) | attr('x') }}", "{% for x in name.split() %}{{ x + 1 }}{% endfor %}"]


def personal(n: int) -> dict[str, str]:
    return {"name": f"Grace Garcia{n}", "email": f"grace.garcia{n}@example.com", "phone": f"+1212555{n:04d}"}


@pytest.fixture
def portfolio(engine):
    def build():
        with engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(delete(table))
        for n in range(1, 6):
            add_account(engine, f"A000000{n}", days_past_due=3, customer=personal(n))
    return build


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(failure=st.one_of(st.sampled_from(EXCEPTIONS), st.sampled_from(EXPRESSIONS)),
       block=st.sampled_from(["subject", "text", "html"]))
def test_any_exception_in_a_template_costs_exactly_that_message(engine, portfolio, tmp_path_factory, ladder_file,
                                                                 caplog, failure, block):
    portfolio()
    root = copy_templates(tmp_path_factory.mktemp("templates"))
    path = root / "soft_nudge" / "email.en-US.j2"
    snippet = failure if isinstance(failure, str) else "{{ boom() }}"
    broken = "{% block " + block + " %}{% if account_ref == '0003' %}" + snippet + "{% endif %}"
    path.write_text(path.read_text(encoding="utf-8").replace("{% block " + block + " %}", broken, 1), encoding="utf-8")
    templates = TemplateLibrary(root)
    if not isinstance(failure, str):
        victim = personal(3)

        def boom():
            raise failure(f"cannot greet {victim['name']} at {victim['email']} or {victim['phone']}")

        for env in (templates._plain, templates._html):
            env.globals["boom"] = boom

    ladder = load_ladder(ladder_file)
    run = StageRun(run_id=start_run(engine, Stage.soft_nudge, AS_OF, NOW, started_at=NOW), stage=Stage.soft_nudge,
                   as_of=AS_OF, now=NOW)
    caplog.set_level(logging.DEBUG)
    for bounds in plan_stage_chunks(engine, ladder, Stage.soft_nudge, AS_OF, 10):
        enqueue_chunk(engine, ladder, templates, BRAND, run, bounds, POLICY)

    with engine.connect() as conn:
        rows = conn.execute(select(ContactAttempt.account_id, ContactAttempt.status, ContactAttempt.reason,
                                   ContactAttempt.detail)).all()
    outcome = {r.account_id: (r.status, r.reason) for r in rows}
    assert outcome.pop(VICTIM) == ("failed", "template_error")
    assert set(outcome) == {f"A000000{n}" for n in (1, 2, 4, 5)}
    assert all(status in ("queued", "sent", "deferred") and reason != "template_error"
               for status, reason in outcome.values()), outcome
    [detail] = [r.detail for r in rows if r.account_id == VICTIM]
    assert detail.startswith("soft_nudge/email.en-US.j2") and detail.split(": ")[-1].isidentifier()
    shown = " ".join(filter(None, [r.detail for r in rows])) + caplog.text
    assert not [v for n in range(1, 6) for v in personal(n).values() if v in shown]
