"""The data model. Money is Numeric, times are timezone-aware UTC.

``contact_attempts`` is the log the product is judged by: one row per intended
contact, whatever happened to it, with a unique idempotency key.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    false,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from campaigns.db.types import Money, UTCDateTime
from campaigns.sealing.seal import Sealed

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Stage(str, enum.Enum):
    pre_due = "pre_due"
    soft_nudge = "soft_nudge"
    plan_offer = "plan_offer"
    escalation = "escalation"
    thank_you = "thank_you"


class Channel(str, enum.Enum):
    email = "email"
    sms = "sms"
    push = "push"
    agent = "agent"
    call = "call"


class AttemptStatus(str, enum.Enum):
    queued = "queued"
    deferred = "deferred"
    sending = "sending"
    sent = "sent"
    suppressed = "suppressed"
    holdout = "holdout"
    failed = "failed"
    unknown = "unknown"
    delivered = "delivered"
    bounced = "bounced"


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Sealed at rest (campaigns.privacy); lengths are the plain values'. Looked up by their blind indexes only.
    name: Mapped[str | None] = mapped_column(Sealed("customers.name", 200))
    email: Mapped[str | None] = mapped_column(Sealed("customers.email", 320))
    phone: Mapped[str | None] = mapped_column(Sealed("customers.phone", 20), doc="E.164")
    email_index: Mapped[str | None] = mapped_column(String(64), index=True, doc="blind index of the email")
    phone_index: Mapped[str | None] = mapped_column(String(64), index=True, doc="blind index of the phone")
    anonymised_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, doc="when name, email and phone were removed (retention or erasure); blind indexes of "
                         "opted-out channels are kept")
    phone_zones: Mapped[str | None] = mapped_column(
        String(400), doc="IANA zones of the phone's area code, comma-separated ('' none), set with the phone at "
                         "import; NULL: derive them from the phone")
    locale: Mapped[str] = mapped_column(String(16), default="en-US")
    timezone: Mapped[str | None] = mapped_column(String(64), doc="IANA zone")
    country: Mapped[str | None] = mapped_column(String(2), doc="ISO 3166-1 alpha-2")
    email_opt_out: Mapped[bool] = mapped_column(Boolean, default=False)
    sms_opt_out: Mapped[bool] = mapped_column(Boolean, default=False)
    sms_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    email_is_employer: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    email_employer_consent: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false(),
        doc="the customer used this employer address with us, or agreed to it",
    )
    vulnerable: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    push_enabled: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false(), doc="uses the wallet app with notifications on"
    )
    push_opt_out: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    email_invalid: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false(), doc="the address hard-bounced: not used again"
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Account(Base):
    """An account and what it owes. The money columns are a cache of what its ledger derives
    (``campaigns.money.ledger.refresh`` is their only writer; ``campaigns ledger check`` recomputes them)."""

    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    balance: Mapped[Decimal] = mapped_column(Money, doc="derived: what is owed")
    amount_due: Mapped[Decimal] = mapped_column(Money, doc="derived: the part of it due now")
    due_date: Mapped[date] = mapped_column(Date, index=True, doc="derived: the latest statement's due date")
    status: Mapped[str] = mapped_column(String(16), default="open", doc="derived: open, paid, closed, placed")
    product: Mapped[str | None] = mapped_column(String(64))
    cease_contact: Mapped[bool] = mapped_column(Boolean, default=False)
    time_barred: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false(), doc="past the statute of limitations: no mention of suing"
    )
    credit: Mapped[Decimal] = mapped_column(
        Money, default=Decimal(0), server_default="0", doc="derived: paid beyond what is owed (refundable)"
    )
    paid_off_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, doc="derived: the moment of the event that last left nothing owed")
    payoff_seen_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, doc="derived: when that payoff was recorded (one thank-you per payoff)")
    plan_due_date: Mapped[date | None] = mapped_column(
        Date, doc="derived: the next unpaid instalment of the accepted plan (None: no plan in good standing)"
    )
    plan_amount_due: Mapped[Decimal | None] = mapped_column(Money, doc="derived: what is left of that instalment")
    figures: Mapped[str | None] = mapped_column(
        String(16), doc="derived: fingerprint of every figure a message can state (money.derivation.figures_digest)")
    statement_id: Mapped[int | None] = mapped_column(Integer, doc="derived: the ledger's latest statement")
    ledger_head: Mapped[int | None] = mapped_column(Integer, doc="derived: the newest ledger entry it reflects")
    placed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, doc="handed to a collection agency")
    placed_with: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


# Every derived money column of an account: written by the ledger's refresh only.
ACCOUNT_DERIVED = ("balance", "amount_due", "due_date", "status", "credit", "paid_off_at", "payoff_seen_at",
                   "plan_due_date", "plan_amount_due", "figures", "statement_id", "ledger_head")


class Payment(Base):
    """Money that came back. ``payment_id`` is the payer's or processor's id: a second import of it is a no-op.

    What it did to the account is the ledger's (its ``payment`` entry, and a ``reversal`` if it was undone).
    """

    __tablename__ = "payments"
    # Every lookup by account uses this one (revision 0014 dropped the account_id index it made redundant).
    __table_args__ = (Index("ix_payments_account_paid_at", "account_id", "paid_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    payment_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    paid_at: Mapped[datetime] = mapped_column(UTCDateTime)
    source: Mapped[str | None] = mapped_column(String(32))
    method: Mapped[str | None] = mapped_column(String(32))
    reference: Mapped[str | None] = mapped_column(String(64))
    recorded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LedgerEntry(Base):
    """One money event of an account, appended and never changed (``campaigns.money.derivation``)."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        Index("ix_ledger_entries_account_id_id", "account_id", "id"),
        # A payment has one payment entry and at most one reversal.
        Index("uq_ledger_entries_payment_id_kind", "payment_id", "kind", unique=True),
        CheckConstraint("kind IN ('statement', 'payment', 'reversal', 'refund', 'fee')", name="kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    kind: Mapped[str] = mapped_column(String(16), doc="statement, payment, reversal, refund, fee")
    entry_key: Mapped[str] = mapped_column(String(160), unique=True, doc="what makes it the same event: a repeat "
                                                                          "adds nothing")
    effective_at: Mapped[datetime] = mapped_column(UTCDateTime, doc="the money's moment: a statement's as-of, "
                                                                    "a payment's paid_at, a reversal's or refund's")
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[Decimal | None] = mapped_column(Money, doc="payment, reversal, refund, fee: positive")
    balance: Mapped[Decimal | None] = mapped_column(Money, doc="statement: the lender's balance")
    amount_due: Mapped[Decimal | None] = mapped_column(Money, doc="statement: the lender's amount due")
    due_date: Mapped[date | None] = mapped_column(Date, doc="statement: the lender's due date")
    lender_status: Mapped[str | None] = mapped_column(String(16), doc="statement: open or closed")
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"), doc="payment, reversal: the payment")
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("repayment_plans.id"), doc="fee: the plan it is for")
    reason: Mapped[str | None] = mapped_column(String(64), doc="a reversal's reason, a refund's reference (codes)")
    source: Mapped[str | None] = mapped_column(String(32), doc="import, cli, link, demo, migration")


class Dispute(Base):
    __tablename__ = "disputes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    source: Mapped[str | None] = mapped_column(String(32))


class RepaymentPlan(Base):
    """An instalment offer and, once accepted, the plan: offered → accepted → completed or broken (or expired)."""

    __tablename__ = "repayment_plans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    offer_key: Mapped[str | None] = mapped_column(
        String(100), unique=True, doc="account|campaign day: a re-run of the day stores the offer once"
    )
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), doc="offered, accepted, completed, broken, expired, withdrawn")
    instalments: Mapped[int] = mapped_column(Integer, doc="count of the accepted option (0 while offered)")
    total: Mapped[Decimal] = mapped_column(Money, doc="the balance the offer splits (plus any fee once accepted)")
    currency: Mapped[str] = mapped_column(String(3))
    schedule: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    options: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, doc="the offered options, as rendered")
    offered_on: Mapped[date | None] = mapped_column(Date, doc="the campaign day of the offer")
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    chosen_option: Mapped[int | None] = mapped_column(Integer, doc="1-based option number")
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    accepted_via: Mapped[str | None] = mapped_column(String(16), doc="cli or link")
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, doc="completed, broken, expired or withdrawn")
    close_reason: Mapped[str | None] = mapped_column(String(64))
    ledger_from: Mapped[int | None] = mapped_column(
        Integer, doc="the ledger's newest entry when it was accepted: payments recorded after it pay instalments")
    ledger_closed: Mapped[int | None] = mapped_column(
        Integer, doc="the ledger's newest entry when it was completed: a later reversal of its payment reopens it")


class PlanInstalment(Base):
    __tablename__ = "plan_instalments"
    __table_args__ = (Index("ix_plan_instalments_plan_seq", "plan_id", "seq", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("repayment_plans.id"))
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer, doc="1 for the first instalment")
    due_date: Mapped[date] = mapped_column(Date)
    amount: Mapped[Decimal] = mapped_column(Money, doc="as agreed (or as added)")
    paid: Mapped[Decimal] = mapped_column(Money, default=Decimal(0), doc="derived: what the plan's payments brought")
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime, doc="derived: when it was paid in full")
    waived: Mapped[Decimal] = mapped_column(
        Money, default=Decimal(0), server_default="0", doc="derived: taken off by a lower balance")
    added_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, doc="added to the plan after it was accepted (a higher balance); None: agreed")
    added_by: Mapped[int | None] = mapped_column(Integer, doc="the ledger entry after which it was added")


class PaymentPromise(Base):
    """A promise to pay: while open, the account is not nudged; kept or broken, it is kept for the review."""

    __tablename__ = "payment_promises"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    due_by: Mapped[date] = mapped_column(Date)
    channel: Mapped[str | None] = mapped_column(String(16), doc="where it was made: call, email, sms, web, agent")
    status: Mapped[str] = mapped_column(String(16), doc="open, kept, broken, cancelled")
    paid: Mapped[Decimal] = mapped_column(Money, default=Decimal(0),
                                          doc="derived: paid from the promise to the end of its day")
    promised_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    source: Mapped[str | None] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16), default="promise", server_default="promise",
                                      doc="promise, or deferral: the customer asked for more time on their page")


class CampaignRun(Base):
    __tablename__ = "campaign_runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    stage: Mapped[str] = mapped_column(String(16), index=True)
    as_of: Mapped[date] = mapped_column(Date, index=True)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime, doc="the run's 'now'")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), doc="running, completed, failed")
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    flow_run_id: Mapped[str | None] = mapped_column(String(36))
    cohort_size: Mapped[int] = mapped_column(Integer, default=0)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    name: Mapped[str | None] = mapped_column(String(128), doc="the Prefect flow run's name (e.g. an ad-hoc run's)")


IN_FLIGHT_STATUSES = text("status IN ('queued', 'deferred', 'sending')")


class ContactAttempt(Base):
    """One intended contact and what became of it.

    The stage writes about a million of these a day, so the table carries only what lookups need: the key, the
    idempotency key, an account's history (account, stage, day), the review's window (stage, created_at), a
    run's rows (run_id, delivered_by_run_id), and the rows still on their way (a partial index: settled rows,
    nearly all of them, cost it nothing). ``account_id`` and ``run_id`` have no foreign key (revision 0013):
    attempts are written only for accounts the stage has just read from ``accounts``, by the run it started
    first, and neither accounts nor runs are ever deleted; the check cost PostgreSQL 8 µs of the 18 µs a row.
    """

    __tablename__ = "contact_attempts"
    __table_args__ = (
        Index("ix_contact_attempts_account_stage_as_of", "account_id", "stage", "as_of"),
        Index("ix_contact_attempts_status_release_after", "status", "release_after",
              postgresql_where=IN_FLIGHT_STATUSES, sqlite_where=IN_FLIGHT_STATUSES),
        Index("ix_contact_attempts_stage_created", "stage", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(36), index=True)
    account_id: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[str] = mapped_column(String(64))
    stage: Mapped[str] = mapped_column(String(16))
    cycle: Mapped[str] = mapped_column(String(64), doc="which occurrence of the stage this is")
    as_of: Mapped[date] = mapped_column(Date)
    channel: Mapped[str] = mapped_column(String(8))
    template: Mapped[str | None] = mapped_column(String(128), doc="path relative to templates/")
    template_version: Mapped[str | None] = mapped_column(String(16), doc="content hash")
    variant: Mapped[str | None] = mapped_column(String(32), doc="the experiment arm ('holdout' for the holdout); "
                                                              "None: suppressed before assignment")
    segment: Mapped[str | None] = mapped_column(String(32))
    experiment: Mapped[str | None] = mapped_column(String(64), doc="the experiment the account was assigned in")
    tone: Mapped[str | None] = mapped_column(String(32), doc="the template variant chosen (segment or arm)")
    amount_due: Mapped[Decimal | None] = mapped_column(Money, doc="what was due when the account was assigned")
    days_past_due: Mapped[int | None] = mapped_column(Integer, doc="days past due when the account was assigned")
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(48))
    detail: Mapped[str | None] = mapped_column(Text, doc="error detail, never personal data")
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    provider_message_id: Mapped[str | None] = mapped_column(String(128))
    delivered_by_run_id: Mapped[str | None] = mapped_column(
        String(36), index=True, doc="the run that handed it to the channel (a re-run may deliver a backlog)"
    )
    release_after: Mapped[datetime | None] = mapped_column(
        UTCDateTime, doc="deferred: the earliest moment the compliance rules allow it"
    )
    outcome: Mapped[str | None] = mapped_column(String(24), doc="calls: connected, no_answer, voicemail")
    claimed_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, doc="wall-clock time a deliverer claimed it (``sending``): a stale claim is a crashed run's"
    )
    policy_trace: Mapped[list[dict[str, Any]] | None] = mapped_column(
        JSON, doc="each compliance decision on this attempt and its inputs (no personal data)"
    )
    figures: Mapped[str | None] = mapped_column(
        String(16), doc="the account's figures fingerprint its message was rendered with: another one at release "
                        "means the message states figures the ledger no longer holds (not sent)")


class Hold(Base):
    """Something that stops all collection contact with a customer while it is open."""

    __tablename__ = "holds"
    __table_args__ = (Index("ix_holds_customer_open", "customer_id", "cleared_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    kind: Mapped[str] = mapped_column(String(32))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime, doc="e.g. the end of a UK breathing space")
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    source: Mapped[str | None] = mapped_column(String(32))


class OptOutEvent(Base):
    """Every opt-out we received, from where, so that it can be proven later."""

    __tablename__ = "opt_out_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    channel: Mapped[str] = mapped_column(String(8))
    source: Mapped[str] = mapped_column(String(32), doc="cli, inbound_sms, provider_event, import (the lender's file), import_carried (another record "
                                              "of the same address opted out)")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    keyword: Mapped[str | None] = mapped_column(String(32), doc="the matched keyword, never the message")


class PersonalDataAccess(Base):
    """Who saw, exported, erased or retired personal data, when and why: the access log (never the data)."""

    __tablename__ = "personal_data_access"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(128), doc="who: the operator's name, or the flow")
    action: Mapped[str] = mapped_column(String(16), doc="reveal, reveal_preview, export, erase, retention")
    customer_id: Mapped[str | None] = mapped_column(String(64), index=True)
    account_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Sealed("access.reason", 500), doc="why, as the operator gave it")
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, doc="what was shown, written or removed")


class ProviderEvent(Base):
    """A delivery event from a provider (delivered, bounce, open, unsubscribe, ...), kept once."""

    __tablename__ = "provider_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str] = mapped_column(String(128), unique=True, doc="the provider's id: redeliveries collide")
    attempt_id: Mapped[int | None] = mapped_column(ForeignKey("contact_attempts.id"), index=True)
    event: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    detail: Mapped[str | None] = mapped_column(String(64), doc="e.g. bounce type; never an address")
    message_id: Mapped[str | None] = mapped_column(String(128), doc="the provider's message id")


class ProviderEventProblem(Base):
    """A provider event we could not take as it was, and why: so a bad event costs only itself, visibly.

    ``outcome`` is ``rejected`` (not applied) or ``salvaged`` (an opt-out applied
    despite a bad field: an unsubscribe is never lost). The event itself is not
    kept: it carries an address. ``problem`` names fields and error codes only.
    """

    __tablename__ = "provider_event_problems"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    position: Mapped[int | None] = mapped_column(Integer, doc="index of the event in its batch")
    event_id: Mapped[str | None] = mapped_column(String(128), doc="the provider's event id, when it was readable")
    event: Mapped[str | None] = mapped_column(String(32), doc="the event kind, when it was a known one")
    problem: Mapped[str] = mapped_column(String(300), doc="fields and error codes, never values")
    outcome: Mapped[str] = mapped_column(String(16), doc="rejected or salvaged")


class RenderedMessage(Base):
    """What we rendered for an attempt: kept so any contact can be shown later.

    Sealed at rest; the outbox's copy is sealed for the same fields (``message.*``), so the database copies
    one into the other without the bodies passing through Python.
    """

    __tablename__ = "rendered_messages"

    # No foreign key (revision 0013): written in the transaction that writes its attempt, with that attempt's id.
    attempt_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    recipient: Mapped[str | None] = mapped_column(Sealed("message.recipient", 320))
    subject: Mapped[str | None] = mapped_column(Sealed("message.subject", 300))
    body_text: Mapped[str | None] = mapped_column(Sealed("message.body_text"), doc="NULL once reduced")
    body_html: Mapped[str | None] = mapped_column(Sealed("message.body_html"))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, doc="channel extras")
    # Retention (campaigns.privacy.retention) reduces an old message to the hash of what was sent.
    content_sha256: Mapped[str | None] = mapped_column(
        String(64), doc="SHA-256 of recipient, subject and bodies (JSON), kept when the message was reduced")
    reduced_at: Mapped[datetime | None] = mapped_column(UTCDateTime, doc="when the content was removed")


class OutboxMessage(Base):
    """The outbox channel: a message stored instead of sent."""

    __tablename__ = "outbox_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # No foreign key (revision 0013): written in the transaction that logs its attempt sent, with that attempt's id.
    attempt_id: Mapped[int] = mapped_column(Integer, unique=True)
    channel: Mapped[str] = mapped_column(String(8))
    recipient: Mapped[str | None] = mapped_column(Sealed("message.recipient", 320))
    subject: Mapped[str | None] = mapped_column(Sealed("message.subject", 300))
    body_text: Mapped[str] = mapped_column(Sealed("message.body_text"))
    body_html: Mapped[str | None] = mapped_column(Sealed("message.body_html"))
    accepted_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CustomerAction(Base):
    """What a customer did or said to us (their page, a reply): one row each, once, with its code.

    ``action``: stated_reason, asked_for_time, asked_for_call, disputed, stopped_channel, rated, chose_plan,
    replied. ``code``: what it was (the reason, the channel, the score, ...); ``detail``: dates and codes only;
    ``note``: what they wrote, sealed. ``request_key`` makes it once: the page form's own key, or the provider's
    message id, so a form sent twice or a reply delivered twice is recorded once.
    """

    __tablename__ = "customer_actions"
    __table_args__ = (Index("ix_customer_actions_account_action", "account_id", "action", "occurred_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id"), doc="None: a reply we could not "
                                                                                  "tie to one account")
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id"), index=True)
    action: Mapped[str] = mapped_column(String(24))
    code: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    note: Mapped[str | None] = mapped_column(Sealed("customer_actions.note", 4000))
    source: Mapped[str] = mapped_column(String(16), doc="page, sms, email, agent")
    request_key: Mapped[str] = mapped_column(String(128), unique=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AgentWorklistItem(Base):
    """An account handed to people: why, and what was tried (an escalation attempt), or what the customer asked
    for (a call back in their window, a reply: ``action_id``)."""

    __tablename__ = "agent_worklist"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    attempt_id: Mapped[int | None] = mapped_column(ForeignKey("contact_attempts.id"), unique=True)
    action_id: Mapped[int | None] = mapped_column(ForeignKey("customer_actions.id"), unique=True)
    call_from: Mapped[datetime | None] = mapped_column(UTCDateTime, doc="asked_for_call: the window the customer "
                                                                        "chose, in UTC")
    call_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    reason: Mapped[str] = mapped_column(String(64))
    days_past_due: Mapped[int] = mapped_column(Integer)
    amount_due: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    tried: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="open", doc="open, done, placed")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(String(24), doc="the agent's last outcome")
    outcome_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AgencyFeed(Base):
    """A file of what happened to placed accounts' money (payments, reversals, payoffs) sent to the agency."""

    __tablename__ = "agency_feeds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agency: Mapped[str] = mapped_column(String(64))
    written_at: Mapped[datetime] = mapped_column(UTCDateTime)
    file: Mapped[str] = mapped_column(String(255), doc="the file's name in the agency directory")
    rows: Mapped[int] = mapped_column(Integer)
    through_entry_id: Mapped[int] = mapped_column(Integer, doc="the newest ledger entry it reports")


class RiskModel(Base):
    """A trained risk model: its window, metrics and parameters as JSON (scored with numpy, never unpickled)."""

    __tablename__ = "risk_models"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    trained_at: Mapped[datetime] = mapped_column(UTCDateTime)
    window_start: Mapped[date] = mapped_column(Date)
    window_end: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), doc="ready, or insufficient (too little history: not used)")
    units: Mapped[int] = mapped_column(Integer)
    cured: Mapped[int] = mapped_column(Integer)
    auc: Mapped[float | None] = mapped_column(Float, doc="on the latest quarter of the window, held out")
    brier: Mapped[float | None] = mapped_column(Float)
    calibration: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, doc="per decile: predicted, observed")
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON, doc="scaler, categories, coefficients")
    note: Mapped[str | None] = mapped_column(Text)


class UpliftModel(Base):
    """A trained uplift model (``campaigns.risk.uplift``): its window, Qini curve and the two fitted models as JSON
    (scored with numpy, never unpickled)."""

    __tablename__ = "uplift_models"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    trained_at: Mapped[datetime] = mapped_column(UTCDateTime)
    window_start: Mapped[date] = mapped_column(Date)
    window_end: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), doc="ready, or insufficient (too little history: not used)")
    contacted: Mapped[int] = mapped_column(Integer, doc="contacted arms' assignments it learned from")
    held_out: Mapped[int] = mapped_column(Integer, doc="the holdout's")
    qini: Mapped[float | None] = mapped_column(Float, doc="area between its Qini curve and random targeting, "
                                                          "on the latest quarter of the window, held out")
    curve: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, doc="share contacted -> extra cures, model "
                                                                       "and random")
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON, doc="the contacted and held-out models, quantiles")
    note: Mapped[str | None] = mapped_column(Text)
