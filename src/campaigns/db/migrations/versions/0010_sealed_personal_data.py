"""Personal data sealed at rest: text columns for sealed values, blind indexes for lookups

Names, emails and phones, and the rendered messages (recipient, subject, bodies),
are stored sealed (AES-256-GCM, ``campaigns.privacy``): longer than the plain
values, so the columns become TEXT. ``customers.email_index`` and ``phone_index``
hold keyed blind indexes, the only way these values are looked up.

This revision changes the schema only. Values already in the database are sealed
after it, chunk by chunk, each chunk committed on its own (``campaigns db
upgrade`` runs that pass, ``campaigns keys rotate`` resumes it): a stop half-way
loses nothing, and plain values still read as they are until sealed.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 19:30:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0010'
down_revision: Union[str, None] = '0009'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# (table, column, its length before this revision; None: it was TEXT already)
WIDENED = (
    ('customers', 'name', 200), ('customers', 'email', 320), ('customers', 'phone', 20),
    ('rendered_messages', 'recipient', 320), ('rendered_messages', 'subject', 300),
    ('outbox_messages', 'recipient', 320), ('outbox_messages', 'subject', 300),
)


def upgrade() -> None:
    for table in ('customers', 'rendered_messages', 'outbox_messages'):
        with op.batch_alter_table(table) as batch:
            for name, column, length in WIDENED:
                if name == table:
                    batch.alter_column(column, type_=sa.Text(), existing_type=sa.String(length=length),
                                       existing_nullable=True)
            if table == 'customers':
                batch.add_column(sa.Column('email_index', sa.String(length=64), nullable=True))
                batch.add_column(sa.Column('phone_index', sa.String(length=64), nullable=True))
                batch.create_index('ix_customers_email_index', ['email_index'])
                batch.create_index('ix_customers_phone_index', ['phone_index'])


def downgrade() -> None:
    # Sealed values do not fit the old columns: open them first (the keys must be given), then narrow.
    from campaigns.privacy.rotation import unseal_all

    unseal_all(op.get_bind())
    for table in ('customers', 'rendered_messages', 'outbox_messages'):
        with op.batch_alter_table(table) as batch:
            if table == 'customers':
                batch.drop_index('ix_customers_phone_index')
                batch.drop_index('ix_customers_email_index')
                batch.drop_column('phone_index')
                batch.drop_column('email_index')
            for name, column, length in WIDENED:
                if name == table:
                    batch.alter_column(column, type_=sa.String(length=length), existing_type=sa.Text(),
                                       existing_nullable=True)
