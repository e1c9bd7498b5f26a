"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-22 08:06:05.347987
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0001'
down_revision: Union[str, None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
   
    op.create_table('campaign_runs',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('stage', sa.String(length=16), nullable=False),
    sa.Column('as_of', sa.Date(), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('dry_run', sa.Boolean(), nullable=False),
    sa.Column('flow_run_id', sa.String(length=36), nullable=True),
    sa.Column('cohort_size', sa.Integer(), nullable=False),
    sa.Column('counts', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_runs'))
    )
    with op.batch_alter_table('campaign_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_campaign_runs_as_of'), ['as_of'], unique=False)
        batch_op.create_index(batch_op.f('ix_campaign_runs_stage'), ['stage'], unique=False)

    op.create_table('customers',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('phone', sa.String(length=20), nullable=True),
    sa.Column('locale', sa.String(length=16), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=True),
    sa.Column('country', sa.String(length=2), nullable=True),
    sa.Column('email_opt_out', sa.Boolean(), nullable=False),
    sa.Column('sms_opt_out', sa.Boolean(), nullable=False),
    sa.Column('sms_consent', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customers'))
    )
    op.create_table('accounts',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('customer_id', sa.String(length=64), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('balance', sa.Numeric(precision=18, scale=4), nullable=False),
    sa.Column('amount_due', sa.Numeric(precision=18, scale=4), nullable=False),
    sa.Column('due_date', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('product', sa.String(length=64), nullable=True),
    sa.Column('cease_contact', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_accounts_customer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_accounts'))
    )
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_accounts_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_accounts_due_date'), ['due_date'], unique=False)

    op.create_table('contact_attempts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.String(length=36), nullable=False),
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('customer_id', sa.String(length=64), nullable=False),
    sa.Column('stage', sa.String(length=16), nullable=False),
    sa.Column('cycle', sa.String(length=64), nullable=False),
    sa.Column('as_of', sa.Date(), nullable=False),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('template', sa.String(length=128), nullable=True),
    sa.Column('template_version', sa.String(length=16), nullable=True),
    sa.Column('variant', sa.String(length=32), nullable=True),
    sa.Column('segment', sa.String(length=32), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=48), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('provider_message_id', sa.String(length=128), nullable=True),
    sa.Column('delivered_by_run_id', sa.String(length=36), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_contact_attempts_account_id_accounts')),
    sa.ForeignKeyConstraint(['run_id'], ['campaign_runs.id'], name=op.f('fk_contact_attempts_run_id_campaign_runs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contact_attempts')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_contact_attempts_idempotency_key'))
    )
    with op.batch_alter_table('contact_attempts', schema=None) as batch_op:
        batch_op.create_index('ix_contact_attempts_account_stage_as_of', ['account_id', 'stage', 'as_of'], unique=False)
        batch_op.create_index(batch_op.f('ix_contact_attempts_run_id'), ['run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_contact_attempts_delivered_by_run_id'), ['delivered_by_run_id'], unique=False)
        batch_op.create_index('ix_contact_attempts_stage_as_of_status', ['stage', 'as_of', 'status'], unique=False)

    op.create_table('disputes',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('source', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_disputes_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_disputes'))
    )
    with op.batch_alter_table('disputes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_disputes_account_id'), ['account_id'], unique=False)

    op.create_table('payments',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('amount', sa.Numeric(precision=18, scale=4), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('paid_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_payments_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments'))
    )
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payments_account_id'), ['account_id'], unique=False)

    op.create_table('repayment_plans',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('instalments', sa.Integer(), nullable=False),
    sa.Column('total', sa.Numeric(precision=18, scale=4), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('schedule', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_repayment_plans_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_repayment_plans'))
    )
    with op.batch_alter_table('repayment_plans', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_repayment_plans_account_id'), ['account_id'], unique=False)

    op.create_table('agent_worklist',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('attempt_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.String(length=64), nullable=False),
    sa.Column('days_past_due', sa.Integer(), nullable=False),
    sa.Column('amount_due', sa.Numeric(precision=18, scale=4), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('tried', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_agent_worklist_account_id_accounts')),
    sa.ForeignKeyConstraint(['attempt_id'], ['contact_attempts.id'], name=op.f('fk_agent_worklist_attempt_id_contact_attempts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_worklist')),
    sa.UniqueConstraint('attempt_id', name=op.f('uq_agent_worklist_attempt_id'))
    )
    with op.batch_alter_table('agent_worklist', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agent_worklist_account_id'), ['account_id'], unique=False)

    op.create_table('outbox_messages',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('attempt_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('recipient', sa.String(length=320), nullable=True),
    sa.Column('subject', sa.String(length=300), nullable=True),
    sa.Column('body_text', sa.Text(), nullable=False),
    sa.Column('body_html', sa.Text(), nullable=True),
    sa.Column('accepted_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['attempt_id'], ['contact_attempts.id'], name=op.f('fk_outbox_messages_attempt_id_contact_attempts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox_messages')),
    sa.UniqueConstraint('attempt_id', name=op.f('uq_outbox_messages_attempt_id'))
    )
    op.create_table('rendered_messages',
    sa.Column('attempt_id', sa.Integer(), nullable=False),
    sa.Column('recipient', sa.String(length=320), nullable=True),
    sa.Column('subject', sa.String(length=300), nullable=True),
    sa.Column('body_text', sa.Text(), nullable=False),
    sa.Column('body_html', sa.Text(), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['attempt_id'], ['contact_attempts.id'], name=op.f('fk_rendered_messages_attempt_id_contact_attempts')),
    sa.PrimaryKeyConstraint('attempt_id', name=op.f('pk_rendered_messages'))
    )


def downgrade() -> None:
   
    op.drop_table('rendered_messages')
    op.drop_table('outbox_messages')
    with op.batch_alter_table('agent_worklist', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_agent_worklist_account_id'))

    op.drop_table('agent_worklist')
    with op.batch_alter_table('repayment_plans', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_repayment_plans_account_id'))

    op.drop_table('repayment_plans')
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payments_account_id'))

    op.drop_table('payments')
    with op.batch_alter_table('disputes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_disputes_account_id'))

    op.drop_table('disputes')
    with op.batch_alter_table('contact_attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_contact_attempts_stage_as_of_status')
        batch_op.drop_index(batch_op.f('ix_contact_attempts_run_id'))
        batch_op.drop_index(batch_op.f('ix_contact_attempts_delivered_by_run_id'))
        batch_op.drop_index('ix_contact_attempts_account_stage_as_of')

    op.drop_table('contact_attempts')
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_accounts_due_date'))
        batch_op.drop_index(batch_op.f('ix_accounts_customer_id'))

    op.drop_table('accounts')
    op.drop_table('customers')
    with op.batch_alter_table('campaign_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_campaign_runs_stage'))
        batch_op.drop_index(batch_op.f('ix_campaign_runs_as_of'))

    op.drop_table('campaign_runs')
