"""delivery claims: when (by the wall clock) an attempt was claimed; provider message ids on events; push preferences

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 10:30:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0004'
down_revision: Union[str, None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('contact_attempts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('provider_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('message_id', sa.String(length=128), nullable=True))
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('push_enabled', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('push_opt_out', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_column('push_opt_out')
        batch_op.drop_column('push_enabled')
    with op.batch_alter_table('provider_events', schema=None) as batch_op:
        batch_op.drop_column('message_id')
    with op.batch_alter_table('contact_attempts', schema=None) as batch_op:
        batch_op.drop_column('claimed_at')
