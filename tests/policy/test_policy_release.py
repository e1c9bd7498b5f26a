"""The release decision at its boundaries: window, DST, zones, calendar, caps, holds."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from campaigns.policy import DEFER, RELEASE, SUPPRESS, evaluate_release, load_policy
from campaigns.policy.zones import plausible_zones
from campaigns.settings import PROJECT_ROOT

CONFIG = load_policy(PROJECT_ROOT / "config" / "policy.yaml")
UTC = timezone.utc


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def contact(**overrides) -> dict:
    row = {"account_id": "A1", "channel": "email", "timezone": "America/New_York", "phone": None,
           "country": "US", "email": "a@example.com", "status": "open", "amount_due": 10,
           "sms_consent": True}
    row.update(overrides)
    return row


def decide(rows, now: datetime, history=None) -> pd.DataFrame:
    frame = pd.DataFrame(rows if isinstance(rows, list) else [rows])
    return evaluate_release(frame, history if history is not None else pd.DataFrame(), now, CONFIG)


def one(row, now, history=None):
    result = decide(row, now, history).iloc[0]
    return result["decision"], result["reason"], result["release_after"]


@pytest.mark.parametrize(("local", "allowed"), [
    ("07:59", False), ("08:00", True), ("20:59", True), ("21:00", False), ("23:30", False), ("12:00", True)])
def test_window_edges_in_local_time(local, allowed):
    decision, reason, _ = one(contact(), at(f"2026-11-24T{local}:00-05:00"))
    assert (decision == RELEASE) is allowed
    if not allowed:
        assert (decision, reason) == (DEFER, "outside_contact_window")


def test_a_deferred_message_waits_for_the_next_opening():
    decision, reason, when = one(contact(), at("2026-11-24T21:00:00-05:00"))
    assert (decision, reason) == (DEFER, "outside_contact_window")
    assert when == at("2026-11-25T08:00:00-05:00")


@pytest.mark.parametrize(("utc", "allowed"), [
    # US springs forward on 8 March 2026: 08:00 New York is 13:00 UTC before, 12:00 UTC after.
    ("2026-03-07T12:30:00", False), ("2026-03-07T13:00:00", True),
    ("2026-03-09T11:59:00", False), ("2026-03-09T12:00:00", True),
    # US falls back on 1 November 2026.
    ("2026-10-31T11:59:00", False), ("2026-10-31T12:00:00", True),
    ("2026-11-02T12:30:00", False), ("2026-11-02T13:00:00", True),
])
def test_dst_in_new_york(utc, allowed):
    assert (one(contact(), at(utc + "+00:00"))[0] == RELEASE) is allowed


@pytest.mark.parametrize(("utc", "allowed"), [
    # Between 8 and 29 March 2026 the US is on summer time and Europe is not: London opens at 08:00 UTC.
    ("2026-03-16T07:59:00", False), ("2026-03-16T08:00:00", True),
    # From 29 March London is UTC+1: 08:00 local is 07:00 UTC.
    ("2026-03-30T06:59:00", False), ("2026-03-30T07:00:00", True),
    # Europe falls back on 25 October 2026, a week before the US.
    ("2026-10-26T07:59:00", False), ("2026-10-26T08:00:00", True),
])
def test_dst_in_london_including_the_weeks_the_us_and_eu_differ(utc, allowed):
    row = contact(timezone="Europe/London", country="GB")
    assert (one(row, at(utc + "+00:00"))[0] == RELEASE) is allowed


def test_dst_weeks_a_customer_in_both_new_york_and_london():
    """Stated London, New York landline: both must be inside 08:00-21:00 (UK has no Sundays)."""
    row = contact(timezone="Europe/London", phone="+12125550123", country="GB")
    # 16 March (US on DST, UK not): 08:00 New York = 12:00 UTC = 12:00 London: opens then.
    assert one(row, at("2026-03-16T11:59:00+00:00"))[0] == DEFER
    assert one(row, at("2026-03-16T12:00:00+00:00"))[0] == RELEASE
    # 21:00 London = 21:00 UTC closes it.
    assert one(row, at("2026-03-16T20:59:00+00:00"))[0] == RELEASE
    assert one(row, at("2026-03-16T21:00:00+00:00"))[0] == DEFER


def test_arizona_does_not_change_its_clocks():
    row = contact(timezone="America/Phoenix")
    for day in ("2026-01-15", "2026-07-15"):  # 08:00 MST is 15:00 UTC all year
        assert one(row, at(f"{day}T14:59:00+00:00"))[0] == DEFER
        assert one(row, at(f"{day}T15:00:00+00:00"))[0] == RELEASE


def test_a_pacific_address_with_an_eastern_mobile_needs_both_inside_the_window():
    row = contact(timezone="America/Los_Angeles", phone="+12125550123")
    assert plausible_zones("America/Los_Angeles", "+12125550123", "US") == ("America/Los_Angeles", "America/New_York")
    assert one(row, at("2026-11-24T07:59:00-08:00"))[0] == DEFER      # 10:59 in New York, too early in LA
    assert one(row, at("2026-11-24T08:00:00-08:00"))[0] == RELEASE
    decision, _, when = one(row, at("2026-11-24T18:00:00-08:00"))     # 21:00 in New York
    assert decision == DEFER and when == at("2026-11-25T08:00:00-08:00")


def test_unknown_zone_fails_closed_and_country_only_means_every_zone_of_it():
    assert one(contact(timezone=None, country=None, phone=None), at("2026-11-24T17:00:00+00:00"))[:2] == \
        (SUPPRESS, "unknown_timezone")
    assert one(contact(timezone="Not/AZone", country=None), at("2026-11-24T17:00:00+00:00"))[1] == "unknown_timezone"
    # Country US only: from Hawaii/Aleutians to the east coast, so 08:00 HST (18:00 UTC) opens it.
    decision, _, when = one(contact(timezone=None, country="US"), at("2026-11-24T17:00:00+00:00"))
    assert decision == DEFER and when == at("2026-11-24T18:00:00+00:00")


def test_a_toll_free_or_mobile_anywhere_number_says_nothing_about_the_zone():
    assert plausible_zones("America/Chicago", "+18005550100", "US") == ("America/Chicago",)
    assert plausible_zones(None, "+447700900123", "GB") == ("Europe/London",)


def test_public_holidays_defer_to_the_next_working_morning():
    # Thanksgiving 2026 is 26 November in the US.
    decision, reason, when = one(contact(), at("2026-11-26T10:00:00-05:00"))
    assert (decision, reason) == (DEFER, "holiday") and when == at("2026-11-27T08:00:00-05:00")
    # China's National Day.
    row = contact(timezone="Asia/Shanghai", country="CN")
    assert one(row, at("2026-10-01T10:00:00+08:00"))[1] == "holiday"


def test_uk_has_no_sunday_contact_and_calls_start_at_nine():
    row = contact(timezone="Europe/London", country="GB")
    decision, reason, when = one(row, at("2026-11-22T12:00:00+00:00"))  # a Sunday
    assert (decision, reason) == (DEFER, "sunday") and when == at("2026-11-23T08:00:00+00:00")
    call = contact(timezone="Europe/London", country="GB", channel="call", phone="+442079460000")
    assert one(call, at("2026-11-23T08:30:00+00:00"))[0] == DEFER
    assert one(call, at("2026-11-23T09:00:00+00:00"))[0] == RELEASE
    # US Sundays are allowed.
    assert one(contact(), at("2026-11-22T12:00:00-05:00"))[0] == RELEASE


def test_a_message_that_cannot_go_out_before_its_deadline_expires():
    row = contact(created_at=at("2026-11-20T22:00:00-05:00"))
    assert one(row, at("2026-11-23T21:30:00-05:00"))[:2] == (SUPPRESS, "expired")


def history(*rows) -> pd.DataFrame:
    return pd.DataFrame([{"account_id": a, "channel": c, "at": at(t), "outcome": o} for a, c, t, o in rows])


def test_one_message_a_day_across_channels_counted_in_local_days():
    """Los Angeles: 09:00 and 16:30 local on 22 Nov are the same local day, though different UTC days."""
    row = contact(timezone="America/Los_Angeles", channel="sms", phone="+13105550123")
    past = history(("A1", "email", "2026-11-22T09:00:00-08:00", None))
    now = at("2026-11-22T16:30:00-08:00")  # 00:30 UTC on 23 Nov
    assert one(row, now, past)[:2] == (SUPPRESS, "frequency_cap")
    assert one(row, at("2026-11-23T08:00:00-08:00"), past)[0] == RELEASE  # the next local day


def test_per_channel_cap_over_a_rolling_seven_local_days_day_7_vs_day_8():
    sent = history(*[("A1", "email", f"2026-11-0{d}T10:00:00-05:00", None) for d in (1, 2, 3)])
    # Day 1 = 1 November. On day 7 (7 Nov) the three still count; on day 8 the first has left the window.
    assert one(contact(), at("2026-11-07T10:00:00-05:00"), sent)[:2] == (SUPPRESS, "frequency_cap")
    assert one(contact(), at("2026-11-08T10:00:00-05:00"), sent)[0] == RELEASE
    # SMS has its own count.
    assert one(contact(channel="sms", phone="+12125550123"), at("2026-11-07T10:00:00-05:00"), sent)[0] == RELEASE


def test_the_caps_count_this_batch_too():
    rows = [contact(account_id="A1", channel="email"), contact(account_id="A1", channel="sms", phone="+12125550123"),
            contact(account_id="A2")]
    result = decide(rows, at("2026-11-24T10:00:00-05:00"))
    assert list(result["decision"]) == [RELEASE, SUPPRESS, RELEASE]
    assert result.iloc[1]["trace"]["counts"] == {"messages_today": 1, "channel_7d": 0}


def test_call_caps_seven_in_seven_days_and_quiet_after_a_conversation():
    call = contact(channel="call", phone="+12125550123")
    six = history(*[("A1", "call", f"2026-11-{d:02d}T10:00:00-05:00", "no_answer") for d in range(17, 23)])
    assert one(call, at("2026-11-23T10:00:00-05:00"), six)[0] == RELEASE
    seven = pd.concat([six, history(("A1", "call", "2026-11-23T09:00:00-05:00", "no_answer"))])
    assert one(call, at("2026-11-23T10:00:00-05:00"), seven)[:2] == (SUPPRESS, "frequency_cap")
    talked = history(("A1", "call", "2026-11-17T10:00:00-05:00", "connected"))
    assert one(call, at("2026-11-23T10:00:00-05:00"), talked)[0] == SUPPRESS   # within 7 days
    assert one(call, at("2026-11-24T10:01:00-05:00"), talked)[0] == RELEASE    # 7 days on


def test_cn_allows_at_most_three_connected_calls_a_day():
    call = contact(channel="call", phone="+8613800138000", timezone="Asia/Shanghai", country="CN")
    config = CONFIG.model_copy(deep=True)
    config.jurisdictions["CN"].quiet_days_after_conversation = 0  # isolate the daily cap
    now = at("2026-11-24T15:00:00+08:00")
    calls = [("A1", "call", f"2026-11-24T{h}:00:00+08:00", "connected") for h in ("09", "10")]
    frame = pd.DataFrame([call])
    assert evaluate_release(frame, history(*calls), now, config).iloc[0]["decision"] == RELEASE
    third = history(*calls, ("A1", "call", "2026-11-24T11:00:00+08:00", "connected"))
    result = evaluate_release(frame, third, now, config).iloc[0]
    assert (result["decision"], result["reason"]) == (SUPPRESS, "frequency_cap")
    assert result["trace"]["counts"]["connected_today"] == 3
    # The same history under the US profile has no daily connected-call cap.
    us = contact(channel="call", phone="+12125550123")
    us_calls = history(*[("A1", "call", f"2026-11-24T{h}:00:00-05:00", "connected") for h in ("09", "10", "11")])
    us_config = CONFIG.model_copy(deep=True)
    us_config.jurisdictions["US"].quiet_days_after_conversation = 0
    assert evaluate_release(pd.DataFrame([us]), us_calls, at("2026-11-24T15:00:00-05:00"), us_config).iloc[0][
        "decision"] == RELEASE


def test_holds_opt_outs_and_payments_are_rechecked_at_release():
    now = at("2026-11-24T10:00:00-05:00")
    assert one(contact(holds="bankruptcy"), now)[:2] == (SUPPRESS, "bankruptcy")
    assert one(contact(holds="breathing_space,deceased"), now)[1] == "deceased"
    assert one(contact(email_opt_out=True), now)[1] == "opted_out"
    assert one(contact(status="paid"), now)[1] == "paid"
    assert one(contact(amount_due=0), now)[1] == "paid"
    assert one(contact(has_open_dispute=True), now)[1] == "disputed"
    assert one(contact(email_is_employer=True), now)[1] == "employer_email"
    assert one(contact(email_is_employer=True, email_employer_consent=True), now)[0] == RELEASE
    assert one(contact(channel="sms", phone="+12125550123", sms_consent=False), now)[1] == "no_consent"


def test_the_trace_explains_the_decision_without_personal_data():
    row = contact(timezone="America/Los_Angeles", phone="+12125550123", email="secret@example.com")
    trace = one(row, at("2026-11-24T07:00:00-08:00"))
    result = decide(row, at("2026-11-24T07:00:00-08:00")).iloc[0]["trace"]
    assert result["decision"] == DEFER and result["reason"] == "outside_contact_window"
    assert result["zones"] == ["America/Los_Angeles", "America/New_York"]
    assert result["local_times"] == ["Tue 07:00", "Tue 10:00"] and result["jurisdiction"] == "US"
    assert "secret" not in str(result) and "212555" not in str(result) and trace[2] is not None


def test_worklist_hand_offs_are_not_timed_contacts():
    assert one(contact(channel="agent", timezone=None, country=None), at("2026-11-24T03:00:00+00:00"))[0] == RELEASE
    assert one(contact(channel="agent", holds="deceased"), at("2026-11-24T03:00:00+00:00"))[1] == "deceased"


def test_policy_config_errors_name_the_file_and_problem(tmp_path):
    from campaigns.policy import PolicyConfigError

    path = tmp_path / "policy.yaml"
    path.write_text("default_jurisdiction: XX\njurisdictions: {}\n")
    with pytest.raises(PolicyConfigError, match=f"{path}: .*default_jurisdiction 'XX' is not a listed"):
        load_policy(path)
    path.write_text((PROJECT_ROOT / "config" / "policy.yaml").read_text().replace('["08:00", "21:00"]',
                                                                                 '["21:00", "08:00"]', 1))
    with pytest.raises(PolicyConfigError, match="window end 08:00:00 is not after its start"):
        load_policy(path)
    with pytest.raises(PolicyConfigError, match="not found"):
        load_policy(tmp_path / "missing.yaml")
