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

    def __init__(self, frame: pd.DataFrame, account_codes: dict[str, int]):
        self.frame = frame
        self.codes = account_codes

    def count(
        self, account_ids: pd.Series, since: pd.Series, until: pd.Series, mask: np.ndarray | None = None
    ) -> np.ndarray:
        """Per candidate row: history rows of that account with ``since <= at <= until`` (and ``mask``)."""
        history = self.frame if mask is None else self.frame[mask]
        if history.empty or len(account_ids) == 0:
            return np.zeros(len(account_ids), dtype=np.int64)
        keys = np.sort(
            history["account_id"].map(self.codes).to_numpy(dtype=np.int64) * SHIFT + _seconds(history["at"])
        )
        codes = account_ids.map(self.codes).to_numpy(dtype=np.int64) * SHIFT
        low = np.searchsorted(keys, codes + _seconds(since), side="left")
        high = np.searchsorted(keys, codes + _seconds(until), side="right")
        return (high - low).astype(np.int64)


def build_history(history: pd.DataFrame, account_ids: pd.Series) -> History:
    ids = pd.unique(pd.concat([account_ids.astype(str), history.get("account_id", pd.Series(dtype=str)).astype(str)]))
    return History(history.reset_index(drop=True), {a: i for i, a in enumerate(ids)})
