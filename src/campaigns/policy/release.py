"""The release decision: may this message go out *now*? Release, defer (until when) or suppress (why).

The same function runs when a message is queued and again when it is released,
with fresh data, so an opt-out, a hold or a payment that arrives in between is
honoured, and the contact window is checked at the moment that counts. Each
decision comes with a trace of its inputs (zones, local times, counts; no
personal data) that is stored with the attempt.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from campaigns.policy.caps import build_history
from campaigns.policy.profiles import PolicyConfig
from campaigns.policy.rules import account_suppression, channel_suppression
from campaigns.policy.window import blocked_reason, local_day_start, next_allowed
from campaigns.policy.zones import plausible_zones

RELEASE, DEFER, SUPPRESS = "release", "defer", "suppress"
UNTIMED_CHANNELS = {"agent"}  # a worklist hand-off is not a contact: people call within their own rules
MESSAGE_CHANNELS = {"email", "sms", "push"}
HISTORY_COLUMNS = ["account_id", "channel", "at", "outcome"]


def plausible_zone_column(frame: pd.DataFrame) -> list[tuple[str, ...]]:
    """The customer's plausible zones per row (from timezone, phone and country)."""
    # .tolist(): one conversion per column; iterating a pandas string column yields element by element
    get = lambda col: frame[col].tolist() if col in frame else [None] * len(frame)  # noqa: E731
    return [
        plausible_zones(z if isinstance(z, str) else None, p if isinstance(p, str) else None,
                        c if isinstance(c, str) else None)
        for z, p, c in zip(get("timezone"), get("phone"), get("country"))
    ]


def evaluate_release(
    frame: pd.DataFrame, history: pd.DataFrame, now: datetime, config: PolicyConfig, check: str = "release"
) -> pd.DataFrame:
    """Decide every row of ``frame`` (one intended contact each) at ``now``.

    ``frame`` needs ``account_id`` and ``channel``, the customer's ``timezone``,
    ``phone`` and ``country``, and the columns the rules read (flags, ``holds``,
    ``status``, ``amount_due``); ``created_at`` (default ``now``) starts the defer
    deadline. Rows are considered in order: earlier rows of an account use up
    its caps first. ``history`` holds past contacts (``HISTORY_COLUMNS``).
    Returns ``decision``, ``reason``, ``release_after`` and ``trace`` per row.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    n = len(frame)
    decision = np.full(n, RELEASE, dtype=object)
    reason = np.full(n, None, dtype=object)
    release_after = np.full(n, None, dtype=object)
    traces = [{"at": now.isoformat(), "check": check} for _ in range(n)]
    if n == 0:
        return pd.DataFrame({"decision": [], "reason": [], "release_after": [], "trace": []}, index=frame.index)

    channels = frame["channel"].astype(str).to_numpy()
    account_reason = account_suppression(frame).to_numpy(dtype=object)
    for channel in pd.unique(channels):
        rows = channels == channel
        channel_reason = channel_suppression(frame[rows], channel).to_numpy(dtype=object)
        merged = np.where(pd.isna(account_reason[rows]), channel_reason, account_reason[rows])
        reason[rows] = merged
    decision[~pd.isna(reason)] = SUPPRESS

    zones = plausible_zone_column(frame)
    countries = frame["country"] if "country" in frame else pd.Series([None] * n, index=frame.index)
    profiles = [config.for_country(c if isinstance(c, str) else None) for c in countries.tolist()]
    created = frame["created_at"].tolist() if "created_at" in frame else [now] * n
    max_defer = timedelta(hours=config.max_defer_hours)

    day_start = np.full(n, None, dtype=object)
    week_start = np.full(n, None, dtype=object)
    groups: dict[tuple, list[int]] = {}
    for i in range(n):
        if decision[i] != RELEASE:
            continue
        traces[i]["jurisdiction"] = profiles[i].code
        traces[i]["zones"] = list(zones[i])
        if channels[i] in UNTIMED_CHANNELS:
            continue
        if not zones[i]:
            decision[i], reason[i] = SUPPRESS, "unknown_timezone"
            continue
        kind = "call" if channels[i] == "call" else "message"
        groups.setdefault((zones[i], profiles[i].code, kind), []).append(i)

    for (zone_set, code, kind), members in groups.items():
        profile = config.jurisdictions[code]
        blocked = blocked_reason(zone_set, now, profile, kind)
        local_times = [now.astimezone(ZoneInfo(z)).strftime("%a %H:%M") for z in zone_set]
        starts = (local_day_start(zone_set, now), local_day_start(zone_set, now, days_back=6))
        when = None
        if blocked is not None:
            # One search per group, as far as the latest deadline in it; each row then checks its own.
            latest = max(max(created[i] + max_defer, now) for i in members)
            when = next_allowed(zone_set, now, profile, kind, latest - now)
        for i in members:
            traces[i]["local_times"] = local_times
            day_start[i], week_start[i] = starts
            if blocked is None:
                continue
            if when is None or when > max(created[i] + max_defer, now):
                decision[i], reason[i] = SUPPRESS, "expired"
            else:
                decision[i], reason[i], release_after[i] = DEFER, blocked, when

    _apply_caps(frame, history, now, config, profiles, channels, decision, reason, day_start, week_start, traces)
    for i in range(n):
        traces[i]["decision"] = decision[i]
        if reason[i] is not None:
            traces[i]["reason"] = reason[i]
        if release_after[i] is not None:
            traces[i]["release_after"] = release_after[i].isoformat()
    return pd.DataFrame(
        {"decision": decision, "reason": reason, "release_after": release_after, "trace": traces}, index=frame.index
    )


def _apply_caps(frame, history, now, config, profiles, channels, decision, reason, day_start, week_start, traces):
    """Frequency caps across channels and runs, counted in the customer's local days."""
    candidates = np.flatnonzero((decision == RELEASE) & np.isin(channels, list(MESSAGE_CHANNELS | {"call"})))
    if len(candidates) == 0:
        return
    history = history if history is not None and not history.empty else pd.DataFrame(columns=HISTORY_COLUMNS)
    sub = frame.iloc[candidates]
    account_ids = sub["account_id"].astype(str).reset_index(drop=True)
    counts = build_history(history, account_ids)
    until = pd.Series([now] * len(candidates))
    day = pd.Series(day_start[candidates])
    week = pd.Series(week_start[candidates])
    hist_channels = history["channel"].astype(str).to_numpy() if len(history) else np.array([], dtype=object)
    is_message = np.isin(hist_channels, list(MESSAGE_CHANNELS))
    is_call = hist_channels == "call"
    connected = is_call & (history["outcome"].astype(str).to_numpy() == "connected") if len(history) else is_call
    sub_channels = channels[candidates]

    day_total = counts.count(account_ids, day, until, is_message)
    per_channel = np.zeros(len(candidates), dtype=np.int64)
    for channel in pd.unique(sub_channels):
        rows = sub_channels == channel
        per_channel[rows] = counts.count(account_ids[rows].reset_index(drop=True), week[rows].reset_index(drop=True),
                                         until[rows].reset_index(drop=True), hist_channels == channel)
    # Rows of the same account released earlier in this batch use the caps up first.
    released_messages: dict[str, int] = {}
    released_per_channel: dict[tuple[str, str], int] = {}

    calls_week = connected_quiet = connected_today = None
    if (sub_channels == "call").any():
        calls_week = counts.count(account_ids, week, until, is_call)
        quiet_days = pd.Series([now - timedelta(days=profiles[i].quiet_days_after_conversation) for i in candidates])
        connected_quiet = counts.count(account_ids, quiet_days, until, connected)
        connected_today = counts.count(account_ids, day, until, connected)

    accounts = account_ids.tolist()  # the loop reads them one by one: plain strings, not a pandas lookup each
    for k, i in enumerate(candidates):
        profile = profiles[i]
        account, channel = accounts[k], sub_channels[k]
        earlier_same_channel = released_per_channel.get((account, channel), 0)
        if channel == "call":
            used = {"calls_7d": int(calls_week[k] + earlier_same_channel),
                    "connected_recently": int(connected_quiet[k]), "connected_today": int(connected_today[k])}
            capped = (used["calls_7d"] >= profile.max_call_attempts_7d or used["connected_recently"] > 0
                      or (profile.max_connected_calls_per_day is not None
                          and used["connected_today"] >= profile.max_connected_calls_per_day))
        else:
            used = {"messages_today": int(day_total[k] + released_messages.get(account, 0)),
                    "channel_7d": int(per_channel[k] + earlier_same_channel)}
            capped = (used["messages_today"] >= profile.max_messages_per_day
                      or used["channel_7d"] >= profile.max_per_channel_7d)
        traces[i]["counts"] = used
        if capped:
            decision[i], reason[i] = SUPPRESS, "frequency_cap"
            continue
        released_per_channel[(account, channel)] = earlier_same_channel + 1
        if channel != "call":
            released_messages[account] = released_messages.get(account, 0) + 1
