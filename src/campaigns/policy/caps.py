"""Rolling-window counts of past contacts, vectorised with numpy ``searchsorted``.

History rows are keyed ``account code << 34 | epoch seconds`` and sorted once;
each question "how many contacts of this account between t0 and t1" is then two
binary searches, for every candidate row at once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SHIFT = np.int64(1 << 34)  # epoch seconds stay below 2**34 until the year 2514


EPOCH = pd.Timestamp(0, tz="UTC")


def _seconds(values) -> np.ndarray:
    """Whole epoch seconds, whatever resolution pandas chose for the datetimes (ns, us, s)."""
    stamps = pd.to_datetime(pd.Series(values), utc=True)
    return ((stamps - EPOCH) // pd.Timedelta(seconds=1)).to_numpy(dtype=np.int64)


class History:
    """Past contacts: one row per contact with ``account_id``, ``at`` (aware UTC) and optional columns."""

    def __init__(self, frame: pd.DataFrame, accounts: pd.Index):
        self.accounts = accounts  # every account id of the candidates and the history, once
        # Integer codes by one vectorised hash lookup per column, not a Python dict lookup per row
        self.history_codes = accounts.get_indexer(frame["account_id"].astype(str)) if len(frame) else \
            np.zeros(0, dtype=np.int64)
        self.history_seconds = _seconds(frame["at"]) if len(frame) else np.zeros(0, dtype=np.int64)

    def count(
        self, account_ids: pd.Series, since: pd.Series, until: pd.Series, mask: np.ndarray | None = None
    ) -> np.ndarray:
        """Per candidate row: history rows of that account with ``since <= at <= until`` (and ``mask``)."""
        codes, seconds = self.history_codes, self.history_seconds
        if mask is not None:
            codes, seconds = codes[mask], seconds[mask]
        if len(codes) == 0 or len(account_ids) == 0:
            return np.zeros(len(account_ids), dtype=np.int64)
        keys = np.sort(codes.astype(np.int64) * SHIFT + seconds)
        wanted = self.accounts.get_indexer(account_ids.astype(str)).astype(np.int64) * SHIFT
        low = np.searchsorted(keys, wanted + _seconds(since), side="left")
        high = np.searchsorted(keys, wanted + _seconds(until), side="right")
        return (high - low).astype(np.int64)


def build_history(history: pd.DataFrame, account_ids: pd.Series) -> History:
    ids = pd.unique(pd.concat([account_ids.astype(str), history.get("account_id", pd.Series(dtype=str)).astype(str)]))
    return History(history.reset_index(drop=True), pd.Index(ids))
