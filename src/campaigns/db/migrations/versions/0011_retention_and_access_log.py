"""Retention and the access log: reduced messages, anonymised customers, who saw what

``rendered_messages`` can be reduced to the hash of what was sent (``body_text``
becomes nullable; ``content_sha256``, ``reduced_at``), ``customers.anonymised_at``
marks a customer whose name, email and phone were removed, and
``personal_data_access`` records every reveal, export, erasure and retention pass.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 10:20:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0011'
down_revision: Union[str, None] = '0010'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('rendered_messages') as batch:
        batch.alter_column('body_text', existing_type=sa.Text(), nullable=True)
        batch.add_column(sa.Column('content_sha256', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('reduced_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('customers') as batch:
        batch.add_column(sa.Column('anonymised_at', sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        'personal_data_access',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('actor', sa.String(length=128), nullable=False),
        sa.Column('action', sa.String(length=16), nullable=False),
        sa.Column('customer_id', sa.String(length=64), nullable=True),
        sa.Column('account_id', sa.String(length=64), nullable=True),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('counts', sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_personal_data_access')),
    )
    with op.batch_alter_table('personal_data_access') as batch:
        batch.create_index(batch.f('ix_personal_data_access_at'), ['at'], unique=False)
        batch.create_index(batch.f('ix_personal_data_access_customer_id'), ['customer_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('personal_data_access') as batch:
        batch.drop_index(batch.f('ix_personal_data_access_customer_id'))
        batch.drop_index(batch.f('ix_personal_data_access_at'))
    op.drop_table('personal_data_access')
    with op.batch_alter_table('customers') as batch:
        batch.drop_column('anonymised_at')
    # A reduced message has no body left to restore: it keeps an empty one.
    op.execute("UPDATE rendered_messages SET body_text = '' WHERE body_text IS NULL")
    with op.batch_alter_table('rendered_messages') as batch:
        batch.drop_column('reduced_at')
        batch.drop_column('content_sha256')
        batch.alter_column('body_text', existing_type=sa.Text(), nullable=False)
