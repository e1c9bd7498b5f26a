"""money coming back: payment ids, credits, plans with instalments, promises to pay, agency placement

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 16:30:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0006'
down_revision: Union[str, None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

MONEY = sa.Numeric(precision=18, scale=4, asdecimal=True)


def upgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('credit', MONEY, server_default='0', nullable=False))
        batch_op.add_column(sa.Column('paid_off_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('plan_due_date', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('plan_amount_due', MONEY, nullable=True))
        batch_op.add_column(sa.Column('placed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('placed_with', sa.String(length=64), nullable=True))
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('payment_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('method', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('reference', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('applied', MONEY, nullable=True))
        batch_op.add_column(sa.Column('credit', MONEY, nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_payments_payment_id'), ['payment_id'])
    with op.batch_alter_table('repayment_plans', schema=None) as batch_op:
        batch_op.add_column(sa.Column('offer_key', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('options', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('offered_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('chosen_option', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('accepted_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('accepted_via', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('close_reason', sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_repayment_plans_offer_key'), ['offer_key'])
    with op.batch_alter_table('agent_worklist', schema=None) as batch_op:
        batch_op.add_column(sa.Column('outcome', sa.String(length=24), nullable=True))
        batch_op.add_column(sa.Column('outcome_at', sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        'plan_instalments',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('plan_id', sa.Integer(), nullable=False),
        sa.Column('account_id', sa.String(length=64), nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('due_date', sa.Date(), nullable=False),
        sa.Column('amount', MONEY, nullable=False),
        sa.Column('paid', MONEY, nullable=False),
        sa.Column('paid_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_plan_instalments_account_id_accounts')),
        sa.ForeignKeyConstraint(['plan_id'], ['repayment_plans.id'],
                                name=op.f('fk_plan_instalments_plan_id_repayment_plans')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_plan_instalments')),
    )
    with op.batch_alter_table('plan_instalments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_plan_instalments_account_id'), ['account_id'], unique=False)
        batch_op.create_index('ix_plan_instalments_plan_seq', ['plan_id', 'seq'], unique=True)
    op.create_table(
        'payment_promises',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('account_id', sa.String(length=64), nullable=False),
        sa.Column('amount', MONEY, nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('due_by', sa.Date(), nullable=False),
        sa.Column('channel', sa.String(length=16), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('paid', MONEY, nullable=False),
        sa.Column('promised_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('source', sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_payment_promises_account_id_accounts')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_promises')),
    )
    with op.batch_alter_table('payment_promises', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_promises_account_id'), ['account_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('payment_promises', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payment_promises_account_id'))
    op.drop_table('payment_promises')
    with op.batch_alter_table('plan_instalments', schema=None) as batch_op:
        batch_op.drop_index('ix_plan_instalments_plan_seq')
        batch_op.drop_index(batch_op.f('ix_plan_instalments_account_id'))
    op.drop_table('plan_instalments')
    with op.batch_alter_table('agent_worklist', schema=None) as batch_op:
        batch_op.drop_column('outcome_at')
        batch_op.drop_column('outcome')
    with op.batch_alter_table('repayment_plans', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_repayment_plans_offer_key'), type_='unique')
        for column in ('offer_key', 'close_reason', 'closed_at', 'accepted_via', 'accepted_at', 'chosen_option', 'expires_at',
                       'offered_on', 'options'):
            batch_op.drop_column(column)
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_payments_payment_id'), type_='unique')
        for column in ('credit', 'applied', 'recorded_at', 'reference', 'method', 'payment_id'):
            batch_op.drop_column(column)
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        for column in ('placed_with', 'placed_at', 'plan_amount_due', 'plan_due_date', 'paid_off_at', 'credit'):
            batch_op.drop_column(column)
