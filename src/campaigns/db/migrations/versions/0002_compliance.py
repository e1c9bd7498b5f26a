"""compliance holds opt-outs and release times

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 08:41:21.154300
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa



revision: str = '0002'
down_revision: Union[str, None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('holds',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('customer_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cleared_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('source', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_holds_customer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_holds'))
    )
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.create_index('ix_holds_customer_open', ['customer_id', 'cleared_at'], unique=False)

    op.create_table('opt_out_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('customer_id', sa.String(length=64), nullable=False),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('keyword', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_opt_out_events_customer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_opt_out_events'))
    )
    with op.batch_alter_table('opt_out_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_opt_out_events_customer_id'), ['customer_id'], unique=False)

    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('time_barred', sa.Boolean(), server_default=sa.false(), nullable=False))

    with op.batch_alter_table('contact_attempts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('release_after', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('outcome', sa.String(length=24), nullable=True))
        batch_op.add_column(sa.Column('policy_trace', sa.JSON(), nullable=True))
        batch_op.create_index('ix_contact_attempts_status_release_after', ['status', 'release_after'], unique=False)

    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('email_is_employer', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('email_employer_consent', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('vulnerable', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_column('vulnerable')
        batch_op.drop_column('email_employer_consent')
        batch_op.drop_column('email_is_employer')

    with op.batch_alter_table('contact_attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_contact_attempts_status_release_after')
        batch_op.drop_column('policy_trace')
        batch_op.drop_column('outcome')
        batch_op.drop_column('release_after')

    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('time_barred')

    with op.batch_alter_table('opt_out_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_opt_out_events_customer_id'))

    op.drop_table('opt_out_events')
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.drop_index('ix_holds_customer_open')

    op.drop_table('holds')
