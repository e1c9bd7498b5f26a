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


def seconds_of(values) -> np.ndarray:
    """Whole epoch seconds of aware datetimes, whatever resolution pandas chose for them (ns, us, s)."""
    stamps = pd.to_datetime(pd.Series(values), utc=True)
    return ((stamps - EPOCH) // pd.Timedelta(seconds=1)).to_numpy(dtype=np.int64)


def _ids(values) -> np.ndarray:
    values = values.to_numpy(dtype=object) if isinstance(values, pd.Series) else np.asarray(values, dtype=object)
    return np.array([v if type(v) is str else str(v) for v in values.tolist()], dtype=object)


class History:
    """Past contacts of a batch of candidate rows: ``account_id``, ``at`` (aware UTC) and optional columns.

    Accounts are integer codes from one factorisation of the candidates' and the
    history's ids together; counts take the candidates' rows and their windows in
    whole epoch seconds.
    """

    def __init__(self, frame: pd.DataFrame, account_ids) -> None:
        candidates = _ids(account_ids)
        past = _ids(frame["account_id"]) if len(frame) else np.zeros(0, dtype=object)
        codes, _ = pd.factorize(np.concatenate([candidates, past]))
        self.candidate_codes = codes[:len(candidates)].astype(np.int64)
        self.history_codes = codes[len(candidates):].astype(np.int64)
        self.history_seconds = seconds_of(frame["at"]) if len(frame) else np.zeros(0, dtype=np.int64)

    def count(self, rows: np.ndarray, since: np.ndarray, until: np.ndarray, mask: np.ndarray | None = None
              ) -> np.ndarray:
        """Per candidate row in ``rows``: history rows of its account with ``since <= at <= until`` (epoch
        seconds, one per row in ``rows``), among those ``mask`` keeps."""
        codes, seconds = self.history_codes, self.history_seconds
        if mask is not None:
            codes, seconds = codes[mask], seconds[mask]
        if len(codes) == 0 or len(rows) == 0:
            return np.zeros(len(rows), dtype=np.int64)
        keys = np.sort(codes * SHIFT + seconds)
        wanted = self.candidate_codes[rows] * SHIFT
        low = np.searchsorted(keys, wanted + since, side="left")
        high = np.searchsorted(keys, wanted + until, side="right")
        return (high - low).astype(np.int64)


def build_history(history: pd.DataFrame, account_ids) -> History:
    return History(history.reset_index(drop=True), account_ids)
