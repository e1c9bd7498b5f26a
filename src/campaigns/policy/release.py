"""The release decision: may this message go out *now*? Release, defer (until when) or suppress (why).

The same function runs when a message is queued and again when it is released,
with fresh data, so an opt-out, a hold or a payment that arrives in between is
honoured, and the contact window is checked at the moment that counts. Each
decision comes with a trace of its inputs (zones, local times, counts; no
personal data) that is stored with the attempt.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from campaigns.policy.caps import build_history, seconds_of
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
    get = lambda col: _text(frame[col].tolist()) if col in frame else [None] * len(frame)  # noqa: E731
    # The phone's zones as the importer stored them; the phone itself is parsed only where they are not.
    return [_zones_of(z, None, c, o) if o is not None else _zones_of(z, p, c, None)
            for z, p, c, o in zip(get("timezone"), get("phone"), get("country"), get("phone_zones"))]


@lru_cache(maxsize=131072)
def _zones_of(stated: str | None, phone: str | None, country: str | None, of_phone: str | None
              ) -> tuple[str, ...]:
    # Customers share a zone, an area code, a country: the same few combinations recur.
    return plausible_zones(stated, phone, country, of_phone)


def _text(values) -> list[str | None]:
    return [v if isinstance(v, str) else None for v in values]


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
    if n == 0:
        return pd.DataFrame({"decision": [], "reason": [], "release_after": [], "trace": []}, index=frame.index)
    decision = np.full(n, RELEASE, dtype=object)
    reason = np.full(n, None, dtype=object)
    release_after = np.full(n, None, dtype=object)
    at = now.isoformat()
    traces = [{"at": at, "check": check} for _ in range(n)]

    channels = frame["channel"].astype(str).to_numpy()
    account_reason = account_suppression(frame).to_numpy(dtype=object)
    for channel in pd.unique(channels):
        rows = channels == channel
        channel_reason = channel_suppression(frame[rows], channel).to_numpy(dtype=object)
        merged = np.where(pd.isna(account_reason[rows]), channel_reason, account_reason[rows])
        reason[rows] = merged
    decision[~pd.isna(reason)] = SUPPRESS

    zones = plausible_zone_column(frame)
    countries = _text(frame["country"].tolist()) if "country" in frame else [None] * n
    by_country = {c: config.for_country(c) for c in set(countries)}
    profiles = [by_country[c] for c in countries]
    # Each row's jurisdiction as a small integer, for the caps' limits as arrays (for_country always
    # answers one of the configured jurisdictions, the default included).
    jurisdictions = list(config.jurisdictions.values())
    position = {j.code: k for k, j in enumerate(jurisdictions)}
    profile_index = np.array([position[p.code] for p in profiles], dtype=np.int64)
    # Each row may wait until max(created_at + max_defer, now): as integers, one array operation.
    now_ns = pd.Timestamp(now).as_unit("ns").value
    created_ns = (pd.to_datetime(frame["created_at"], utc=True).dt.as_unit("ns").array.asi8 if "created_at" in frame
                  else np.full(n, now_ns, dtype=np.int64))
    deadline_ns = np.maximum(created_ns + pd.Timedelta(hours=config.max_defer_hours).value, now_ns)

    day_start = np.full(n, None, dtype=object)
    week_start = np.full(n, None, dtype=object)
    groups: dict[tuple, list[int]] = {}
    zone_lists: dict[tuple[str, ...], list[str]] = {}
    for i in np.flatnonzero(decision == RELEASE).tolist():
        zone_set, profile = zones[i], profiles[i]
        trace = traces[i]
        trace["jurisdiction"] = profile.code
        trace["zones"] = zone_lists.get(zone_set) or zone_lists.setdefault(zone_set, list(zone_set))
        if channels[i] in UNTIMED_CHANNELS:
            continue
        if not zone_set:
            decision[i], reason[i] = SUPPRESS, "unknown_timezone"
            continue
        kind = "call" if channels[i] == "call" else "message"
        groups.setdefault((zone_set, profile.code, kind), []).append(i)

    for (zone_set, code, kind), members in groups.items():
        profile = config.jurisdictions[code]
        blocked = blocked_reason(zone_set, now, profile, kind)
        local_times = [now.astimezone(ZoneInfo(z)).strftime("%a %H:%M") for z in zone_set]
        starts = (local_day_start(zone_set, now), local_day_start(zone_set, now, days_back=6))
        for i in members:
            traces[i]["local_times"] = local_times
        day_start[members] = starts[0]
        week_start[members] = starts[1]
        if blocked is None:
            continue
        # One search per group, as far as the latest deadline in it; each row then checks its own.
        latest = int(deadline_ns[members].max())
        when = next_allowed(zone_set, now, profile, kind, timedelta(microseconds=(latest - now_ns) // 1000))
        late = (np.ones(len(members), dtype=bool) if when is None
                else deadline_ns[members] < pd.Timestamp(when).as_unit("ns").value)
        rows = np.array(members)
        expired, waiting = rows[late], rows[~late]
        decision[expired], reason[expired] = SUPPRESS, "expired"
        decision[waiting], reason[waiting] = DEFER, blocked
        release_after[waiting] = when

    _apply_caps(frame, history, now, jurisdictions, profile_index, channels, decision, reason, day_start, week_start,
                traces)
    iso: dict[datetime, str] = {}
    for i, (trace, d, r, later) in enumerate(zip(traces, decision.tolist(), reason.tolist(), release_after.tolist())):
        trace["decision"] = d
        if r is not None:
            trace["reason"] = r
        if later is not None:
            trace["release_after"] = iso.get(later) or iso.setdefault(later, later.isoformat())
    return pd.DataFrame(
        {"decision": decision, "reason": reason, "release_after": release_after, "trace": traces}, index=frame.index
    )


def _apply_caps(frame, history, now, jurisdictions, profile_index, channels, decision, reason, day_start, week_start,
                traces):
    """Frequency caps across channels and runs, counted in the customer's local days.

    Rows of the same account are decided in order, the earlier ones released using
    the caps up first: in rounds, the r-th candidate row of every account together.
    """
    candidates = np.flatnonzero((decision == RELEASE) & np.isin(channels, list(MESSAGE_CHANNELS | {"call"})))
    if len(candidates) == 0:
        return
    history = history if history is not None and not history.empty else pd.DataFrame(columns=HISTORY_COLUMNS)
    account_ids = frame["account_id"].to_numpy(dtype=object)[candidates]
    counts = build_history(history, account_ids)
    every = np.arange(len(candidates))
    until = np.full(len(candidates), seconds_of([now])[0], dtype=np.int64)
    day = seconds_of(day_start[candidates])
    week = seconds_of(week_start[candidates])
    hist_channels = history["channel"].astype(str).to_numpy() if len(history) else np.array([], dtype=object)
    is_message = np.isin(hist_channels, list(MESSAGE_CHANNELS))
    is_call = hist_channels == "call"
    connected = is_call & (history["outcome"].astype(str).to_numpy() == "connected") if len(history) else is_call
    sub_channels = channels[candidates]
    sub_profile = profile_index[candidates]

    day_total = counts.count(every, day, until, is_message)
    per_channel = np.zeros(len(candidates), dtype=np.int64)
    for channel in pd.unique(sub_channels):
        rows = np.flatnonzero(sub_channels == channel)
        per_channel[rows] = counts.count(rows, week[rows], until[rows], hist_channels == channel)
    is_call_row = sub_channels == "call"
    calls_week = connected_quiet = connected_today = np.zeros(len(candidates), dtype=np.int64)
    if is_call_row.any():
        calls_week = counts.count(every, week, until, is_call)
        quiet_days = seconds_of([now - timedelta(days=jurisdictions[k].quiet_days_after_conversation)
                                 for k in sub_profile.tolist()])
        connected_quiet = counts.count(every, quiet_days, until, connected)
        connected_today = counts.count(every, day, until, connected)

    def limit(attr: str) -> np.ndarray:  # -1: no limit
        values = [getattr(j, attr) for j in jurisdictions]
        return np.array([-1 if v is None else v for v in values], dtype=np.int64)[sub_profile]

    max_today, max_channel, max_calls = limit("max_messages_per_day"), limit("max_per_channel_7d"), \
        limit("max_call_attempts_7d")
    max_connected = limit("max_connected_calls_per_day")

    # The account of each row, the (account, channel) pair, and the row's place among its account's rows.
    account_code = counts.candidate_codes
    pair_code = pd.MultiIndex.from_arrays([account_code, sub_channels]).codes
    pair_code = pair_code[0].astype(np.int64) * (int(pair_code[1].max()) + 1) + pair_code[1]
    order = np.argsort(account_code, kind="stable")
    first = np.r_[True, account_code[order][1:] != account_code[order][:-1]]
    starts = np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order)) - starts

    released_messages = np.zeros(int(account_code.max()) + 1, dtype=np.int64)
    released_pairs = np.zeros(int(pair_code.max()) + 1, dtype=np.int64)
    used_today = np.zeros(len(candidates), dtype=np.int64)
    used_channel = np.zeros(len(candidates), dtype=np.int64)
    capped = np.zeros(len(candidates), dtype=bool)
    for r in range(int(rank.max()) + 1):
        rows = np.flatnonzero(rank == r)
        earlier_same_channel = released_pairs[pair_code[rows]]
        used_channel[rows] = np.where(is_call_row[rows], calls_week[rows], per_channel[rows]) + earlier_same_channel
        used_today[rows] = day_total[rows] + released_messages[account_code[rows]]
        call = is_call_row[rows]
        capped[rows] = np.where(
            call,
            (used_channel[rows] >= max_calls[rows]) | (connected_quiet[rows] > 0)
            | ((max_connected[rows] >= 0) & (connected_today[rows] >= max_connected[rows])),
            (used_today[rows] >= max_today[rows]) | (used_channel[rows] >= max_channel[rows]),
        )
        released = rows[~capped[rows]]
        np.add.at(released_pairs, pair_code[released], 1)
        np.add.at(released_messages, account_code[released[~is_call_row[released]]], 1)

    for k, (i, call, today, channel_7d, quiet, connected_now) in enumerate(zip(
            candidates.tolist(), is_call_row.tolist(), used_today.tolist(), used_channel.tolist(),
            connected_quiet.tolist(), connected_today.tolist())):
        traces[i]["counts"] = ({"calls_7d": channel_7d, "connected_recently": quiet, "connected_today": connected_now}
                               if call else {"messages_today": today, "channel_7d": channel_7d})
    hit = candidates[capped]
    decision[hit] = SUPPRESS
    reason[hit] = "frequency_cap"
