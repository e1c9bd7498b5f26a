"""what works: the experiment, tone and amount due of each assignment; the name of each run

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 19:40:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0007'
down_revision: Union[str, None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

MONEY = sa.Numeric(precision=18, scale=4, asdecimal=True)


def upgrade() -> None:
    with op.batch_alter_table('contact_attempts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('experiment', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('tone', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('amount_due', MONEY, nullable=True))
        batch_op.add_column(sa.Column('days_past_due', sa.Integer(), nullable=True))
        batch_op.create_index('ix_contact_attempts_stage_created', ['stage', 'created_at'])
    with op.batch_alter_table('campaign_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('name', sa.String(length=128), nullable=True))
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.create_index('ix_payments_account_paid_at', ['account_id', 'paid_at'])


def downgrade() -> None:
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_index('ix_payments_account_paid_at')
    with op.batch_alter_table('campaign_runs', schema=None) as batch_op:
        batch_op.drop_column('name')
    with op.batch_alter_table('contact_attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_contact_attempts_stage_created')
        batch_op.drop_column('days_past_due')
        batch_op.drop_column('amount_due')
        batch_op.drop_column('tone')
        batch_op.drop_column('experiment')
