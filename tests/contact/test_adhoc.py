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
    resolve_cohort,
)
from campaigns.contact.cohorts import ChunkBounds, select_cohort
from campaigns.contact.preview import preview_cohort
from campaigns.ladder.config import DayRange, load_ladder
from campaigns.attempts.log import attempt_row
from campaigns.contact.pipeline import StageRun, enqueue_chunk
from campaigns.db.models import CampaignRun, ContactAttempt, OutboxMessage, Payment, RenderedMessage, Stage
from tests.conftest import AS_OF, NOW
from tests.factories import add_account


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
    add_account(engine, "SH", days_past_due=25, customer={"locale": "zh-CN", "country": "CN",
                                                           "timezone": "Asia/Shanghai"})
    before = _counts(engine)
    result = preview_cohort(engine, services.ladder, services.templates, services.brand, services.policy,
                            Stage.plan_offer, AS_OF, NOW, ["A-20", "A-60", "OPTED", "PAID", "SH"], 100, limit=5)
    assert _counts(engine) == before
    # PAID is not open; A-60 is past plan_offer's 15..45 days: its message would not be true for it.
    assert (result["accounts"], result["in_cohort"], result["left_out"]) == (5, 3, 2)
    assert (result["outside_stage_days"], result["stage_days"]) == (1, "15..45")
    assert result["counts"]["would_send"] == 1 and result["counts"]["suppressed:opted_out"] == 1
    [message] = result["messages"]
    assert message["account_id"] == "A-20" and "$50.00" in message["text"]  # its balance: all of it is due
    reasons = {(x["account_id"], x["reason"]) for x in result["suppressions"]}
    assert ("OPTED", "opted_out") in reasons and ("SH", "outside_contact_window") in reasons


def test_an_adhoc_chunk_uses_the_daily_runs_guards_assignment_and_keys(engine, services):
    from campaigns.runs.records import start_run

    _portfolio(engine)
    add_account(engine, "TODAY", days_past_due=30)
    run_id = start_run(engine, Stage.pre_due, AS_OF, NOW, started_at=NOW)
    with engine.begin() as conn:  # TODAY was already in another stage today: an ad-hoc cohort does not add one
        conn.execute(insert(ContactAttempt.__table__), attempt_row(
            run_id=run_id, account_id="TODAY", customer_id="C-TODAY", stage="pre_due", cycle="x", as_of=AS_OF,
            channel="email", status="sent", now=NOW))
    ids = ["A-20", "A-5", "A-60", "TODAY"]
    run = StageRun(run_id=start_run(engine, Stage.plan_offer, AS_OF, NOW, started_at=NOW, name="adhoc-test"),
                   stage=Stage.plan_offer, as_of=AS_OF, now=NOW, adhoc=True)
    [(bounds, part)] = id_chunks(ids, 100)
    first = enqueue_chunk(engine, services.ladder, services.templates, services.brand, run, bounds,
                          services.policy, accounts=part)
    assert first.cohort_size == 1  # are outside plan_offer's 15..45 days; TODAY is in pre_due today
    again = enqueue_chunk(engine, services.ladder, services.templates, services.brand, run, bounds,
                          services.policy, accounts=part)
    assert again.tally.as_dict() == {"already_recorded": 1}  # the same idempotency keys as any run
    with engine.connect() as conn:
        rows = conn.execute(select(ContactAttempt.account_id, ContactAttempt.experiment, ContactAttempt.variant)
                            .where(ContactAttempt.run_id == run.run_id).order_by(ContactAttempt.account_id)).all()
    assert [r.account_id for r in rows] == ["A-20"]
    assert all(r.experiment == "ladder-2026q4" and r.variant == "control" for r in rows)


def test_an_adhoc_cohort_keeps_the_stages_own_days_past_due(engine, services):
    """Issue 24 item 2: soft_nudge for dpd -5..0 told customers a payment was overdue before its due date."""
    from campaigns.contact.adhoc import check_stage_days

    add_account(engine, "EARLY", days_past_due=-2)
    add_account(engine, "DUE", days_past_due=0)
    add_account(engine, "LATE", days_past_due=3)
    rule = services.ladder.rule(Stage.soft_nudge)
    with pytest.raises(AdhocError, match=r"all 2 account\(s\) of the cohort \(filter\) are outside soft_nudge's days "
                                         r"past due \(1..14\) on 2026-11-22: its message would not be true"):
        check_stage_days(engine, ["DUE", "EARLY"], rule, AS_OF, "filter")
    assert check_stage_days(engine, ["DUE", "EARLY", "LATE"], rule, AS_OF, "filter") == ["DUE", "EARLY"]
    # pre_due's exact days (-3, -1) widen to -3..-1 for a cohort; the due day itself is outside.
    assert check_stage_days(engine, ["DUE", "EARLY", "LATE"], services.ladder.rule(Stage.pre_due), AS_OF,
                            "filter") == ["DUE", "LATE"]
    result = preview_cohort(engine, services.ladder, services.templates, services.brand, services.policy,
                            Stage.soft_nudge, AS_OF, NOW, ["DUE", "EARLY", "LATE"], 100)
    assert result["in_cohort"] == 1 and result["outside_stage_days"] == 2
    assert [m["account_id"] for m in result["messages"]] == ["LATE"]


def test_a_stage_that_says_a_payment_is_late_never_renders_for_an_account_not_past_due(engine, services):
    """The content check behind item 2: even given such an account, the attempt fails (not_past_due), unsent."""
    from campaigns.contact.pipeline import compose_attempts
    from campaigns.contact.segments import add_segments
    from campaigns.contact.strategy import decide_contacts

    assert services.ladder.rule(Stage.soft_nudge).says_overdue and not services.ladder.rule(Stage.pre_due).says_overdue
    add_account(engine, "EARLY", days_past_due=-2)
    wide = services.ladder.rule(Stage.soft_nudge).model_copy(update={"days_past_due": DayRange(min=-5)})
    with engine.connect() as conn:
        cohort = add_segments(conn, select_cohort(conn, wide, AS_OF, ChunkBounds(after=None, upto="ZZZ")), AS_OF,
                              services.ladder.segments)
    cohort["holds"] = [[] for _ in range(len(cohort))]
    run = StageRun(run_id="x", stage=Stage.soft_nudge, as_of=AS_OF, now=NOW)
    planned = compose_attempts(cohort, decide_contacts(cohort, wide, services.ladder.experiment_for(
        Stage.soft_nudge, AS_OF), services.ladder.segments), services.ladder.rule(Stage.soft_nudge), run,
        services.templates, services.brand, None, services.policy.sms_max_segments)
    assert [(p.row["status"], p.row["reason"]) for p in planned if p.row["channel"] == "email"] == [
        ("failed", "not_past_due")]


def test_an_empty_cohort_is_an_error_not_the_whole_portfolio():
    """Issue 24 item 3."""
    for text in ("", "  ", ",", " , "):
        with pytest.raises(AdhocError, match="--cohort is empty"):
            parse_cohort(text)


def test_the_shipped_config_validates_and_allows_no_view_by_default():
    from campaigns.review.config import load_review_rules
    from campaigns.settings import PROJECT_ROOT

    assert load_review_rules(PROJECT_ROOT / "config" / "review.yaml").adhoc_views == []
    load_ladder(PROJECT_ROOT / "config" / "ladder.yaml")


def test_the_preview_masks_names_unless_revealed_with_a_reason_and_logs_the_reveal(prefect_harness, engine,
                                                                                   services):
    """Issue 24 item 5: preview and adhoc --dry-run printed the customers' names."""
    from typer.testing import CliRunner

    from campaigns.cli import app
    from campaigns.db.models import PersonalDataAccess

    add_account(engine, "A-20", days_past_due=20, customer={"name": "Zelda Quartermaine"})
    masked = preview_cohort(engine, services.ladder, services.templates, services.brand, services.policy,
                            Stage.plan_offer, AS_OF, NOW, ["A-20"], 100)
    [message] = masked["messages"]
    assert "Zelda" not in message["text"] and "Quartermaine" not in message["text"] and "Z. Q." in message["text"]
    runner = CliRunner()
    args = ["preview", "plan_offer", "--cohort", "dpd=15..45", "--now", NOW.isoformat()]
    shown = runner.invoke(app, args, catch_exceptions=False)
    assert shown.exit_code == 0 and "Zelda" not in shown.output and "Z. Q." in shown.output
    refused = runner.invoke(app, [*args, "--reveal"], catch_exceptions=False)
    assert refused.exit_code == 1 and "needs a reason" in refused.output
    revealed = runner.invoke(app, [*args, "--reveal", "--reason", "TICKET-9", "--by", "ana"], catch_exceptions=False)
    assert revealed.exit_code == 0 and "Zelda Quartermaine" in revealed.output
    with engine.connect() as conn:
        log = conn.execute(select(PersonalDataAccess.actor, PersonalDataAccess.action,
                                  PersonalDataAccess.account_id)).all()
    assert [tuple(r) for r in log] == [("ana", "reveal_preview", "A-20")]
    dry = runner.invoke(app, ["adhoc", "plan_offer", "--cohort", "dpd=15..45", "--now", NOW.isoformat(),
                              "--dry-run"], catch_exceptions=False)
    assert dry.exit_code == 0 and "Zelda" not in dry.output and "Z. Q." in dry.output
