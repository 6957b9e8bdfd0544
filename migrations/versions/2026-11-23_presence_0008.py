"""Presence (who is viewing or replying to a conversation) in the database, shared by
every webmail process

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 18:00:00.000000
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import casella.models.base

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('presence_entry',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('username', sa.String(length=255), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('seen_at', casella.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', 'username', name=op.f('pk_presence_entry'))
    )
    with op.batch_alter_table('presence_entry', schema=None) as batch_op:
        batch_op.create_index('ix_presence_entry_seen_at', ['seen_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('presence_entry', schema=None) as batch_op:
        batch_op.drop_index('ix_presence_entry_seen_at')
    op.drop_table('presence_entry')
