"""The customer's side: what customers do on their page or say in a reply, deferrals, and the worklist items they ask for

``customer_actions`` keeps each action once (``request_key``), its note sealed; a deferral is a promise of kind
``deferral`` (it pauses and breaks like one); a worklist item is an escalation attempt's or a customer action's
(a call back in the window the customer chose, a reply).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 15:40:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op



revision: str = '0015'
down_revision: Union[str, None] = '0014'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'customer_actions',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('account_id', sa.String(length=64), sa.ForeignKey('accounts.id'), nullable=True),
        sa.Column('customer_id', sa.String(length=64), sa.ForeignKey('customers.id'), nullable=True),
        sa.Column('action', sa.String(length=24), nullable=False),
        sa.Column('code', sa.String(length=32), nullable=True),
        sa.Column('detail', sa.JSON(), nullable=True),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('source', sa.String(length=16), nullable=False),
        sa.Column('request_key', sa.String(length=128), nullable=False),
        sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint('request_key', name='uq_customer_actions_request_key'),
    )
    op.create_index('ix_customer_actions_account_action', 'customer_actions',
                    ['account_id', 'action', 'occurred_at'])
    op.create_index('ix_customer_actions_customer_id', 'customer_actions', ['customer_id'])
    with op.batch_alter_table('payment_promises') as batch:
        batch.add_column(sa.Column('kind', sa.String(length=16), nullable=False, server_default='promise'))
    with op.batch_alter_table('agent_worklist') as batch:
        batch.alter_column('attempt_id', existing_type=sa.Integer(), nullable=True)
        batch.add_column(sa.Column('action_id', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('call_from', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('call_until', sa.DateTime(timezone=True), nullable=True))
        batch.create_unique_constraint('uq_agent_worklist_action_id', ['action_id'])
        batch.create_foreign_key('fk_agent_worklist_action_id', 'customer_actions', ['action_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('agent_worklist') as batch:
        batch.drop_constraint('fk_agent_worklist_action_id', type_='foreignkey')
        batch.drop_constraint('uq_agent_worklist_action_id', type_='unique')
        batch.drop_column('call_until')
        batch.drop_column('call_from')
        batch.drop_column('action_id')
        batch.alter_column('attempt_id', existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table('payment_promises') as batch:
        batch.drop_column('kind')
    op.drop_index('ix_customer_actions_customer_id', table_name='customer_actions')
    op.drop_index('ix_customer_actions_account_action', table_name='customer_actions')
    op.drop_table('customer_actions')
