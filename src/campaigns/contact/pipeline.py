"""One stage run, chunk by chunk: cohort → policy → strategy → render → enqueue → deliver.

These are the functions the Prefect tasks wrap. Each takes its collaborators as
arguments (engine, ladder, templates, gateways) so it runs the same under
Prefect, from a test, or from a notebook.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pandas as pd
from sqlalchemy import Engine, select

from campaigns.channels.agent import describe_tried
from campaigns.contact.cohorts import ChunkBounds, plan_chunks, select_cohort
from campaigns.db.models import AttemptStatus, Channel, ContactAttempt, Stage
from campaigns.contact.ladder import Ladder, StageRule
from campaigns.contact.outcomes import PlannedAttempt, Tally, attempt_row, enqueue_attempts, stage_cycle
from campaigns.money.plans import first_instalment_date, instalment_options
from campaigns.policy import DEFER, SUPPRESS, PolicyConfig, evaluate_release
from campaigns.policy.content import mentions_litigation
from campaigns.policy.inputs import contact_history, holds_column
from campaigns.contact.render import (
    MessageFacts,
    RenderError,
    TemplateLibrary,
    check_required_content,
    error_detail,
    format_day,
    format_money,
    plan_option_view,
)
from campaigns.contact.sms_length import sms_length
from campaigns.contact.strategy import PENDING, decide_contacts

GENTLE_VARIANT = "gentle"  # vulnerable customers get the gentle templates, whatever their experiment arm
SMS_OPT_OUT_KEYWORD = {"zh-CN": "TD"}  # China's carriers use 回复TD退订
DEFAULT_SMS_OPT_OUT_KEYWORD = "STOP"


@dataclass(frozen=True)
class Brand:
    """Lender-wide facts every message carries (from settings)."""

    lender_name: str
    pay_url: str
    email_preferences_url: str
    support_phone: str


@dataclass(frozen=True)
class StageRun:
    run_id: str
    stage: Stage
    as_of: date
    now: datetime

    def __post_init__(self):
        if self.now.tzinfo is None:
            raise ValueError("now must be timezone-aware")


@dataclass
class ChunkResult:
    cohort_size: int
    tally: Tally
    previews: list[dict[str, Any]]


def plan_stage_chunks(engine: Engine, ladder: Ladder, stage: Stage, as_of: date, chunk_size: int) -> list[ChunkBounds]:
    with engine.connect() as conn:
        return plan_chunks(conn, ladder.rule(stage), as_of, chunk_size)


def _recipient(row: Any, channel: str) -> str | None:
    # Push goes to the wallet's user, who is our customer: the id, not an address.
    return {"email": row.email, "sms": row.phone, "push": row.customer_id}.get(channel)


def message_context(row: Any, channel: str, rule: StageRule, run: StageRun, brand: Brand) -> tuple[dict, MessageFacts]:
    locale = row.locale or "en-US"
    amount = format_money(Decimal(row.amount_due), row.currency, locale)
    due = format_day(row.due_date, locale)
    pay_url = brand.pay_url.format(account_id=row.account_id)
    opt_out_url = brand.email_preferences_url.format(account_id=row.account_id)
    keyword = SMS_OPT_OUT_KEYWORD.get(locale, DEFAULT_SMS_OPT_OUT_KEYWORD)
    context = {
        "name": row.name or "",
        "lender": brand.lender_name,
        "amount": amount,
        "balance": format_money(Decimal(row.balance), row.currency, locale),
        "due_date": due,
        "days_past_due": int(row.days_past_due),
        "account_ref": str(row.account_id)[-4:],
        "pay_url": pay_url,
        "opt_out_url": opt_out_url,
        "opt_out_keyword": keyword,
        "support_phone": brand.support_phone,
        "plan_options": [],
    }
    if rule.instalment_counts:
        options = instalment_options(
            Decimal(row.balance), row.currency, rule.instalment_counts, first_instalment_date(run.as_of)
        )
        context["plan_options"] = [plan_option_view(o, locale) for o in options]
    facts = MessageFacts(amount=amount, due_date=due, pay_url=pay_url,
                         opt_out=keyword if channel == "sms" else opt_out_url)
    return context, facts


RECENT_TRIED = 10  # contacts listed on a worklist item; older ones are counted


def _attempts_so_far(engine: Engine, account_ids: list[str]) -> dict[str, dict[str, Any]]:
    """What was tried per account before escalation: how many attempts, and the latest with day and outcome."""
    if not account_ids:
        return {}
    a = ContactAttempt
    stmt = (
        select(a.account_id, a.as_of, a.stage, a.channel, a.status, a.reason)
        .where(a.account_id.in_(account_ids), a.stage != Stage.escalation.value)
        .order_by(a.account_id, a.as_of.desc(), a.id.desc())
    )
    tried: dict[str, dict[str, Any]] = {}
    with engine.connect() as conn:
        for r in conn.execute(stmt):
            entry = tried.setdefault(r.account_id, {"attempts": 0, "recent": []})
            entry["attempts"] += 1
            if len(entry["recent"]) < RECENT_TRIED:
                entry["recent"].append({"on": r.as_of.isoformat(), "stage": r.stage, "channel": r.channel,
                                        "outcome": f"{r.status} ({r.reason})" if r.reason else r.status})
    return tried


def compose_attempts(
    cohort: pd.DataFrame,
    decisions: pd.DataFrame,
    rule: StageRule,
    run: StageRun,
    templates: TemplateLibrary,
    brand: Brand,
    tried: dict[str, dict[str, int]] | None = None,
    sms_max_segments: int = 4,
) -> list[PlannedAttempt]:
    """Turn decisions into attempt rows, rendering a message for each one to be sent.

    An SMS is measured as the network will carry it (``sms_length``): its encoding
    and segment count go with the message, and one longer than ``sms_max_segments``
    fails (``sms_too_long``) rather than reach the customer in pieces.
    """
    accounts = {row.account_id: row for row in cohort.itertuples(index=False)}
    planned: list[PlannedAttempt] = []
    for decision in decisions.itertuples(index=False):
        row = accounts[decision.account_id]
        vulnerable = bool(getattr(row, "vulnerable", False))
        common = dict(
            run_id=run.run_id, account_id=row.account_id, customer_id=row.customer_id, stage=run.stage,
            cycle=stage_cycle(run.stage, run.as_of, row.due_date, rule.once_per_due_date),
            as_of=run.as_of, channel=decision.channel, now=run.now,
            variant=GENTLE_VARIANT if vulnerable else decision.variant,
            segment="vulnerable" if vulnerable else None,
        )
        if decision.status != PENDING:
            row_ = attempt_row(status=decision.status, reason=decision.reason, **common)
            row_["policy_trace"] = [{"at": run.now.isoformat(), "check": "enqueue", "decision": decision.status,
                                     **({"reason": decision.reason} if decision.reason else {}),
                                     "channels_tried": [c.value for c in rule.channels]}]
            planned.append(PlannedAttempt(row_))
            continue
        if decision.channel == Channel.agent.value:
            payload = {
                # A vulnerable customer goes to a specialist's review, not to routine escalation.
                "reason": "vulnerable_review" if vulnerable else "aged_debt",
                "days_past_due": int(row.days_past_due),
                "amount_due": str(row.amount_due),
                "currency": row.currency,
                "tried": (tried or {}).get(row.account_id, {}),
            }
            summary = f"Escalated at {payload['days_past_due']} days past due; tried: {describe_tried(payload['tried'])}"
            planned.append(PlannedAttempt(
                attempt_row(status=AttemptStatus.queued.value, **common),
                {"recipient": None, "subject": None, "body_text": summary, "body_html": None, "payload": payload},
            ))
            continue
        name = None
        try:
            name = templates.resolve(run.stage.value, decision.channel, row.locale, common["variant"])
            context, facts = message_context(row, decision.channel, rule, run, brand)
            content = templates.render(name, decision.channel, context)
            check_required_content(content, facts)
            if getattr(row, "time_barred", False) and mentions_litigation(
                    " ".join(filter(None, (content.subject, content.text, content.html)))):
                raise RenderError("time_barred_content", f"{name} mentions legal action; the debt is time-barred")
            extras = {}
            if decision.channel == Channel.push.value:
                extras = {"deep_link": facts.pay_url}
            if decision.channel == Channel.sms.value:
                extras = sms_length(content.text).as_payload()
                if extras["segments"] > sms_max_segments:
                    raise RenderError("sms_too_long", f"{name}: {extras['segments']} {extras['encoding']} segments, "
                                                      f"at most {sms_max_segments}")
        except RenderError as exc:
            planned.append(PlannedAttempt(attempt_row(
                status=AttemptStatus.failed.value, reason=exc.reason, detail=exc.detail[:500], **common
            )))
            continue
        except Exception as exc:  # noqa: BLE001 - e.g. a filter or an account value that breaks formatting
            planned.append(PlannedAttempt(attempt_row(
                status=AttemptStatus.failed.value, reason="template_error",
                detail=error_detail(name or f"{run.stage.value}/{decision.channel}", exc),
                **common)))
            continue
        planned.append(PlannedAttempt(
            attempt_row(status=AttemptStatus.queued.value, template=content.template,
                        template_version=content.template_version, **common),
            {"recipient": _recipient(row, decision.channel), "subject": content.subject,
             "body_text": content.text, "body_html": content.html, "payload": extras},
        ))
    return planned


def apply_release_policy(
    conn, planned: list[PlannedAttempt], cohort: pd.DataFrame, run: StageRun, policy: PolicyConfig
) -> None:
    """Decide each queued attempt now: it stays queued, is deferred until allowed, or is suppressed."""
    pending = [p for p in planned if p.row["status"] == AttemptStatus.queued.value]
    if not pending:
        return
    frame = pd.DataFrame({"account_id": [p.row["account_id"] for p in pending],
                          "channel": [p.row["channel"] for p in pending]})
    frame = frame.merge(cohort.drop(columns=["channel"], errors="ignore"), on="account_id", how="left")
    frame["holds"] = holds_column(conn, frame["customer_id"].tolist(), run.now)
    frame["created_at"] = run.now
    history = contact_history(conn, frame["account_id"].tolist(), run.now)
    decided = evaluate_release(frame, history, run.now, policy, check="enqueue")
    for p, d in zip(pending, decided.itertuples(index=False)):
        p.row["policy_trace"] = [d.trace]
        if d.decision == DEFER:
            p.row.update(status=AttemptStatus.deferred.value, reason=d.reason, release_after=d.release_after)
        elif d.decision == SUPPRESS:
            p.row.update(status=AttemptStatus.suppressed.value, reason=d.reason)
            p.message = None


def prepare_chunk(
    engine: Engine, ladder: Ladder, templates: TemplateLibrary, brand: Brand, run: StageRun, bounds: ChunkBounds,
    policy: PolicyConfig, accounts: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, list[PlannedAttempt]]:
    """Read one cohort chunk (only ``accounts`` of it, if given) and decide and render everything for it (no writes)."""
    rule = ladder.rule(run.stage)
    with engine.connect() as conn:
        cohort = select_cohort(conn, rule, run.as_of, bounds, accounts)
        cohort["holds"] = holds_column(conn, cohort["customer_id"].tolist(), run.now)
    decisions = decide_contacts(cohort, rule, ladder.experiment)
    tried = _attempts_so_far(engine, cohort["account_id"].tolist()) if Channel.agent in rule.channels else None
    planned = compose_attempts(cohort, decisions, rule, run, templates, brand, tried, policy.sms_max_segments)
    with engine.connect() as conn:
        apply_release_policy(conn, planned, cohort, run, policy)
    return cohort, planned


def enqueue_chunk(
    engine: Engine, ladder: Ladder, templates: TemplateLibrary, brand: Brand, run: StageRun, bounds: ChunkBounds,
    policy: PolicyConfig, accounts: Sequence[str] | None = None,
) -> ChunkResult:
    """Log every decision of one chunk in one transaction (idempotent)."""
    cohort, planned = prepare_chunk(engine, ladder, templates, brand, run, bounds, policy, accounts)
    with engine.begin() as conn:
        tally = enqueue_attempts(conn, planned)
    return ChunkResult(cohort_size=len(cohort), tally=tally, previews=[])


def preview_chunk(
    engine: Engine, ladder: Ladder, templates: TemplateLibrary, brand: Brand, run: StageRun,
    bounds: ChunkBounds, policy: PolicyConfig, max_previews: int = 3,
) -> ChunkResult:
    """A dry run of one chunk: what would be logged and sent, writing nothing."""
    cohort, planned = prepare_chunk(engine, ladder, templates, brand, run, bounds, policy)
    tally = Tally()
    previews = []
    for p in planned:
        status = p.row["status"]
        tally.add("would_send" if status == AttemptStatus.queued.value else status, p.row.get("reason"))
        if p.message is not None and len(previews) < max_previews:
            previews.append({"account_id": p.row["account_id"], "channel": p.row["channel"],
                             "template": p.row["template"], "subject": p.message["subject"],
                             "text": p.message["body_text"]})
    return ChunkResult(cohort_size=len(cohort), tally=tally, previews=previews)
