"""Lean writes to the contact log: a partial status index, no foreign-key checks on the stage's hot path

A stage writes about a million attempt rows (and a message row for most of them) a day. Measured with
``bench/primitives.py`` (PostgreSQL 15, 100,000 rows): COPY of an attempt row as migrated before this revision
cost PostgreSQL 18.3 µs; without its two foreign keys 10.2 µs. Each secondary index costs 0.3 to 1.3 µs
and 64 to 98 B of WAL a row.

* ``ix_contact_attempts_status_release_after`` becomes partial: only rows still on their way (queued,
  deferred, sending) are in it, the few the dispatcher and the deliverers look for. Settled rows (sent,
  suppressed, failed: nearly all of them) cost it nothing, and a backlog of settled rows no longer makes
  its scans slower.
* ``ix_contact_attempts_stage_as_of_status`` goes: the deliverers find due rows through the partial index,
  the review by ``stage, created_at``, an account's history by ``account_id, stage, as_of``.
* The foreign keys from ``contact_attempts`` (to ``accounts`` and ``campaign_runs``) and from the message
  tables (``rendered_messages``, ``outbox_messages``) to ``contact_attempts`` go. They hold by construction:
  attempts are written only for accounts the stage has just read from ``accounts``, by the run it started
  before; messages are written in the transaction that writes their attempt, with its id; and no account,
  run or attempt is ever deleted (retention and erasure reduce and anonymise, they do not delete).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 08:00:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0013'
down_revision: Union[str, None] = '0012'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

IN_FLIGHT = "status IN ('queued', 'deferred', 'sending')"


def upgrade() -> None:
    with op.batch_alter_table('contact_attempts') as batch:
        batch.drop_index('ix_contact_attempts_stage_as_of_status')
        batch.drop_index('ix_contact_attempts_status_release_after')
        batch.drop_constraint('fk_contact_attempts_account_id_accounts', type_='foreignkey')
        batch.drop_constraint('fk_contact_attempts_run_id_campaign_runs', type_='foreignkey')
    op.create_index('ix_contact_attempts_status_release_after', 'contact_attempts', ['status', 'release_after'],
                    postgresql_where=sa.text(IN_FLIGHT), sqlite_where=sa.text(IN_FLIGHT))
    with op.batch_alter_table('rendered_messages') as batch:
        batch.drop_constraint('fk_rendered_messages_attempt_id_contact_attempts', type_='foreignkey')
    with op.batch_alter_table('outbox_messages') as batch:
        batch.drop_constraint('fk_outbox_messages_attempt_id_contact_attempts', type_='foreignkey')
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ANALYZE contact_attempts')


def downgrade() -> None:
    with op.batch_alter_table('outbox_messages') as batch:
        batch.create_foreign_key('fk_outbox_messages_attempt_id_contact_attempts', 'contact_attempts',
                                 ['attempt_id'], ['id'])
    with op.batch_alter_table('rendered_messages') as batch:
        batch.create_foreign_key('fk_rendered_messages_attempt_id_contact_attempts', 'contact_attempts',
                                 ['attempt_id'], ['id'])
    op.drop_index('ix_contact_attempts_status_release_after', 'contact_attempts')
    with op.batch_alter_table('contact_attempts') as batch:
        batch.create_foreign_key('fk_contact_attempts_run_id_campaign_runs', 'campaign_runs', ['run_id'], ['id'])
        batch.create_foreign_key('fk_contact_attempts_account_id_accounts', 'accounts', ['account_id'], ['id'])
        batch.create_index('ix_contact_attempts_status_release_after', ['status', 'release_after'])
        batch.create_index('ix_contact_attempts_stage_as_of_status', ['stage', 'as_of', 'status'])
