"""Ad-hoc cohorts for the data team: a file of account ids, a structured filter, or an allow-listed view.

The cohort chooses accounts within the stage's own days past due (an account
outside them is left out, and counted: the stage's message would not be true for
it); the run goes through the same guards (open, owing, one stage a day, ``every_days``, no
promise or plan in good standing), the same policy, experiment assignment,
idempotency keys and logging as the daily run. Never SQL text from a parameter:
a view is named, checked against ``adhoc_views`` in ``config/review.yaml``,
and read as a table with an ``account_id`` column.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path
from typing import Self

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import Engine, and_, column, select, table
from sqlalchemy.exc import SQLAlchemyError

from campaigns.contact.cohorts import ChunkBounds
from campaigns.db.models import Account, Customer
from campaigns.ladder.config import SEGMENTS, DayRange, Ladder, StageRule

VIEW_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class AdhocError(ValueError):
    """The cohort cannot be used: one line naming the file, row, field, segment or view. Nothing is sent."""


class CohortFilter(BaseModel):
    """Accounts by what they are today; every field optional, all of them must hold."""

    model_config = ConfigDict(extra="forbid")
    days_past_due_min: int | None = Field(default=None, ge=-3650, le=3650, description="at least this many days late")
    days_past_due_max: int | None = Field(default=None, ge=-3650, le=3650, description="at most this many days late")
    balance_min: float | None = Field(default=None, ge=0, description="balance at least this, in its own currency")
    balance_max: float | None = Field(default=None, ge=0, description="balance at most this")
    segments: list[str] | None = Field(default=None, description=f"any of: {', '.join(SEGMENTS)}")
    products: list[str] | None = Field(default=None, description="any of these products")
    locales: list[str] | None = Field(default=None, description="any of these locales, e.g. en-US")
    countries: list[str] | None = Field(default=None, description="any of these ISO country codes, e.g. US")

    @field_validator("segments")
    @classmethod
    def _known_segments(cls, values: list[str] | None) -> list[str] | None:
        unknown = sorted(set(values or ()) - set(SEGMENTS))
        if unknown:
            raise ValueError(f"unknown segment {', '.join(unknown)} (known: {', '.join(SEGMENTS)})")
        return values

    @model_validator(mode="after")
    def _ranges(self) -> Self:
        for low, high, what in ((self.days_past_due_min, self.days_past_due_max, "days_past_due"),
                                (self.balance_min, self.balance_max, "balance")):
            if low is not None and high is not None and high < low:
                raise ValueError(f"{what}: max {high:g} is below min {low:g}")
        return self


class AdhocCohort(BaseModel):
    """Exactly one of: a file of account ids (CSV or Parquet with an ``account_id`` column), a filter, a view."""

    model_config = ConfigDict(extra="forbid")
    file: str | None = Field(default=None, description="Path of a CSV or Parquet file with an account_id column.")
    filter: CohortFilter | None = Field(default=None, description="Accounts by days past due, balance, segment, "
                                                                  "product, locale or country.")
    view: str | None = Field(default=None, description="A database view named in adhoc_views (config/review.yaml).")

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        given = [name for name in ("file", "filter", "view") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of file, filter or view" + (f" (got {', '.join(given)})" if given else ""))
        return self

    def describe(self) -> str:
        if self.file:
            return f"file {Path(self.file).name}"
        if self.view:
            return f"view {self.view}"
        return "filter " + ", ".join(f"{k}={v}" for k, v in self.filter.model_dump(exclude_none=True).items())


def parse_cohort(text: str) -> AdhocCohort:
    """The CLI's ``--cohort``: a path (.csv, .parquet), ``view:NAME``, or a filter such as
    ``dpd=15..30,balance=100..,segment=chronic_late,locale=en-US``."""
    text = text.strip()
    if not text.strip(" ,"):
        raise AdhocError("--cohort is empty: give a file, view:NAME or a filter such as dpd=1..14 (an empty "
                         "cohort is not the whole portfolio)")
    if text.startswith("view:"):
        return AdhocCohort(view=text.removeprefix("view:"))
    if text.lower().endswith((".csv", ".parquet")):
        return AdhocCohort(file=text)
    fields: dict = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep:
            raise AdhocError(f"--cohort: {part!r} is not key=value (or a .csv/.parquet path, or view:NAME)")
        key = key.strip().lower()
        if key in ("dpd", "days_past_due", "balance"):
            low, dots, high = value.partition("..")
            name = "days_past_due" if key != "balance" else "balance"
            cast = int if name == "days_past_due" else float
            try:
                if low:
                    fields[f"{name}_min"] = cast(low)
                if high or not dots:
                    fields[f"{name}_max"] = cast(high or low)
            except ValueError:
                raise AdhocError(f"--cohort: {key}={value!r} is not a range like 15..30") from None
        elif key in ("segment", "product", "locale", "country"):
            fields.setdefault(f"{key}s" if key != "country" else "countries", []).extend(value.split("|"))
        else:
            raise AdhocError(f"--cohort: unknown filter {key!r} (dpd, balance, segment, product, locale, country)")
    return AdhocCohort(filter=CohortFilter(**fields))


def adhoc_rule(rule: StageRule) -> StageRule:
    """The stage's rule for an ad-hoc cohort: the cohort decides who is in, within the stage's own days past due
    (its exact days widened to the range from the first to the last): a stage's message is only true for the
    accounts the stage is about. Every other guard stays."""
    if rule.after_payment:
        raise AdhocError(f"stage {rule.stage.value} thanks accounts that paid; it takes no ad-hoc cohort")
    return rule.model_copy(update={"on_days_past_due": None, "days_past_due": rule.day_bounds})


def describe_days(bounds: DayRange) -> str:
    return f"{bounds.min}..{'' if bounds.max is None else bounds.max}"


def outside_stage_days(engine: Engine, ids: list[str], rule: StageRule, as_of: date) -> list[str]:
    """Those of ``ids`` (open accounts) whose days past due on ``as_of`` are outside the stage's own: an ad-hoc run
    leaves them out."""
    from campaigns.contact.cohorts import stage_days_condition
    from campaigns.db.engine import in_batches

    inside = adhoc_rule(rule)
    outside: list[str] = []
    with engine.connect() as conn:
        for part in in_batches(ids):
            outside.extend(conn.execute(select(Account.id).where(
                Account.id.in_(part), Account.status == "open",
                ~stage_days_condition(inside, as_of))).scalars())
    return sorted(outside)


def check_stage_days(engine: Engine, ids: list[str], rule: StageRule, as_of: date, what: str) -> list[str]:
    """The cohort's accounts outside the stage's days past due (left out of the run); all of them: one error."""
    outside = outside_stage_days(engine, ids, rule, as_of)
    if outside and len(outside) == len(ids):
        raise AdhocError(
            f"all {len(ids):,} account(s) of the cohort ({what}) are outside {rule.stage.value}'s days past due "
            f"({describe_days(rule.day_bounds)}) on {as_of}: its message would not be true for them. Choose the "
            "stage their days belong to, or a cohort within these days")
    return outside


def _file_ids(path: Path) -> dict[str, int]:
    """Each account id of the file with the row it is first on (the header is row 1, as in a spreadsheet)."""
    if not path.is_file():
        raise AdhocError(f"{path}: no such file")
    try:
        frame = (pd.read_parquet(path) if path.suffix.lower() == ".parquet"
                 else pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False))
    except Exception as exc:  # noqa: BLE001 - any unreadable file is this one error
        raise AdhocError(f"{path}: not a readable {path.suffix.lstrip('.').upper()} file ({type(exc).__name__})") from None
    if "account_id" not in frame.columns:
        raise AdhocError(f"{path}: no account_id column (columns: {', '.join(map(str, frame.columns[:8]))})")
    rows: dict[str, int] = {}
    for row, value in enumerate(frame["account_id"].astype("string").fillna("").str.strip(), start=2):
        if not value:
            raise AdhocError(f"{path}, row {row}, field account_id: empty")
        if len(value) > 64:
            raise AdhocError(f"{path}, row {row}, field account_id: longer than 64 characters")
        if not value.isprintable():  # a NUL or a control character: no account id has one (PostgreSQL refuses NUL)
            raise AdhocError(f"{path}, row {row}, field account_id: has a control character")
        rows.setdefault(value, row)
    return rows


def _filter_ids(engine: Engine, f: CohortFilter, as_of: date, ladder: Ladder) -> list[str]:
    clauses = [Account.status == "open"]
    if f.days_past_due_min is not None:
        clauses.append(Account.due_date <= as_of - timedelta(days=f.days_past_due_min))
    if f.days_past_due_max is not None:
        clauses.append(Account.due_date >= as_of - timedelta(days=f.days_past_due_max))
    if f.balance_min is not None:
        clauses.append(Account.balance >= f.balance_min)
    if f.balance_max is not None:
        clauses.append(Account.balance <= f.balance_max)
    if f.products:
        clauses.append(Account.product.in_(f.products))
    if f.locales:
        clauses.append(Customer.locale.in_(f.locales))
    if f.countries:
        clauses.append(Customer.country.in_([c.upper() for c in f.countries]))
    stmt = (select(Account.id.label("account_id"), Account.balance, Account.currency, Account.due_date)
            .join(Customer, Customer.id == Account.customer_id).where(and_(*clauses)).order_by(Account.id))
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(stmt).mappings().all(), columns=["account_id", "balance", "currency",
                                                                            "due_date"])
        if f.segments and not frame.empty:
            from campaigns.contact.segments import add_segments

            frame = add_segments(conn, frame, as_of, ladder.segments)
            frame = frame[frame["segment"].isin(f.segments)]
    return frame["account_id"].tolist()


def _view_ids(engine: Engine, name: str, allowed: list[str]) -> list[str]:
    if name not in allowed or not VIEW_NAME.match(name):
        raise AdhocError(f"view {name!r} is not in adhoc_views (allowed: {', '.join(allowed) or 'none'})")
    view = table(name, column("account_id"))
    try:
        with engine.connect() as conn:
            return list(dict.fromkeys(str(i) for i in conn.execute(select(view.c.account_id)).scalars()))
    except SQLAlchemyError as exc:
        raise AdhocError(f"view {name}: cannot be read as a table with an account_id column "
                         f"({type(exc.orig or exc).__name__})") from None


def id_chunks(ids: list[str], size: int) -> list[tuple[ChunkBounds, list[str]]]:
    """Sorted ids in chunks of at most ``size``, each with the id range it covers."""
    ids = sorted(ids)
    chunks, after = [], None
    for start in range(0, len(ids), size):
        part = ids[start:start + size]
        chunks.append((ChunkBounds(after=after, upto=part[-1]), part))
        after = part[-1]
    return chunks


def resolve_cohort(engine: Engine, cohort: AdhocCohort, as_of: date, ladder: Ladder,
                   allowed_views: list[str]) -> list[str]:
    """The cohort's account ids, sorted. A bad file, an unknown view, ids we do not know, or nobody at all:
    one ``AdhocError``, and the run sends nothing."""
    if cohort.file:
        rows_of = _file_ids(Path(cohort.file))
        ids = list(rows_of)
        with engine.connect() as conn:
            from campaigns.db.engine import in_batches

            known: set[str] = set()
            for part in in_batches(ids):
                known.update(conn.execute(select(Account.id).where(Account.id.in_(part))).scalars())
        unknown = [i for i in ids if i not in known]
        if unknown:
            rows = [rows_of[i] for i in unknown[:3]]
            raise AdhocError(f"{cohort.file}: {len(unknown)} account id(s) we do not know, e.g. row(s) "
                             f"{', '.join(map(str, rows))}, field account_id")
    elif cohort.view:
        ids = _view_ids(engine, cohort.view, allowed_views)
    else:
        ids = _filter_ids(engine, cohort.filter, as_of, ladder)
    if not ids:
        raise AdhocError(f"the cohort ({cohort.describe()}) is empty: nothing to run")
    return sorted(ids)


__all__ = ["AdhocCohort", "AdhocError", "CohortFilter", "adhoc_rule", "check_stage_days", "id_chunks",
           "outside_stage_days", "parse_cohort", "resolve_cohort"]
