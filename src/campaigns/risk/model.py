"""A risk score the team can explain: the chance an account pays what is due within the attribution window.

Trained by the ``train_risk_model`` flow from the outcome log (the review's units:
each assignment, with whether it was cured), as a scikit-learn logistic
regression on features known at assignment:

- ``days_past_due``, ``log_amount_due`` (in the reporting currency) and
  ``log_paid_before`` (payments in the review's pre-period before assignment);
- ``stage`` and ``segment`` (one-hot).

The fitted model is stored as numbers (scaler, categories, coefficients) in
``risk_models``, never as a pickle, and scored with numpy, so each score comes
with the features that moved it most. It is evaluated on the latest quarter of
its window, held out by time: AUC, Brier score and a calibration table by
decile. With too little history (``MIN_UNITS`` assignments, ``MIN_CLASS`` of
each outcome) the version is stored as ``insufficient``, says so, and nothing
uses it: the rule-based segments decide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import pandas as pd
from sqlalchemy import Engine, func, insert, select

from campaigns.db.models import RiskModel

NUMERIC = ["days_past_due", "log_amount_due", "log_paid_before"]
CATEGORICAL = ["stage", "segment"]
MIN_UNITS = 400
MIN_CLASS = 40
LABELS = {"days_past_due": "days past due", "log_amount_due": "amount due", "log_paid_before": "recent payments"}


def features(units: pd.DataFrame) -> pd.DataFrame:
    """The model's inputs from review units (or any frame with days_past_due, amount_due_reporting,
    paid_before_reporting, stage and segment)."""
    return pd.DataFrame({
        "days_past_due": pd.to_numeric(units["days_past_due"], errors="coerce").fillna(0).astype(float),
        "log_amount_due": np.log1p(pd.to_numeric(units["amount_due_reporting"], errors="coerce").fillna(0).clip(lower=0)),
        "log_paid_before": np.log1p(pd.to_numeric(units["paid_before_reporting"], errors="coerce").fillna(0)
                                    .clip(lower=0)),
        "stage": units["stage"].fillna("unknown").astype(str),
        "segment": units["segment"].fillna("unknown").astype(str),
    }, index=units.index)


@dataclass(frozen=True)
class TrainedModel:
    version: int
    status: str
    units: int
    cured: int
    auc: float | None
    brier: float | None
    calibration: list[dict]
    params: dict | None
    note: str


def _design(x: pd.DataFrame, params: dict) -> tuple[np.ndarray, list[str]]:
    """Standardised numbers and one-hot categories, in the stored order, with the name of each column."""
    columns, names = [], []
    for name, mean, scale in zip(NUMERIC, params["mean"], params["scale"]):
        columns.append((x[name].to_numpy(float) - mean) / scale)
        names.append(LABELS[name])
    for name in CATEGORICAL:
        for category in params["categories"][name]:
            columns.append((x[name].to_numpy() == category).astype(float))
            names.append(f"{name} {category}")
    return np.column_stack(columns) if columns else np.zeros((len(x), 0)), names


def score(params: dict, x: pd.DataFrame, top: int = 3) -> pd.DataFrame:
    """Chance of paying within the window per row, and the features that moved it most (signed, in words)."""
    design, names = _design(x, params)
    coefficients = np.asarray(params["coef"], dtype=float)
    contributions = design * coefficients
    logit = contributions.sum(axis=1) + params["intercept"]
    chance = 1 / (1 + np.exp(-logit))
    order = np.argsort(-np.abs(contributions), axis=1)[:, :top]
    reasons = []
    for row, picks in enumerate(order):
        parts = [f"{names[j]} {'+' if contributions[row, j] >= 0 else '-'}" for j in picks
                 if abs(contributions[row, j]) > 1e-9]
        reasons.append(", ".join(parts))
    return pd.DataFrame({"pay_chance": chance, "pay_reasons": reasons}, index=x.index)


def _calibration(predicted: np.ndarray, observed: np.ndarray, bins: int = 10) -> list[dict]:
    order = np.argsort(predicted, kind="stable")
    table = []
    for part in np.array_split(order, min(bins, len(order))):
        if len(part):
            table.append({"predicted": round(float(predicted[part].mean()), 4),
                          "observed": round(float(observed[part].mean()), 4), "accounts": int(len(part))})
    return table


def train(units: pd.DataFrame, version: int, rules=None) -> TrainedModel:
    """Fit on the earlier three quarters of the units (by assignment time), evaluate on the latest quarter,
    then refit on all of them for use."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import brier_score_loss, roc_auc_score

    y_all = units["cured"].astype(bool).to_numpy() if len(units) else np.zeros(0, dtype=bool)
    n, positives = len(units), int(y_all.sum())
    if n < MIN_UNITS or min(positives, n - positives) < MIN_CLASS:
        return TrainedModel(version, "insufficient", n, positives, None, None, [], None,
                            f"too little history: {n:,} assignments with a closed window, {positives:,} cured "
                            f"(at least {MIN_UNITS} and {MIN_CLASS} of each outcome); the rule-based segments decide")
    units = units.sort_values("assigned_at", kind="stable")
    x_all, y_all = features(units), units["cured"].astype(bool).to_numpy()
    cut = int(n * 0.75)

    def fit(x: pd.DataFrame, y: np.ndarray) -> dict:
        params = {"mean": [float(x[c].mean()) for c in NUMERIC],
                  "scale": [float(x[c].std(ddof=0)) or 1.0 for c in NUMERIC],
                  "categories": {c: sorted(x[c].unique().tolist()) for c in CATEGORICAL}}
        design, names = _design(x, params)
        model = LogisticRegression(C=1.0, max_iter=2000).fit(design, y)
        params.update(coef=[float(v) for v in model.coef_[0]], intercept=float(model.intercept_[0]), names=names)
        return params

    held_x, held_y = x_all.iloc[cut:], y_all[cut:]
    trial = fit(x_all.iloc[:cut], y_all[:cut])
    predicted = score(trial, held_x)["pay_chance"].to_numpy()
    auc = float(roc_auc_score(held_y, predicted)) if 0 < held_y.sum() < len(held_y) else math.nan
    brier = float(brier_score_loss(held_y, predicted))
    final = fit(x_all, y_all)
    if rules is not None:  # how amounts were converted and payments counted, so a score reads accounts alike
        final.update(rates=dict(rules.rates_to_reporting), pre_period_days=rules.pre_period_days)
    top = sorted(zip(final["names"], final["coef"]), key=lambda t: -abs(t[1]))[:5]
    note = (f"AUC {auc:.3f} and Brier {brier:.3f} on the latest {len(held_y):,} assignments, held out; "
            "strongest: " + ", ".join(f"{name} ({coef:+.2f})" for name, coef in top))
    return TrainedModel(version, "ready", n, positives, None if math.isnan(auc) else auc, brier,
                        _calibration(predicted, held_y.astype(float)), final, note)


def train_and_store(engine: Engine, units: pd.DataFrame, window: tuple[date, date], now: datetime,
                    rules=None) -> TrainedModel:
    """Train the next version from ``units`` and store it (an insufficient one too, so the history shows why)."""
    with engine.begin() as conn:
        model = train(units, next_version(conn, RiskModel), rules)
        conn.execute(insert(RiskModel.__table__), {
            "version": model.version, "trained_at": now, "window_start": window[0], "window_end": window[1],
            "status": model.status, "units": model.units, "cured": model.cured, "auc": model.auc,
            "brier": model.brier, "calibration": model.calibration, "params": model.params, "note": model.note})
    return model


def next_version(conn, table) -> int:
    """The version a newly trained model of ``table`` (risk, uplift) gets: one past the newest stored."""
    return (conn.execute(select(func.max(table.version))).scalar_one() or 0) + 1


def training_units(engine: Engine, rules, today: date, days: int = 180):
    """The review's units of the ``days`` before the last day whose attribution window has closed, with outcomes."""
    from datetime import timedelta

    from campaigns.review.effectiveness import load_assignments, load_outcomes

    until = today - timedelta(days=rules.attribution_window_days + 1)
    since = until - timedelta(days=days - 1)
    units = load_assignments(engine, since, until)
    units = units[units["amount_due"] > 0].reset_index(drop=True)
    return load_outcomes(engine, units, since, until, rules), (since, until)


def account_features(conn, frame: pd.DataFrame, rules, now: datetime, stage: str) -> pd.DataFrame:
    """The model's inputs for accounts today (account_id, days_past_due, amount_due, currency; ``segment`` if
    known, else that of each account's latest assignment) and payments in the pre-period before ``now``.
    ``rules`` gives ``rates_to_reporting`` and ``pre_period_days`` (the review's, or the model's own)."""
    from datetime import timedelta

    from campaigns.db.engine import in_batches
    from campaigns.db.models import ContactAttempt, Payment
    from campaigns.money.ledger import standing

    ids = frame["account_id"].tolist()
    paid: dict[str, float] = {}
    segment: dict[str, str] = {}
    rates = rules["rates"] if isinstance(rules, dict) else rules.rates_to_reporting
    pre_days = rules["pre_period_days"] if isinstance(rules, dict) else rules.pre_period_days
    since = now - timedelta(days=pre_days)
    a = ContactAttempt
    for part in in_batches(ids):
        paid.update((i, float(v or 0)) for i, v in conn.execute(
            select(Payment.account_id, func.sum(Payment.amount)).where(
                Payment.account_id.in_(part), Payment.paid_at >= since, Payment.paid_at < now, standing())
            .group_by(Payment.account_id)))
        if "segment" not in frame.columns:
            for account_id, seg in conn.execute(
                    select(a.account_id, a.segment).where(a.account_id.in_(part), a.variant.is_not(None))
                    .order_by(a.account_id, a.created_at)):
                segment[account_id] = seg  # the latest wins
    rate = frame["currency"].map(rates).astype(float).fillna(0.0)
    return features(pd.DataFrame({
        "days_past_due": frame["days_past_due"],
        "amount_due_reporting": pd.to_numeric(frame["amount_due"], errors="coerce").astype(float) * rate,
        "paid_before_reporting": [paid.get(i, 0.0) for i in ids] * rate,
        "stage": stage,
        "segment": frame["segment"].tolist() if "segment" in frame.columns else [segment.get(i) for i in ids],
    }, index=frame.index))


def latest_ready(bind) -> dict | None:
    """The newest usable model's parameters (with its version), or None: the rules decide. ``bind``: an
    engine, or a connection already open (a stage chunk's)."""
    return newest_ready(bind, RiskModel)


def newest_ready(bind, table) -> dict | None:
    """The newest ``ready`` version's parameters in a table of versioned models (risk, uplift), with its version."""
    stmt = (select(table.version, table.params).where(table.status == "ready")
            .order_by(table.version.desc()).limit(1))
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            row = conn.execute(stmt).first()
    else:
        row = bind.execute(stmt).first()
    return None if row is None else {**row.params, "version": row.version}


def history(engine: Engine, limit: int = 10) -> list[dict]:
    with engine.connect() as conn:
        # The table's columns, not the mapped class: a Connection's .scalars() of select(RiskModel) is
        # the first column (an int), not the model.
        rows = conn.execute(select(RiskModel.__table__).order_by(RiskModel.version.desc()).limit(limit)).all()
    return [{"version": r.version, "trained_at": r.trained_at, "window": f"{r.window_start}..{r.window_end}",
             "status": r.status, "units": r.units, "cured": r.cured, "auc": r.auc, "brier": r.brier,
             "calibration": r.calibration, "note": r.note} for r in rows]
