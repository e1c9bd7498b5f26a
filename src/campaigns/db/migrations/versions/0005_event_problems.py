"""provider event problems (a bad event costs only itself, and says why); details that could echo personal data reduced

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 11:00:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0005'
down_revision: Union[str, None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'provider_event_problems',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('provider', sa.String(length=16), nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('position', sa.Integer(), nullable=True),
        sa.Column('event_id', sa.String(length=128), nullable=True),
        sa.Column('event', sa.String(length=32), nullable=True),
        sa.Column('problem', sa.String(length=300), nullable=False),
        sa.Column('outcome', sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_provider_event_problems')),
    )
    with op.batch_alter_table('provider_event_problems', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_provider_event_problems_received_at'), ['received_at'], unique=False)
    # Details written before this revision kept Jinja's and SendGrid's message text, which can echo a
    # customer's name or the message itself: keep what they named (template, provider and status) only.
    attempts = sa.table('contact_attempts', sa.column('id', sa.Integer), sa.column('reason', sa.String),
                        sa.column('detail', sa.Text))
    conn = op.get_bind()
    rows = conn.execute(sa.select(attempts.c.id, attempts.c.reason, attempts.c.detail).where(
        attempts.c.reason.in_(['template_error', 'provider_rejected', 'provider_auth', 'message_too_large']),
        attempts.c.detail.is_not(None))).all()
    for attempt_id, reason, detail in rows:
        parts = detail.split(': ')
        # "soft_nudge/email.en-US.j2: UndefinedError: <text>" and "SendGrid 400: <field>: <text>"
        kept = ': '.join(parts[:2]) if reason == 'template_error' else parts[0]
        if kept != detail:
            conn.execute(attempts.update().where(attempts.c.id == attempt_id).values(detail=kept[:500]))


def downgrade() -> None:
    with op.batch_alter_table('provider_event_problems', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_provider_event_problems_received_at'))
    op.drop_table('provider_event_problems')
