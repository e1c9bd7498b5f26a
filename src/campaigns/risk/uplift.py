"""Who a message helps: a model of each account's *uplift* (how much contacting it raises its chance of paying).

Contacting everyone is not the goal; recovering money with the fewest contacts is. Field studies of reminder
targeting found that nudging the half chosen by predicted *effect* kept most of the benefit of nudging everyone,
while targeting by baseline risk can hurt: the accounts most likely to pay anyway are the least helped. We can
learn the effect because we randomise: every stage keeps a holdout.

The model is a T-learner on the review's units (assignments whose attribution window has closed): one
scikit-learn logistic regression of cure on the contacted arms' accounts, one on the holdout's, on the risk
model's features (days past due, amount due, recent payments, stage, segment; ``campaigns.risk.model``). An
account's predicted uplift is the first's chance minus the second's. It is judged out of time: fitted on the
earlier three quarters of its window, its Qini curve on the latest quarter (cumulative extra cures when contacting
the accounts in order of predicted uplift, against contacting them in random order) and the area between the two
(``qini``: above 0, the ranking beats chance). Stored as numbers (``uplift_models``), never a pickle; with too
little history (``MIN_CONTACTED`` and ``MIN_HOLDOUT`` units, ``MIN_CURED`` cures in each) the version is stored as
``insufficient`` and nothing uses it: the targeted arm then contacts everyone.

An experiment arm uses it with ``targeting: {model: uplift, min_uplift: 0.02}`` (or ``top_share: 0.5``: the
threshold is the model's predicted uplift at that share of its training accounts): its accounts predicted below
the threshold are logged ``suppressed: low_uplift`` with the prediction in their trace, after every compliance
rule; they stay in the arm (intention to treat), so the review compares targeting with contacting everyone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import pandas as pd
from sqlalchemy import Engine, insert, select

from campaigns.db.models import UpliftModel
from campaigns.risk.model import CATEGORICAL, NUMERIC, _design, features, newest_ready, next_version

MIN_CONTACTED = 400
MIN_HOLDOUT = 100
MIN_CURED = 20
HOLDOUT = "holdout"
CURVE_POINTS = 21  # the Qini curve at 0%, 5%, ..., 100% of the accounts


@dataclass(frozen=True)
class TrainedUplift:
    version: int
    status: str
    contacted: int
    held_out: int
    qini: float | None  # the area between the model's Qini curve and random targeting, on held-out accounts
    curve: list[dict]
    params: dict | None
    note: str


def _fit(x: pd.DataFrame, y: np.ndarray) -> dict:
    from sklearn.linear_model import LogisticRegression

    params = {"mean": [float(x[c].mean()) for c in NUMERIC],
              "scale": [float(x[c].std(ddof=0)) or 1.0 for c in NUMERIC],
              "categories": {c: sorted(x[c].unique().tolist()) for c in CATEGORICAL}}
    design, names = _design(x, params)
    if len(set(y.tolist())) < 2:  # all cured or none: a constant chance
        rate = float(y.mean()) if len(y) else 0.0
        params.update(coef=[0.0] * design.shape[1], intercept=math.log(max(rate, 1e-6) / max(1 - rate, 1e-6)),
                      names=names)
        return params
    model = LogisticRegression(C=1.0, max_iter=2000).fit(design, y)
    params.update(coef=[float(v) for v in model.coef_[0]], intercept=float(model.intercept_[0]), names=names)
    return params


def _chance(params: dict, x: pd.DataFrame) -> np.ndarray:
    design, _ = _design(x, params)
    logit = design @ np.asarray(params["coef"], dtype=float) + params["intercept"]
    return 1 / (1 + np.exp(-logit))


def predict_uplift(params: dict, x: pd.DataFrame) -> np.ndarray:
    """Each row's predicted uplift in cure probability: chance if contacted minus chance if held out."""
    return _chance(params["contacted"], x) - _chance(params["held_out"], x)


def qini_curve(uplift: np.ndarray, treated: np.ndarray, cured: np.ndarray, points: int = CURVE_POINTS) -> list[dict]:
    """Radcliffe's Qini curve: contacting the top share of accounts by predicted uplift, the extra cures it
    brings (treated cures minus control cures scaled to the treated count), at each share; and random
    targeting's straight line to the same end."""
    order = np.argsort(-uplift, kind="stable")
    t, c, y = treated[order].astype(bool), ~treated[order].astype(bool), cured[order].astype(float)
    n = len(order)
    curve = []
    total_t, total_c = max(t.sum(), 1), max(c.sum(), 1)
    end = y[t].sum() - y[c].sum() * total_t / total_c
    for share in np.linspace(0, 1, points):
        k = int(round(share * n))
        nt, nc = t[:k].sum(), c[:k].sum()
        gain = y[:k][t[:k]].sum() - (y[:k][c[:k]].sum() * nt / nc if nc else 0.0)
        curve.append({"share": round(float(share), 3), "model": round(float(gain) / total_t, 5),
                      "random": round(float(end * share) / total_t, 5)})
    return curve


def qini_area(curve: list[dict]) -> float:
    """The area between the model's curve and random targeting (trapezoids over the shares)."""
    shares = np.array([p["share"] for p in curve])
    gap = np.array([p["model"] - p["random"] for p in curve])
    return float(np.sum((gap[1:] + gap[:-1]) / 2 * np.diff(shares)))


def train(units: pd.DataFrame, version: int, rules=None) -> TrainedUplift:
    """Fit on the earlier three quarters of the units (by assignment time), draw the Qini curve on the latest
    quarter, then refit on all of them for use."""
    units = units.sort_values("assigned_at", kind="stable").reset_index(drop=True) if len(units) else units
    treated = (units["variant"] != HOLDOUT).to_numpy() if len(units) else np.zeros(0, dtype=bool)
    cured = units["cured"].astype(bool).to_numpy() if len(units) else np.zeros(0, dtype=bool)
    n_t, n_c = int(treated.sum()), int((~treated).sum())
    cured_t, cured_c = int(cured[treated].sum()), int(cured[~treated].sum())
    if n_t < MIN_CONTACTED or n_c < MIN_HOLDOUT or min(cured_t, cured_c) < MIN_CURED:
        return TrainedUplift(version, "insufficient", n_t, n_c, None, [], None,
                             f"too little history: {n_t:,} contacted and {n_c:,} held-out assignments with a closed "
                             f"window, {cured_t:,} and {cured_c:,} cured (at least {MIN_CONTACTED}, {MIN_HOLDOUT} "
                             f"and {MIN_CURED} cures in each); the targeted arm contacts everyone")
    x = features(units)
    cut = int(len(units) * 0.75)

    def fit(rows: slice) -> dict:
        part_t, part_c = treated[rows], ~treated[rows]
        xs, ys = x.iloc[rows], cured[rows]
        return {"contacted": _fit(xs[part_t], ys[part_t]), "held_out": _fit(xs[part_c], ys[part_c])}

    trial = fit(slice(0, cut))
    held = slice(cut, len(units))
    predicted = predict_uplift(trial, x.iloc[held])
    curve = qini_curve(predicted, treated[held], cured[held])
    area = qini_area(curve)
    final = fit(slice(0, len(units)))
    every = predict_uplift(final, x)
    final["quantiles"] = [round(float(q), 6) for q in np.quantile(every, np.linspace(0, 1, 101))]
    if rules is not None:  # how amounts were converted and payments counted, so a score reads accounts alike
        final.update(rates=dict(rules.rates_to_reporting), pre_period_days=rules.pre_period_days)
    half = next((p for p in curve if p["share"] == 0.5), None)
    end = curve[-1]["model"] if curve else 0.0
    kept = (half["model"] / end) if half and end > 0 else math.nan
    note = (f"Qini area {area:+.4f} over random targeting on the latest {len(predicted):,} assignments, held out"
            + (f"; the top half by predicted uplift brings {kept:.0%} of the extra cures of contacting everyone"
               if not math.isnan(kept) else ""))
    return TrainedUplift(version, "ready", n_t, n_c, area, curve, final, note)


def threshold(params: dict, targeting) -> float:
    """The predicted uplift below which an arm with ``targeting`` does not contact: its ``min_uplift``, or the
    model's training accounts' quantile that leaves ``top_share`` above it."""
    if targeting.min_uplift is not None:
        return float(targeting.min_uplift)
    quantiles = params["quantiles"]
    return float(quantiles[min(100, max(0, int(round((1 - targeting.top_share) * 100))))])


def train_and_store(engine: Engine, units: pd.DataFrame, window: tuple[date, date], now: datetime,
                    rules=None) -> TrainedUplift:
    """Train the next version and store it (an insufficient one too, so the history shows why)."""
    with engine.begin() as conn:
        model = train(units, next_version(conn, UpliftModel), rules)
        conn.execute(insert(UpliftModel.__table__), {
            "version": model.version, "trained_at": now, "window_start": window[0], "window_end": window[1],
            "status": model.status, "contacted": model.contacted, "held_out": model.held_out, "qini": model.qini,
            "curve": model.curve, "params": model.params, "note": model.note})
    return model


def latest_ready(bind) -> dict | None:
    """The newest usable uplift model's parameters (with its version), or None. ``bind``: an engine or a
    connection."""
    return newest_ready(bind, UpliftModel)


def history(engine: Engine, limit: int = 10) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(select(UpliftModel.__table__).order_by(UpliftModel.version.desc()).limit(limit)).all()
    return [{"version": r.version, "trained_at": r.trained_at, "window": f"{r.window_start}..{r.window_end}",
             "status": r.status, "contacted": r.contacted, "held_out": r.held_out, "qini": r.qini,
             "curve": r.curve, "note": r.note} for r in rows]
