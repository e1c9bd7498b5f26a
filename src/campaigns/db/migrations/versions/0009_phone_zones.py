"""customers.phone_zones: the time zones of the phone's area code, derived once at import

A stage decides every message in the customer's local time, from the stated zone
and the phone's. Parsing the phone again on every run cost a stage about 40 µs an
account (issue 12); the importer, which parses it anyway, now stores the answer.
NULL (rows written before this revision, or not by the importer) means: derive it
from the phone when needed, as before.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 08:00:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0009'
down_revision: Union[str, None] = '0008'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('customers') as batch:
        batch.add_column(sa.Column('phone_zones', sa.String(length=400), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('customers') as batch:
        batch.drop_column('phone_zones')
