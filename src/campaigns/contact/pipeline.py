"""One stage run, chunk by chunk: cohort → policy → strategy → render → enqueue → deliver.

These are the functions the Prefect tasks wrap. Each takes its collaborators as
arguments (engine, ladder, templates, gateways) so it runs the same under
Prefect, from a test, or from a notebook.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from campaigns.channels.agent import describe_tried
from campaigns.contact.cohorts import ChunkBounds, due_ids, logged_today, plan_chunks, select_cohort
from campaigns.frames import records
from campaigns.db.bulk import taken_keys
from campaigns.db.models import AttemptStatus, Channel, ContactAttempt, Stage
from campaigns.ladder.config import Ladder, StageRule
from campaigns.attempts.log import (PlannedAttempt, Tally, attempt_row, enqueue_attempts, idempotency_key,
                                    stage_cycle)
from campaigns.policy import DEFER, RELEASE, SUPPRESS, PolicyConfig, evaluate_release
from campaigns.policy.release import plausible_zone_column
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
from campaigns.money.currency import in_currency
from campaigns.money.offers import store_offers
from campaigns.contact.segments import add_segments
from campaigns.contact.brand import Brand
from campaigns.contact.escalation import attempts_so_far, escalation_reason
from campaigns.contact.plan_offers import Offer, make_offer
from campaigns.contact.strategy import PENDING, SEND_HOUR, decide_contacts, send_hour_release

SMS_OPT_OUT_KEYWORD = {"zh-CN": "TD"}  # China's carriers use 回复TD退订
DEFAULT_SMS_OPT_OUT_KEYWORD = "STOP"


@dataclass(frozen=True)
class StageRun:
    run_id: str
    stage: Stage
    as_of: date
    now: datetime
    adhoc: bool = False  # the accounts given replace the stage's day selector (contact.adhoc)

    def __post_init__(self):
        if self.now.tzinfo is None:
            raise ValueError("now must be timezone-aware")


@dataclass
class ChunkResult:
    cohort_size: int
    tally: Tally
    previews: list[dict[str, Any]]
    # What the chunk's delivery takes, without searching: its new attempts queued for a provider, and any an
    # earlier run of the day left due in its bounds. Empty: nothing to deliver (the rest was written final).
    queued_ids: list[int] | None = None


def plan_stage_chunks(engine: Engine, ladder: Ladder, stage: Stage, as_of: date, chunk_size: int,
                      unlogged_only: bool = False) -> list[ChunkBounds]:
    """The stage's cohort on ``as_of`` in id ranges of at most ``chunk_size`` accounts (``unlogged_only``: of
    accounts this stage has not logged that day yet; ``recorded_beyond`` accounts for the rest)."""
    with engine.connect() as conn:
        return plan_chunks(conn, ladder.rule(stage), as_of, chunk_size, unlogged_only=unlogged_only)


def recorded_beyond(engine: Engine, run: StageRun, chunks: Sequence[ChunkBounds]) -> tuple[ChunkBounds, ChunkResult]:
    """What this stage logged on the run's day beyond the last of ``chunks`` (all of it, with no chunks): a
    re-run plans only accounts not logged yet (``plan_stage_chunks(unlogged_only=True)``), and the rest was
    decided once already. Counted as the chunks count theirs (cohort size and ``already_recorded``), with what an
    earlier run that stopped left due there (``queued_ids``, for this run's delivery)."""
    bounds = ChunkBounds(after=chunks[-1].upto if chunks else None, upto=None)
    with engine.connect() as conn:
        attempts, accounts = logged_today(conn, run.stage, run.as_of, bounds)
        left = _left_due(conn, run, bounds) if attempts else []
    tally = Tally()
    tally.add("already_recorded", n=attempts)
    return bounds, ChunkResult(cohort_size=accounts, tally=tally, previews=[], queued_ids=left)


def _left_due(conn, run: StageRun, bounds: ChunkBounds) -> list[int]:
    """What an earlier run of the day that stopped left due in ``bounds``: this run's delivery takes it too."""
    return due_ids(conn, run.now, stage=run.stage.value, as_of=run.as_of, bounds=bounds)


def _recipient(row: Any, channel: str) -> str | None:
    # Push goes to the wallet's user, who is our customer: the id, not an address.
    return {"email": row.email, "sms": row.phone, "push": row.customer_id}.get(channel)


def message_context(row: Any, channel: str, rule: StageRule, run: StageRun, brand: Brand,
                    offer: Offer | None = None) -> tuple[dict, MessageFacts]:
    """What a template is given, and the facts the rendered message must state.

    The thank-you (a stage after payment) states no amount, date or pay link: it
    asks for nothing. Every message still says how to opt out.
    """
    locale = row.locale or "en-US"
    amount = format_money(Decimal(row.amount_due), row.currency, locale)
    due = format_day(row.due_date, locale)
    # Every message links the customer's own page (pay, plan, more time, help); the lender's payment page without one.
    page_url = brand.page_link(row.account_id, run.as_of) or ""
    pay_url = page_url or brand.payment_page(row.account_id, in_currency(Decimal(row.amount_due), row.currency))
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
        "page_url": page_url,
        "opt_out_url": opt_out_url,
        "opt_out_keyword": keyword,
        "support_phone": brand.support_phone,
        "plan_options": [],
        "plan_url": pay_url,
        "plan_expires": "",
        "in_plan": bool(getattr(row, "in_plan", False)),
        "credit": "",
    }
    if offer is None and rule.plans is not None:
        offer = make_offer(row, rule, run.as_of, brand)
    if offer is not None:
        views = []
        for number, option in enumerate(offer.options, start=1):
            view = plan_option_view(option, locale)
            view["number"] = number
            view["every"] = rule.plans.frequency if rule.plans else "monthly"
            view["accept_url"] = brand.plan_link(row.account_id, offer.offered_on, number, offer.expires_at) or pay_url
            views.append(view)
        context["plan_options"] = views
        context["plan_url"] = brand.plan_link(row.account_id, offer.offered_on, 0, offer.expires_at) or pay_url
        context["plan_expires"] = format_day((offer.expires_at - timedelta(days=1)).date(), locale)
    opt_out = keyword if channel == "sms" else opt_out_url
    if rule.after_payment:
        credit = Decimal(getattr(row, "credit", 0) or 0)
        context["credit"] = format_money(credit, row.currency, locale) if credit > 0 else ""
        return context, MessageFacts(amount="", due_date="", pay_url="", opt_out=opt_out)
    facts = MessageFacts(amount=amount, due_date=due, pay_url=pay_url, opt_out=opt_out)
    return context, facts


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
    accounts = {row.account_id: row for row in records(cohort)}
    planned: list[PlannedAttempt] = []
    for decision in records(decisions):
        row = accounts[decision.account_id]
        vulnerable = bool(getattr(row, "vulnerable", False))
        assigned = decision.variant is not None
        segment = "vulnerable" if vulnerable else getattr(row, "segment", None)
        common = dict(
            run_id=run.run_id, account_id=row.account_id, customer_id=row.customer_id, stage=run.stage,
            cycle=stage_cycle(run.stage, run.as_of, row.due_date, rule.once_per_due_date),
            as_of=run.as_of, channel=decision.channel, now=run.now,
            variant=decision.variant, segment=segment,
            experiment=decision.experiment, tone=decision.tone,
            amount_due=Decimal(row.amount_due) if assigned else None,
            days_past_due=int(row.days_past_due) if assigned else None,
            figures=getattr(row, "figures", None),
        )
        # Why this account got this arm, tone and channel: the strategy's part of the decision trace.
        strategy = {"at": run.now.isoformat(), "check": "strategy", "segment": segment,
                    "why": getattr(row, "segment_why", None),
                    **({"pay_chance": round(float(row.pay_chance), 3), "pay_reasons": row.pay_reasons}
                       if getattr(row, "pay_chance", None) is not None and not pd.isna(row.pay_chance) else {}),
                    **({"predicted_uplift": round(float(row.predicted_uplift), 4),
                        "uplift_model": int(row.uplift_model)}
                       if getattr(row, "predicted_uplift", None) is not None and not pd.isna(row.predicted_uplift)
                       else {}),
                    "experiment": decision.experiment,
                    "arm": decision.variant, "tone": decision.tone, "channels": decision.channels.split(","),
                    **({"send_hour": int(decision.send_hour)} if decision.send_hour is not None else {})}
        if decision.status != PENDING:
            row_ = attempt_row(status=decision.status, reason=decision.reason, **common)
            row_["policy_trace"] = ([strategy] if assigned else []) + [
                {"at": run.now.isoformat(), "check": "enqueue", "decision": decision.status,
                 **({"reason": decision.reason} if decision.reason else {}),
                 "channels_tried": decision.channels.split(",")}]
            planned.append(PlannedAttempt(row_))
            continue
        if decision.channel == Channel.agent.value:
            payload = {
                # A vulnerable customer goes to a specialist's review, not to routine escalation.
                "reason": escalation_reason((tried or {}).get(row.account_id, {}), vulnerable),
                "days_past_due": int(row.days_past_due),
                "amount_due": str(row.amount_due),
                "currency": row.currency,
                "tried": (tried or {}).get(row.account_id, {}),
            }
            summary = f"Escalated at {payload['days_past_due']} days past due; tried: {describe_tried(payload['tried'])}"
            planned.append(PlannedAttempt(
                attempt_row(status=AttemptStatus.queued.value, policy_trace=[strategy], **common),
                {"recipient": None, "subject": None, "body_text": summary, "body_html": None, "payload": payload},
            ))
            continue
        name = None
        offer = None
        try:
            name = templates.resolve(run.stage.value, decision.channel, row.locale, decision.tone)
            offer = make_offer(row, rule, run.as_of, brand)
            context, facts = message_context(row, decision.channel, rule, run, brand, offer)
            content = templates.render(name, decision.channel, context)
            check_required_content(content, facts)
            if rule.says_overdue and int(row.days_past_due) < 1:  # never "we haven't received" before it is due
                raise RenderError("not_past_due", f"{name} says the payment is late; the account is "
                                                  f"{int(row.days_past_due)} days past due")
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
                status=AttemptStatus.failed.value, reason=exc.reason, detail=exc.detail[:500],
                policy_trace=[strategy], **common)))
            continue
        except Exception as exc:  # noqa: BLE001 - e.g. a filter or an account value that breaks formatting
            planned.append(PlannedAttempt(attempt_row(
                status=AttemptStatus.failed.value, reason="template_error",
                detail=error_detail(name or f"{run.stage.value}/{decision.channel}", exc),
                policy_trace=[strategy], **common)))
            continue
        planned.append(PlannedAttempt(
            attempt_row(status=AttemptStatus.queued.value, template=content.template,
                        template_version=content.template_version, policy_trace=[strategy], **common),
            {"recipient": _recipient(row, decision.channel), "subject": content.subject,
             "body_text": content.text, "body_html": content.html, "payload": extras},
            offer=offer.as_row(row.account_id, row.currency, run.now) if offer else None,
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
    if "holds" not in frame:  # prepare_chunk read them with the cohort, moments ago
        frame["holds"] = holds_column(conn, frame["customer_id"].tolist(), run.now)
    frame["created_at"] = run.now
    history = contact_history(conn, frame["account_id"].tolist(), run.now)
    decided = evaluate_release(frame, history, run.now, policy, check="enqueue")
    zones = plausible_zone_column(frame)
    for p, d, zone_set in zip(pending, records(decided), zones):
        p.row["policy_trace"] = (p.row.get("policy_trace") or []) + [d.trace]
        hour = next((t.get("send_hour") for t in p.row["policy_trace"] if t.get("check") == "strategy"), None)
        later = send_hour_release(zone_set, run.now, hour) if hour is not None and d.decision == RELEASE else None
        if later is not None:  # the arm sends later in the customer's day; the dispatcher re-checks everything then
            p.row.update(status=AttemptStatus.deferred.value, reason=SEND_HOUR, release_after=later)
            p.row["policy_trace"][-1] = {**d.trace, "decision": DEFER, "reason": SEND_HOUR,
                                         "release_after": later.isoformat()}
        elif d.decision == DEFER:
            p.row.update(status=AttemptStatus.deferred.value, reason=d.reason, release_after=d.release_after)
        elif d.decision == SUPPRESS:
            p.row.update(status=AttemptStatus.suppressed.value, reason=d.reason)
            p.message = None


def add_risk_scores(conn, cohort: pd.DataFrame, run: StageRun) -> pd.DataFrame:
    """The cohort with ``pay_chance`` and ``pay_reasons`` from the newest ready risk model (none: left as is)."""
    from campaigns.risk.model import account_features, latest_ready, score

    model = latest_ready(conn)
    if model is None or "rates" not in model:
        return cohort
    scored = score(model, account_features(conn, cohort, model, run.now, run.stage.value))
    return cohort.assign(pay_chance=scored["pay_chance"].to_numpy(), pay_reasons=scored["pay_reasons"].to_numpy())


def add_uplift_scores(conn, cohort: pd.DataFrame, run: StageRun, experiment) -> tuple[pd.DataFrame, dict | None]:
    """The cohort with ``predicted_uplift`` (and the model's version) from the newest ready uplift model, and each
    targeting arm's threshold; without a ready model, the cohort as is and None: every arm contacts everyone."""
    from campaigns.risk.model import account_features
    from campaigns.risk.uplift import latest_ready, predict_uplift, threshold

    model = latest_ready(conn)
    if model is None or "rates" not in model:
        return cohort, None
    x = account_features(conn, cohort, model, run.now, run.stage.value)
    thresholds = {arm.name: threshold(model, arm.targeting) for arm in experiment.arms if arm.targeting}
    return cohort.assign(predicted_uplift=predict_uplift(model, x), uplift_model=model["version"]), thresholds


def prepare_chunk(
    engine: Engine, ladder: Ladder, templates: TemplateLibrary, brand: Brand, run: StageRun, bounds: ChunkBounds,
    policy: PolicyConfig, accounts: Sequence[str] | None = None, skip_recorded: bool = False,
) -> tuple[pd.DataFrame, list[PlannedAttempt], tuple[int, int]]:
    """Read one cohort chunk (only ``accounts`` of it, if given) and decide and render everything for it (no
    writes). With ``skip_recorded``, what is in the log already is decided once only: accounts this stage logged
    today are not read again (``logged_today`` counts them; a re-run of the day costs one query a chunk), and
    of ``accounts`` given (ad hoc, a fallback), decisions whose idempotency key is taken are neither rendered
    nor checked. Returns the cohort, the planned attempts, and (attempts, accounts) already recorded."""
    rule = ladder.rule(run.stage)
    if run.adhoc:
        from campaigns.contact.adhoc import adhoc_rule

        rule = adhoc_rule(rule)
    by_account = skip_recorded and accounts is None
    recorded_accounts = 0
    with engine.connect() as conn:
        cohort = select_cohort(conn, rule, run.as_of, bounds, accounts, unlogged_only=by_account)
        recorded = 0
        if by_account:  # read after the cohort: an account a concurrent run logged in between is counted once
            recorded, recorded_accounts = logged_today(conn, run.stage, run.as_of, bounds,
                                                       besides=cohort["account_id"].tolist())
        cohort["holds"] = holds_column(conn, cohort["customer_id"].tolist(), run.now)
        cohort = add_segments(conn, cohort, run.as_of, ladder.segments)
        if ladder.segments.risk_tone is not None and not cohort.empty:
            cohort = add_risk_scores(conn, cohort, run)
        experiment = ladder.experiment_for(run.stage, run.as_of)
        targeting = None
        if any(arm.targeting for arm in experiment.arms) and not cohort.empty:
            cohort, targeting = add_uplift_scores(conn, cohort, run, experiment)
    decisions = decide_contacts(cohort, rule, experiment, ladder.segments, targeting)
    if skip_recorded and not by_account and not decisions.empty:  # accounts given: some may be logged already
        decisions, taken = _without_recorded(engine, decisions, cohort, rule, run)
        recorded += taken
    tried = attempts_so_far(engine, cohort["account_id"].tolist()) if Channel.agent in rule.channels else None
    planned = compose_attempts(cohort, decisions, rule, run, templates, brand, tried, policy.sms_max_segments)
    with engine.connect() as conn:
        apply_release_policy(conn, planned, cohort, run, policy)
    return cohort, planned, (recorded, recorded_accounts)


def _without_recorded(engine: Engine, decisions: pd.DataFrame, cohort: pd.DataFrame, rule: StageRule,
                      run: StageRun) -> tuple[pd.DataFrame, int]:
    """The decisions whose idempotency key is still free (one lookup for the chunk), and how many were not."""
    due = dict(zip(cohort["account_id"], cohort["due_date"]))
    keys = [idempotency_key(account_id, run.stage, stage_cycle(run.stage, run.as_of, due[account_id],
                                                               rule.once_per_due_date), channel)
            for account_id, channel in zip(decisions["account_id"], decisions["channel"])]
    with engine.connect() as conn:
        taken = taken_keys(conn, ContactAttempt.__table__, "idempotency_key", keys)
    if not taken:
        return decisions, 0
    free = [key not in taken for key in keys]
    return decisions[free].reset_index(drop=True), len(keys) - sum(free)


def enqueue_chunk(
    engine: Engine, ladder: Ladder, templates: TemplateLibrary, brand: Brand, run: StageRun, bounds: ChunkBounds,
    policy: PolicyConfig, accounts: Sequence[str] | None = None, stores: Mapping[str, Any] | None = None,
) -> ChunkResult:
    """Decide once and write once: log every decision of one chunk in one transaction (idempotent).

    What is final now is written final: suppressed, held out, deferred, failed to render, and ``sent`` on a
    channel of ``stores`` (a table of this database, ``channels.base.stored_in``), its message stored there
    in the same transaction. What remains for a provider is ``queued``; ``queued_ids`` says which (with
    any left due by an earlier run of the day in the chunk), and is empty when there is nothing to deliver.
    """
    cohort, planned, (recorded, recorded_accounts) = prepare_chunk(
        engine, ladder, templates, brand, run, bounds, policy, accounts, skip_recorded=True)
    with engine.begin() as conn:
        tally, queued = enqueue_attempts(conn, planned, stores)
        store_offers(conn, [p.offer for p in planned if p.offer and p.message is not None], run.as_of)
    tally.add("already_recorded", n=recorded)
    if tally.total("already_recorded"):
        with engine.connect() as conn:
            queued = sorted(set(queued) | set(_left_due(conn, run, bounds)))
    return ChunkResult(cohort_size=len(cohort) + recorded_accounts, tally=tally, previews=[], queued_ids=queued)


def preview_chunk(
    engine: Engine, ladder: Ladder, templates: TemplateLibrary, brand: Brand, run: StageRun,
    bounds: ChunkBounds, policy: PolicyConfig, max_previews: int = 3, accounts: Sequence[str] | None = None,
) -> ChunkResult:
    """A dry run of one chunk: what would be logged and sent, writing nothing. Its samples show the customer's
    name masked: they travel as task results and are printed on a terminal."""
    from campaigns.privacy.subject import mask_name_in

    cohort, planned, _ = prepare_chunk(engine, ladder, templates, brand, run, bounds, policy, accounts)
    names = dict(zip(cohort["account_id"], cohort["name"])) if "name" in cohort.columns else {}
    tally = Tally()
    previews = []
    for p in planned:
        status = p.row["status"]
        tally.add("would_send" if status == AttemptStatus.queued.value else status, p.row.get("reason"))
        if p.message is not None and len(previews) < max_previews:
            name = names.get(p.row["account_id"])
            previews.append({"account_id": p.row["account_id"], "channel": p.row["channel"],
                             "template": p.row["template"], "subject": mask_name_in(p.message["subject"], name),
                             "text": mask_name_in(p.message["body_text"], name)})
    return ChunkResult(cohort_size=len(cohort), tally=tally, previews=previews)
