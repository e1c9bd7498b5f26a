"""provider events

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 09:40:38.213793
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa



revision: str = '0003'
down_revision: Union[str, None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:

    op.create_table('provider_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('provider', sa.String(length=16), nullable=False),
    sa.Column('event_id', sa.String(length=128), nullable=False),
    sa.Column('attempt_id', sa.Integer(), nullable=True),
    sa.Column('event', sa.String(length=32), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('detail', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['attempt_id'], ['contact_attempts.id'], name=op.f('fk_provider_events_attempt_id_contact_attempts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_provider_events')),
    sa.UniqueConstraint('event_id', name=op.f('uq_provider_events_event_id'))
    )
    with op.batch_alter_table('provider_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_provider_events_attempt_id'), ['attempt_id'], unique=False)

    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('email_invalid', sa.Boolean(), server_default=sa.false(), nullable=False))



def downgrade() -> None:

    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_column('email_invalid')

    with op.batch_alter_table('provider_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_provider_events_attempt_id'))

    op.drop_table('provider_events')
