"""One account index on payments: ``(account_id, paid_at)`` already serves every lookup by account

``ix_payments_account_id`` was a prefix of ``ix_payments_account_paid_at``: every query that finds an account's
payments can use the longer one, and each payment paid for both on the way in (an index entry and its WAL).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 13:00:00
"""
from typing import Sequence, Union

from alembic import op


revision: str = '0014'
down_revision: Union[str, None] = '0013'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('payments') as batch:
        batch.drop_index('ix_payments_account_id')


def downgrade() -> None:
    with op.batch_alter_table('payments') as batch:
        batch.create_index('ix_payments_account_id', ['account_id'])
