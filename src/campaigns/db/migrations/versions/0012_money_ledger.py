"""Money as a ledger: statements, payments, reversals, refunds and fees, appended; figures derived from them

``ledger_entries`` holds every money event of an account. The account's money columns become a cache of
what the ledger derives (``figures``, ``statement_id``, ``ledger_head``, ``payoff_seen_at`` added); a
plan remembers from which entry its payments count (``ledger_from``, ``ledger_closed``) and its
instalments what a lower balance took off them (``waived``) or added (``added_at``, ``added_by``); an
attempt keeps the figures its message was rendered with (``contact_attempts.figures``); ``agency_feeds``
records what was reported to the agency. ``payments.applied`` and ``payments.credit`` go: what a payment
did is the ledger's to say.

Existing accounts get an *opening* statement (their figures before the payments recorded here, as of just
before the first of them) and one ``payment`` entry per recorded payment, in the order they were recorded:
the ledger then derives exactly the figures each account had. ``campaigns db upgrade`` reconciles every
account after this revision (``campaigns.money.ledger.reconcile``), which also settles what the old
in-place writes left impossible (a plan still accepted on a paid account, say).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 21:00:00
"""
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0012'
down_revision: Union[str, None] = '0011'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

MONEY = sa.Numeric(precision=18, scale=4)
CHUNK = 5000


def upgrade() -> None:
    op.create_table(
        'ledger_entries',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('account_id', sa.String(length=64), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('entry_key', sa.String(length=160), nullable=False),
        sa.Column('effective_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('amount', MONEY, nullable=True),
        sa.Column('balance', MONEY, nullable=True),
        sa.Column('amount_due', MONEY, nullable=True),
        sa.Column('due_date', sa.Date(), nullable=True),
        sa.Column('lender_status', sa.String(length=16), nullable=True),
        sa.Column('payment_id', sa.Integer(), nullable=True),
        sa.Column('plan_id', sa.Integer(), nullable=True),
        sa.Column('reason', sa.String(length=64), nullable=True),
        sa.Column('source', sa.String(length=32), nullable=True),
        sa.CheckConstraint("kind IN ('statement', 'payment', 'reversal', 'refund', 'fee')",
                           name=op.f('ck_ledger_entries_kind')),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_ledger_entries_account_id_accounts')),
        sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_ledger_entries_payment_id_payments')),
        sa.ForeignKeyConstraint(['plan_id'], ['repayment_plans.id'],
                                name=op.f('fk_ledger_entries_plan_id_repayment_plans')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_entries')),
        sa.UniqueConstraint('entry_key', name=op.f('uq_ledger_entries_entry_key')),
    )
    with op.batch_alter_table('ledger_entries') as batch:
        batch.create_index('ix_ledger_entries_account_id_id', ['account_id', 'id'], unique=False)
        batch.create_index('uq_ledger_entries_payment_id_kind', ['payment_id', 'kind'], unique=True)
    op.create_table(
        'agency_feeds',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('agency', sa.String(length=64), nullable=False),
        sa.Column('written_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('file', sa.String(length=255), nullable=False),
        sa.Column('rows', sa.Integer(), nullable=False),
        sa.Column('through_entry_id', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_agency_feeds')),
    )
    with op.batch_alter_table('accounts') as batch:
        batch.add_column(sa.Column('payoff_seen_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('figures', sa.String(length=16), nullable=True))
        batch.add_column(sa.Column('statement_id', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('ledger_head', sa.Integer(), nullable=True))
    with op.batch_alter_table('repayment_plans') as batch:
        batch.add_column(sa.Column('ledger_from', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('ledger_closed', sa.Integer(), nullable=True))
    with op.batch_alter_table('plan_instalments') as batch:
        batch.add_column(sa.Column('waived', MONEY, server_default='0', nullable=False))
        batch.add_column(sa.Column('added_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('added_by', sa.Integer(), nullable=True))
    with op.batch_alter_table('contact_attempts') as batch:
        batch.add_column(sa.Column('figures', sa.String(length=16), nullable=True))

    _open_the_ledger(op.get_bind())

    with op.batch_alter_table('payments') as batch:
        batch.drop_column('credit')
        batch.drop_column('applied')


def _utc(value):
    """A timestamp as the driver gave it, made aware (SQLite hands back naive UTC)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _open_the_ledger(conn) -> None:
    """Each account's opening statement, then its payments in the order they were recorded.

    The opening statement holds the account's figures *before* the payments recorded here (what they
    brought added back), as of just before the first of them: with the payments after it, the ledger
    derives the figures the account has now, and a later statement cannot silently swallow them.
    """
    meta = sa.MetaData()
    accounts = sa.Table('accounts', meta, autoload_with=conn)
    payments = sa.Table('payments', meta, autoload_with=conn)
    entries = sa.Table('ledger_entries', meta, autoload_with=conn)
    plans = sa.Table('repayment_plans', meta, autoload_with=conn)
    now = datetime.now(timezone.utc)
    store = (lambda v: v.replace(tzinfo=None)) if conn.dialect.name == 'sqlite' else (lambda v: v)
    totals = {r.account_id: (Decimal(r.total), _utc(r.first)) for r in conn.execute(
        sa.select(payments.c.account_id, sa.func.sum(payments.c.amount).label('total'),
                  sa.func.min(payments.c.paid_at).label('first')).group_by(payments.c.account_id))}
    after = ''
    while True:
        rows = conn.execute(sa.select(accounts.c.id, accounts.c.currency, accounts.c.balance, accounts.c.credit,
                                      accounts.c.amount_due, accounts.c.due_date, accounts.c.status,
                                      accounts.c.updated_at)
                            .where(accounts.c.id > after).order_by(accounts.c.id).limit(CHUNK)).all()
        if not rows:
            break
        batch = []
        for r in rows:
            paid, first = totals.get(r.id, (Decimal(0), None))
            position = Decimal(r.balance) - Decimal(r.credit or 0) + paid
            as_of = first - timedelta(microseconds=1) if first is not None else _utc(r.updated_at)
            batch.append({
                'account_id': r.id, 'kind': 'statement', 'entry_key': f'opening|{r.id}',
                'effective_at': store(as_of), 'recorded_at': store(now), 'currency': r.currency,
                'balance': position, 'amount_due': min(Decimal(r.amount_due) + paid, position),
                'due_date': r.due_date, 'lender_status': 'closed' if r.status == 'closed' else 'open',
                'source': 'migration'})
        conn.execute(entries.insert(), batch)
        after = rows[-1].id
    after_id = 0
    while True:
        rows = conn.execute(sa.select(payments.c.id, payments.c.payment_id, payments.c.account_id,
                                      payments.c.amount, payments.c.currency, payments.c.paid_at,
                                      payments.c.recorded_at)
                            .where(payments.c.id > after_id).order_by(payments.c.id).limit(CHUNK)).all()
        if not rows:
            break
        # Payments were stored in the order they were recorded: their ids keep that order in the ledger.
        conn.execute(entries.insert(), [{
            'account_id': r.account_id, 'kind': 'payment',
            'entry_key': f'payment|{r.payment_id}' if r.payment_id else f'payment|row-{r.id}',
            'effective_at': store(_utc(r.paid_at)), 'recorded_at': store(_utc(r.recorded_at or r.paid_at)),
            'currency': r.currency, 'amount': r.amount, 'payment_id': r.id, 'source': 'migration'}
            for r in rows])
        after_id = rows[-1].id
    # A plan's payments are those recorded after it was accepted.
    for plan in conn.execute(sa.select(plans.c.id, plans.c.account_id, plans.c.accepted_at)
                             .where(plans.c.accepted_at.is_not(None))).all():
        before = conn.execute(sa.select(sa.func.max(entries.c.id)).where(
            entries.c.account_id == plan.account_id, entries.c.kind == 'payment',
            entries.c.recorded_at <= plan.accepted_at)).scalar()
        conn.execute(plans.update().where(plans.c.id == plan.id).values(ledger_from=before or 0))


def downgrade() -> None:
    with op.batch_alter_table('payments') as batch:
        batch.add_column(sa.Column('applied', MONEY, nullable=True))
        batch.add_column(sa.Column('credit', MONEY, nullable=True))
    with op.batch_alter_table('contact_attempts') as batch:
        batch.drop_column('figures')
    with op.batch_alter_table('plan_instalments') as batch:
        batch.drop_column('added_by')
        batch.drop_column('added_at')
        batch.drop_column('waived')
    with op.batch_alter_table('repayment_plans') as batch:
        batch.drop_column('ledger_closed')
        batch.drop_column('ledger_from')
    with op.batch_alter_table('accounts') as batch:
        batch.drop_column('ledger_head')
        batch.drop_column('statement_id')
        batch.drop_column('figures')
        batch.drop_column('payoff_seen_at')
    op.drop_table('agency_feeds')
    with op.batch_alter_table('ledger_entries') as batch:
        batch.drop_index('uq_ledger_entries_payment_id_kind')
        batch.drop_index('ix_ledger_entries_account_id_id')
    op.drop_table('ledger_entries')
