"""Property: no message the policy releases ever breaks rules 1-6, whatever the customer, moment and history.

The oracle below re-checks each released row with plain loops, independently of
the vectorised implementation (zoneinfo, phonenumbers and holidays directly).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import holidays
import pandas as pd
import phonenumbers
from babel.core import get_global
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from phonenumbers import timezone as phone_tz

from campaigns.policy import RELEASE, evaluate_release, load_policy
from campaigns.settings import PROJECT_ROOT

CONFIG = load_policy(PROJECT_ROOT / "config" / "policy.yaml")
UTC = timezone.utc
ZONES = ["America/New_York", "America/Los_Angeles", "America/Phoenix", "Pacific/Honolulu", "America/Chicago",
         "Asia/Shanghai", "Europe/London", "Europe/Dublin", None, "Not/AZone"]
PHONES = ["+12125550123", "+13105550123", "+16025550111", "+8613800138000", "+442079460000", "+18005550100",
          "+447700900123", None]
HOLDS = ["cease_and_desist", "attorney_represented", "bankruptcy", "deceased", "mental_capacity", "breathing_space"]
MESSAGES = {"email", "sms", "push"}

rarely = st.integers(0, 3).map(lambda x: x == 0)   # True one time in four
usually = st.integers(0, 3).map(lambda x: x != 0)  # True three times in four

customers = st.fixed_dictionaries({
    "timezone": st.sampled_from(ZONES),
    "phone": st.sampled_from(PHONES),
    "country": st.sampled_from(["US", "CN", "GB", "IE", None]),
    "email": st.sampled_from(["a@example.com", None]),
    "email_opt_out": rarely,
    "sms_opt_out": rarely,
    "sms_consent": usually,
    "email_is_employer": rarely,
    "email_employer_consent": st.booleans(),
    "has_open_dispute": rarely,
    "cease_contact": rarely,
    "holds": st.one_of(st.just(""), st.just(""), st.just(""), st.lists(st.sampled_from(HOLDS), max_size=2).map(",".join)),
})
moments = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 31, 23, 59),
                       timezones=st.just(UTC))


def oracle_zones(c) -> set[str]:
    zones = set()
    if c["timezone"] in ZONES[:8]:
        zones.add(c["timezone"])
    if c["phone"]:
        number = phonenumbers.parse(c["phone"], None)
        if phonenumbers.is_number_geographical(number):
            zones |= {z for z in phone_tz.time_zones_for_geographical_number(number) if z != "Etc/Unknown"}
    if not zones and c["country"]:
        zones = set(get_global("territory_zones").get(c["country"], ()))
    return zones


def local_midnight(zone: str, now: datetime, days_back: int) -> datetime:
    day = now.astimezone(ZoneInfo(zone)).date() - timedelta(days=days_back)
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def violations(row, now, history, released_before) -> list[str]:
    problems = []
    profile = CONFIG.for_country(row["country"])
    zones = oracle_zones(row)
    channel = row["channel"]
    # 1-2: every plausible zone inside the window, not on a Sunday (if the profile says so), nor a holiday.
    if not zones:
        problems.append("no known zone")
    window = profile.call_window if channel == "call" else profile.message_window
    calendar = holidays.country_holidays(profile.holidays, years=[2025, 2026, 2027]) if profile.holidays else {}
    for zone in zones:
        local = now.astimezone(ZoneInfo(zone))
        if not (window.start <= local.time().replace(tzinfo=None) < window.end):
            problems.append(f"outside window in {zone}")
        if profile.no_sunday and local.weekday() == 6:
            problems.append(f"sunday in {zone}")
        if local.date() in calendar:
            problems.append(f"holiday in {zone}")
    # 3: caps, counting history and what this batch released before this row.
    if zones:
        day_start = min(local_midnight(z, now, 0) for z in zones)
        week_start = min(local_midnight(z, now, 6) for z in zones)
        past = [h for h in history if h["account_id"] == row["account_id"]] + released_before
        if channel in MESSAGES:
            today = [h for h in past if h["channel"] in MESSAGES and day_start <= h["at"] <= now]
            week = [h for h in past if h["channel"] == channel and week_start <= h["at"] <= now]
            if len(today) >= profile.max_messages_per_day or len(week) >= profile.max_per_channel_7d:
                problems.append("frequency cap")
        if channel == "call":
            calls = [h for h in past if h["channel"] == "call" and week_start <= h["at"] <= now]
            talks = [h for h in past if h["channel"] == "call" and h["outcome"] == "connected"]
            if len(calls) >= profile.max_call_attempts_7d:
                problems.append("7 calls in 7 days")
            recent = [h for h in talks if now - timedelta(days=profile.quiet_days_after_conversation) <= h["at"] <= now]
            if recent:
                problems.append("call within 7 days of a conversation")
            if profile.max_connected_calls_per_day is not None and len(
                    [h for h in talks if day_start <= h["at"] <= now]) >= profile.max_connected_calls_per_day:
                problems.append("connected calls per day")
    # 4: opt-outs per channel.
    if channel == "email" and (row["email_opt_out"] or not row["email"]):
        problems.append("email opt-out or no address")
    if channel == "sms" and (row["sms_opt_out"] or not row["phone"]):
        problems.append("sms opt-out or no number")
    # 5: holds.
    if row["holds"] or row["has_open_dispute"] or row["cease_contact"]:
        problems.append("hold")
    # 6: consent.
    if channel == "sms" and not row["sms_consent"]:
        problems.append("sms without consent")
    if channel == "email" and row["email_is_employer"] and not row["email_employer_consent"]:
        problems.append("employer email without consent")
    return problems


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    people=st.lists(customers, min_size=1, max_size=3),
    picks=st.lists(st.tuples(st.integers(0, 2), st.sampled_from(["email", "sms", "call"])), min_size=1, max_size=6),
    now=moments,
    past=st.lists(st.tuples(st.integers(0, 2), st.sampled_from(["email", "sms", "call"]),
                            st.integers(0, 10 * 24 * 60), st.sampled_from(["connected", "no_answer", None])),
                  max_size=12),
)
def test_no_released_message_breaks_rules_1_to_6(people, picks, now, past):
    rows = []
    for person, channel in picks:
        person %= len(people)
        rows.append({**people[person], "account_id": f"A{person}", "customer_id": f"C{person}",
                     "channel": channel, "status": "open", "amount_due": 10})
    history = [{"account_id": f"A{p % len(people)}", "channel": ch, "at": now - timedelta(minutes=m), "outcome": o}
               for p, ch, m, o in past]
    frame = pd.DataFrame(rows)
    decided = evaluate_release(frame, pd.DataFrame(history, columns=["account_id", "channel", "at", "outcome"]),
                               now, CONFIG)
    event(f"released {sum(d == RELEASE for d in decided['decision'])} of {len(rows)}")
    released_so_far: dict[str, list[dict]] = {}
    for row, decision, reason in zip(rows, decided["decision"], decided["reason"]):
        if decision != RELEASE:
            assert reason, "every held-back contact has a reason"
            continue
        before = released_so_far.setdefault(row["account_id"], [])
        assert violations(row, now, history, before) == [], (row, now)
        before.append({"account_id": row["account_id"], "channel": row["channel"], "at": now, "outcome": None})


def test_the_generators_do_produce_releases():
    """Guard against a vacuous property: a fair share of generated contacts must be released."""
    from hypothesis import Phase, find

    def releases(example) -> bool:
        people, picks, now = example
        rows = [{**people[p % len(people)], "account_id": f"A{p % len(people)}", "channel": ch, "status": "open",
                 "amount_due": 10} for p, ch in picks]
        decided = evaluate_release(pd.DataFrame(rows), pd.DataFrame(), now, CONFIG)
        return (decided["decision"] == RELEASE).sum() >= 2

    found = find(st.tuples(st.lists(customers, min_size=1, max_size=3),
                           st.lists(st.tuples(st.integers(0, 2), st.sampled_from(["email", "sms", "call"])),
                                    min_size=2, max_size=6), moments), releases,
                 settings=settings(max_examples=500, database=None, phases=[Phase.generate]))
    assert found
