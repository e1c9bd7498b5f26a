"""Ad-hoc cohorts: parameters, files, filters and views; the preview writes nothing; an ad-hoc chunk goes
through the same guards, policy, assignment and idempotency as the daily run."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from pydantic import ValidationError
from sqlalchemy import func, insert, select, text

from campaigns.contact.adhoc import (
    AdhocCohort,
    AdhocError,
    CohortFilter,
    adhoc_rule,
    id_chunks,
    parse_cohort,
    preview_cohort,
    resolve_cohort,
)
from campaigns.contact.ladder import load_ladder
from campaigns.contact.outcomes import attempt_row
from campaigns.contact.pipeline import StageRun, enqueue_chunk
from campaigns.db.models import CampaignRun, ContactAttempt, OutboxMessage, Payment, RenderedMessage, Stage
from tests.conftest import AS_OF, NOW
from tests.factories import add_account


@pytest.fixture
def services(engine):
    from campaigns import bootstrap

    return bootstrap.services()


def test_the_cohort_option_reads_a_file_a_view_or_a_filter():
    assert parse_cohort("ids.csv").file == "ids.csv" and parse_cohort("x/ids.PARQUET").file == "x/ids.PARQUET"
    assert parse_cohort("view:late_cards").view == "late_cards"
    f = parse_cohort("dpd=15..30, balance=100.., segment=chronic_late|occasional_late, locale=en-US, country=us").filter
    assert (f.days_past_due_min, f.days_past_due_max, f.balance_min, f.balance_max) == (15, 30, 100.0, None)
    assert f.segments == ["chronic_late", "occasional_late"] and f.locales == ["en-US"] and f.countries == ["us"]
    assert (parse_cohort("dpd=5").filter.days_past_due_min, parse_cohort("dpd=5").filter.days_past_due_max) == (5, 5)


@pytest.mark.parametrize("value, message", [
    ("colour=red", "unknown filter 'colour'"),
    ("dpd=soon", "not a range like 15..30"),
    ("dpd", "is not key=value"),
])
def test_a_bad_cohort_option_is_one_clear_error(value, message):
    with pytest.raises(AdhocError, match=message):
        parse_cohort(value)


@pytest.mark.parametrize("fields, message", [
    ({}, "give exactly one of file, filter or view"),
    ({"file": "a.csv", "view": "v"}, r"got file, view"),
    ({"filter": {"segments": ["late"]}}, "unknown segment late"),
    ({"filter": {"days_past_due_min": 30, "days_past_due_max": 10}}, "days_past_due: max 10 is below min 30"),
    ({"filter": {"colour": "red"}}, "Extra inputs are not permitted"),
])
def test_the_flow_parameters_validate_as_the_run_form_does(fields, message):
    with pytest.raises(ValidationError, match=message):
        AdhocCohort.model_validate(fields)


def _portfolio(engine):
    add_account(engine, "A-5", days_past_due=5, product="card")
    add_account(engine, "A-20", days_past_due=20, product="loan", balance=Decimal("50"))
    add_account(engine, "A-60", days_past_due=60, product="card", customer={"locale": "zh-CN", "country": "CN",
                                                                              "timezone": "Asia/Shanghai"})
    add_account(engine, "PAID", days_past_due=20, status="paid")


def test_a_file_of_ids_csv_or_parquet(engine, services, tmp_path):
    _portfolio(engine)
    csv = tmp_path / "ids.csv"
    csv.write_text("account_id,note\nA-20,x\nA-5,y\nA-20,again\n")
    assert resolve_cohort(engine, AdhocCohort(file=str(csv)), AS_OF, services.ladder, []) == ["A-20", "A-5"]
    parquet = tmp_path / "ids.parquet"
    pd.DataFrame({"account_id": ["A-60"]}).to_parquet(parquet)
    assert resolve_cohort(engine, AdhocCohort(file=str(parquet)), AS_OF, services.ladder, []) == ["A-60"]


@pytest.mark.parametrize("content, message", [
    ("account_id\nA-5\n\nA-20\n", r"ids.csv, row 3, field account_id: empty"),
    ("account_id\nA-5\nNOPE\nGONE\n", r"2 account id\(s\) we do not know, e.g. row\(s\) 3, 4, field account_id"),
    ("id\nA-5\n", "no account_id column"),
    ("account_id\n", "is empty: nothing to run"),
    ("account_id\n" + "X" * 65 + "\n", "row 2, field account_id: longer than 64"),
    ("account_id\nA-5\nA\x00B\n", "row 3, field account_id: has a control character"),
])
def test_a_bad_file_is_one_error_naming_its_row(engine, services, tmp_path, content, message):
    _portfolio(engine)
    path = tmp_path / "ids.csv"
    path.write_text(content)
    with pytest.raises(AdhocError, match=message):
        resolve_cohort(engine, AdhocCohort(file=str(path)), AS_OF, services.ladder, [])


def test_a_missing_or_unreadable_file(engine, services, tmp_path):
    with pytest.raises(AdhocError, match="no such file"):
        resolve_cohort(engine, AdhocCohort(file=str(tmp_path / "nope.csv")), AS_OF, services.ladder, [])
    broken = tmp_path / "ids.parquet"
    broken.write_bytes(b"not parquet")
    with pytest.raises(AdhocError, match="not a readable PARQUET file"):
        resolve_cohort(engine, AdhocCohort(file=str(broken)), AS_OF, services.ladder, [])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=200))
def test_whatever_a_file_holds_the_answer_is_ids_or_one_adhoc_error(engine, services, tmp_path, content):
    path = tmp_path / "fuzz.csv"
    path.write_text("account_id\n" + content, encoding="utf-8")
    try:
        resolve_cohort(engine, AdhocCohort(file=str(path)), AS_OF, services.ladder, [])
    except AdhocError as exc:
        assert str(path) in str(exc) or "empty" in str(exc)


def test_a_filter_by_days_past_due_balance_product_locale_country_and_segment(engine, services):
    _portfolio(engine)

    def ids(**fields):
        return resolve_cohort(engine, AdhocCohort(filter=CohortFilter(**fields)), AS_OF, services.ladder, [])

    assert ids(days_past_due_min=1, days_past_due_max=30) == ["A-20", "A-5"]  # PAID is not open
    assert ids(balance_max=100) == ["A-20"]
    assert ids(products=["card"]) == ["A-5", "A-60"]
    assert ids(locales=["zh-CN"]) == ids(countries=["cn"]) == ["A-60"]
    with engine.begin() as conn:
        conn.execute(insert(Payment.__table__), {"payment_id": "p", "account_id": "A-5", "amount": Decimal("1"),
                                                 "currency": "USD", "paid_at": NOW - timedelta(days=3),
                                                 "source": "test"})
    assert ids(segments=["on_time_payer"]) == ["A-5"]
    with pytest.raises(AdhocError, match=r"the cohort \(filter products=\['none'\]\) is empty"):
        ids(products=["none"])


def test_only_an_allow_listed_view_is_read(engine, services):
    _portfolio(engine)
    with engine.begin() as conn:
        conn.execute(text("CREATE VIEW late_cards AS SELECT id AS account_id FROM accounts WHERE product = 'card'"))
    try:
        cohort = AdhocCohort(view="late_cards")
        # A view lists whom it lists (PAID too); the stage's guards leave the paid out when the run reads them.
        assert resolve_cohort(engine, cohort, AS_OF, services.ladder, ["late_cards"]) == ["A-5", "A-60", "PAID"]
        with pytest.raises(AdhocError, match="not in adhoc_views"):
            resolve_cohort(engine, cohort, AS_OF, services.ladder, [])
        with pytest.raises(AdhocError, match="not in adhoc_views"):
            resolve_cohort(engine, AdhocCohort(view="late_cards; DROP TABLE accounts"), AS_OF, services.ladder,
                           ["late_cards; DROP TABLE accounts"])
        with pytest.raises(AdhocError, match="cannot be read as a table with an account_id column"):
            resolve_cohort(engine, AdhocCohort(view="missing_view"), AS_OF, services.ladder, ["missing_view"])
    finally:
        with engine.begin() as conn:
            conn.execute(text("DROP VIEW late_cards"))


def test_the_thank_you_takes_no_adhoc_cohort(services):
    with pytest.raises(AdhocError, match="thanks accounts that paid"):
        adhoc_rule(services.ladder.rule(Stage.thank_you))


def _counts(engine) -> tuple[int, int, int, int]:
    with engine.connect() as conn:
        return tuple(conn.execute(select(func.count()).select_from(t)).scalar_one()
                     for t in (ContactAttempt, RenderedMessage, OutboxMessage, CampaignRun))


def test_the_preview_shows_messages_and_suppressions_and_writes_nothing(engine, services):
    _portfolio(engine)
    add_account(engine, "OPTED", days_past_due=20, customer={"email_opt_out": True, "sms_consent": False})
    before = _counts(engine)
    result = preview_cohort(engine, services.ladder, services.templates, services.brand, services.policy,
                            Stage.soft_nudge, AS_OF, NOW, ["A-20", "A-60", "OPTED", "PAID"], 100, limit=5)
    assert _counts(engine) == before
    assert (result["accounts"], result["in_cohort"], result["left_out"]) == (4, 3, 1)  # PAID is not open
    assert result["counts"]["would_send"] == 1 and result["counts"]["suppressed:opted_out"] == 1
    [message] = result["messages"]
    assert message["account_id"] == "A-20" and "$50.00" in message["text"]  # its balance: all of it is due
    reasons = {(x["account_id"], x["reason"]) for x in result["suppressions"]}
    assert ("OPTED", "opted_out") in reasons and ("A-60", "outside_contact_window") in reasons


def test_an_adhoc_chunk_uses_the_daily_runs_guards_assignment_and_keys(engine, services):
    from campaigns.review.runs import start_run

    _portfolio(engine)
    add_account(engine, "TODAY", days_past_due=3)
    run_id = start_run(engine, Stage.pre_due, AS_OF, NOW, started_at=NOW)
    with engine.begin() as conn:  # TODAY was already in another stage today: an ad-hoc cohort does not add one
        conn.execute(insert(ContactAttempt.__table__), attempt_row(
            run_id=run_id, account_id="TODAY", customer_id="C-TODAY", stage="pre_due", cycle="x", as_of=AS_OF,
            channel="email", status="sent", now=NOW))
    ids = ["A-20", "A-60", "TODAY"]
    run = StageRun(run_id=start_run(engine, Stage.soft_nudge, AS_OF, NOW, started_at=NOW, name="adhoc-test"),
                   stage=Stage.soft_nudge, as_of=AS_OF, now=NOW, adhoc=True)
    [(bounds, part)] = id_chunks(ids, 100)
    first = enqueue_chunk(engine, services.ladder, services.templates, services.brand, run, bounds,
                          services.policy, accounts=part)
    assert first.cohort_size == 2  # A-20 is outside soft_nudge's 1-14 days: the cohort, not the selector, decides
    again = enqueue_chunk(engine, services.ladder, services.templates, services.brand, run, bounds,
                          services.policy, accounts=part)
    assert again.tally.as_dict() == {"already_recorded": 2}  # the same idempotency keys as any run
    with engine.connect() as conn:
        rows = conn.execute(select(ContactAttempt.account_id, ContactAttempt.experiment, ContactAttempt.variant)
                            .where(ContactAttempt.run_id == run.run_id).order_by(ContactAttempt.account_id)).all()
    assert [r.account_id for r in rows] == ["A-20", "A-60"]
    assert all(r.experiment == "ladder-2026q4" and r.variant == "control" for r in rows)


def test_the_shipped_config_validates_and_allows_no_view_by_default():
    from campaigns.review.rules import load_review_rules
    from campaigns.settings import PROJECT_ROOT

    assert load_review_rules(PROJECT_ROOT / "config" / "review.yaml").adhoc_views == []
    load_ladder(PROJECT_ROOT / "config" / "ladder.yaml")
