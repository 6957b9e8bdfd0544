"""@mentions in internal notes: one row per user named in a note, seen or not

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 17:30:00.000000
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import casella.models.base


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('note_mention',
    sa.Column('note_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('created_at', casella.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('seen_at', casella.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['message_id'], ['message.id'], name=op.f('fk_note_mention_message_id_message'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['note_id'], ['message_note.id'], name=op.f('fk_note_mention_note_id_message_note'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], name=op.f('fk_note_mention_user_id_app_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('note_id', 'user_id', name=op.f('pk_note_mention'))
    )
    with op.batch_alter_table('note_mention', schema=None) as batch_op:
        batch_op.create_index('ix_note_mention_user_seen', ['user_id', 'seen_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('note_mention', schema=None) as batch_op:
        batch_op.drop_index('ix_note_mention_user_seen')

    op.drop_table('note_mention')
