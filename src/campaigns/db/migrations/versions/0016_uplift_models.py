"""Uplift models: who a message helps, learned from the randomised history (campaigns.risk.uplift)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 16:10:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op


revision: str = '0016'
down_revision: Union[str, None] = '0015'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'uplift_models',
        sa.Column('version', sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column('trained_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('window_start', sa.Date(), nullable=False),
        sa.Column('window_end', sa.Date(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('contacted', sa.Integer(), nullable=False),
        sa.Column('held_out', sa.Integer(), nullable=False),
        sa.Column('qini', sa.Float(), nullable=True),
        sa.Column('curve', sa.JSON(), nullable=True),
        sa.Column('params', sa.JSON(), nullable=True),
        sa.Column('note', sa.Text(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table('uplift_models')
