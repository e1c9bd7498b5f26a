"""risk models: each trained model's version, window, metrics and parameters (JSON, never a pickle)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 19:50:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0008'
down_revision: Union[str, None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'risk_models',
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('trained_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('window_start', sa.Date(), nullable=False),
        sa.Column('window_end', sa.Date(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('units', sa.Integer(), nullable=False),
        sa.Column('cured', sa.Integer(), nullable=False),
        sa.Column('auc', sa.Float(), nullable=True),
        sa.Column('brier', sa.Float(), nullable=True),
        sa.Column('calibration', sa.JSON(), nullable=True),
        sa.Column('params', sa.JSON(), nullable=True),
        sa.Column('note', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('version', name=op.f('pk_risk_models')),
    )


def downgrade() -> None:
    op.drop_table('risk_models')
